"""The lever table of docs/results.md (issue 19): cross-entropy runs that each change one thing of
the recipe, measured on the full CUB test split at the final epoch.

A lever run trains into runs/levers/NAME (`scripts/train_levers.sh`); its config and metrics are
copied to docs/runs/levers/ so the table can be remade from the repository, and
docs/runs/levers/NAME.flip.json holds `mcviz eval --flip --json` of its checkpoint where measured.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

from results_models import BOX_FLOOR, FROZEN_224, PARTS_FLOOR, RUNS_DOC, fmt

LEVER_DOC = RUNS_DOC / "levers"
# (run, what it changes from the row it follows); the first row is the shipped CE model.
LEVERS: list[tuple[str, str]] = [
    ("cub-ce", "the recipe before the rebuild: 224 px, body frozen through the head conv, 2 views (crop, "
               "mirror), 4 epochs"),
    ("hc-v4-e4", "views: 4 per image (+ 2 random resized crops)"),
    ("hc-v4-e8", "epochs: 8"),
    ("hc-v8-e4", "views: 8 per image (`hc-v4-e4` with 6 random resized crops instead of 2)"),
    ("b5-v4-e8", "depth: block 6 and the head conv train too (body lr x 0.2)"),
    ("b5-v4-e8-ls", "label smoothing 0.1"),
    ("b5-v4-e8-mix", "mixup 0.2 at the cached layer (instead of label smoothing)"),
    ("hc-v2-e4-s288", "resolution: `cub-ce`'s recipe at 288 px crops (squashed to 329) instead of 224"),
]


# What trains behind each --freeze depth of lite0.
TRAINED = {"head_conv": "1x1 layer + head", "block5": "block 6 + head conv + 1x1 layer + head",
           "block4": "blocks 5-6 + head conv + 1x1 layer + head"}


def copy_lever_runs(runs_dir: Path) -> None:
    """runs/levers/NAME/{config.json, metrics.jsonl} -> docs/runs/levers/NAME.*, where present."""
    LEVER_DOC.mkdir(parents=True, exist_ok=True)
    for name in [n for n, _ in LEVERS] + [c[0] for c in MC_CONFIGS]:
        src = runs_dir / "levers" / name
        for f in ("config.json", "metrics.jsonl"):
            if (src / f).exists():
                shutil.copy(src / f, LEVER_DOC / f"{name}.{f}")


def _record_dir(name: str) -> Path:
    """Where a run's records are: the 224 px frozen-body models the levers started from, or the lever runs."""
    return FROZEN_224 if (FROZEN_224 / f"{name}.metrics.jsonl").exists() else LEVER_DOC


def lever_record(name: str) -> Optional[tuple[dict, list[dict]]]:
    folder = _record_dir(name)
    metrics = folder / f"{name}.metrics.jsonl"
    config = LEVER_DOC / f"{name}.config.json" if folder == LEVER_DOC else None
    if not metrics.exists():
        return None
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    cfg = json.loads(config.read_text()) if config is not None and config.exists() else \
        {"freeze": "head_conv", "cache_views": 2, "epochs": 4}
    return cfg, rows


def final_eval(cfg: dict, rows: list[dict]) -> Optional[dict]:
    """The evaluated row of a run's last epoch; None while the run is unfinished."""
    evald = [r for r in rows if "top1" in r]
    return evald[-1] if evald and evald[-1]["epoch"] == cfg["epochs"] else None


def recorded(names):
    """(name, config, metrics rows, final evaluated row or None while unfinished) of each of
    ``names`` that has a record."""
    for name in names:
        found = lever_record(name)
        if found is not None:
            yield (name, *found, final_eval(*found))


def train_minutes(rows: list[dict]) -> float:
    """Training minutes of a run (its epochs' train_time_s; evaluation and caches excluded)."""
    return sum(r["train_time_s"] for r in rows) / 60


def _flip(name: str) -> Optional[float]:
    f = LEVER_DOC / f"{name}.flip.json"
    return json.loads(f.read_text())["top1"] if f.exists() else None


def lever_rows() -> list[str]:
    """The markdown table (empty when no lever run is recorded)."""
    out = ["| run | lever (from the row above) | trained | views | epochs | top-1 % | top-1 % with flip | "
           "train acc | minutes |", "|---|---|---|---|---|---|---|---|---|"]
    levers = dict(LEVERS)
    for name, cfg, rows, final in recorded(levers):
        lever = levers[name]
        if final is None:
            out.append(f"| `{name}` | {lever} | – | – | – | (running: {len(rows)} of {cfg['epochs']} epochs) | – | – | – |")
            continue
        trained = TRAINED.get(cfg["freeze"], f"everything after {cfg['freeze']}")
        out.append(f"| `{name}` | {lever} | {trained} | {cfg['cache_views']} | {cfg['epochs']} | "
                   f"{final['top1']:.2f} | {fmt(_flip(name))} | {rows[-1]['train_acc']:.3f} | "
                   f"{train_minutes(rows):.0f} |")
    return out if len(out) > 2 else []


# Issue 19's MC-Loss configurations: (a) the 1x1 MC layer (xi = 3) on the frozen head conv, (b) the
# head conv's own 1280 channels split unevenly (Table II) while block 6 and the head conv train;
# each at the paper's fine-tuning weight (mu = 0.005) and its from-scratch one (mu = 1.5).
MC_CONFIGS: list[tuple[str, str, str, str]] = [
    ("cub-ce", "CE reference of (a), 224 px", "–", "–"),
    ("cub-mc", "(a) 1x1 MC layer, xi = 3, 224 px", "1.5", "10"),
    ("mc-a-mu0005", "(a) 1x1 MC layer, xi = 3", "0.005", "10"),
    ("b5-v4-e8", "CE reference of (b)", "–", "–"),
    ("mc-b-mu0005", "(b) head conv's 1280 channels, Table II split", "0.005", "10"),
    ("mc-b-mu15", "(b) head conv's 1280 channels, Table II split", "1.5", "10"),
    ("hc-v2-e4-s288", "CE reference at 288 px (18x18 maps)", "–", "–"),
    ("mc-s288", "(a) at 288 px (`cub-mc`'s recipe)", "1.5", "10"),
    ("anchor-s288", "(a) + the anchored L_div at 288 px (the app's default before the mu sweep)", "1.5", "2"),
    ("anchor-s288-s1", "`anchor-s288`, seed 1 (`cub-mc-anchor-s1` before the mu sweep)", "1.5", "2"),
    ("anchor-s288-mu05", "`anchor-s288` at a lower weight", "0.5", "2"),
    ("anchor-s288-mu05-s1", "`anchor-s288-mu05`, seed 1", "0.5", "2"),
    ("anchor-s288-mu015", "`anchor-s288` at a lower weight still (`cub-mc-anchor`'s configuration)", "0.15", "2"),
    ("anchor-s288-mu015-s1", "`anchor-s288-mu015`, seed 1", "0.15", "2"),
]


def _localization(name: str) -> Optional[dict]:
    f = _record_dir(name) / f"{name}.localize.json"
    return json.loads(f.read_text()) if f.exists() else None


def mc_config_rows() -> list[str]:
    """The MC-Loss configuration table (empty when none of its runs is recorded)."""
    out = ["| run | configuration | mu | lambda | top-1 % | channels per class | distinct parts / image "
           "(random peaks) | peaks in the box (random) | minutes |", "|---|---|---|---|---|---|---|---|---|"]
    configs = {name: rest for name, *rest in MC_CONFIGS}
    for name, cfg, rows, final in recorded(configs):
        if final is None:
            continue
        what, mu, lam = configs[name]
        loc = _localization(name)
        parts = f"{loc['distinct_parts']:.3f} ({loc['random_distinct_parts']:.2f})" if loc else "–"
        in_box = f"{loc['in_box']:.3f} ({loc['random_in_box']:.2f})" if loc else "–"
        xi = loc["xi"] if loc else "–"
        out.append(f"| `{name}` | {what} | {mu} | {lam} | {final['top1']:.2f} | {xi} | {parts} | {in_box} | "
                   f"{train_minutes(rows):.0f} |")
    return out if len(out) > 3 else []


def crop_rows() -> list[str]:
    """Shipped models tested at larger crops than they were trained on (`mcviz eval --crop PX --json`,
    recorded as docs/runs/levers/MODEL.cropPX.json); empty when none is recorded."""
    found: dict[str, dict[int, float]] = {}
    for f in sorted(LEVER_DOC.glob("*.crop*.json")):
        r = json.loads(f.read_text())
        found.setdefault(f.name.split(".crop")[0], {})[int(r["crop"])] = r["top1"]
    if not found:
        return []
    crops = sorted({c for v in found.values() for c in v})
    out = ["| model (trained at 224 px) | " + " | ".join(f"top-1 % at {c} px" for c in crops) + " |",
           "|---|" + "---|" * len(crops)]
    for name, by in found.items():
        out.append(f"| `{name}` | " + " | ".join(fmt(by.get(c)) for c in crops) + " |")
    return out


# The 224 px frozen-body models (docs/runs/frozen-224/), in the order of the tables.
FROZEN_ORDER = ("cub-ce", "cub-mc", "cub-mc-no-div", "cub-mc-no-cwa", "cub-mc-v2", "cub-mc-soft", "cub-mc-anchor",
                "cub-mc-soft-paper", "cub-ce-s1", "cub-mc-s1", "cub-mc-anchor-s1", "cars-ce", "cars-mc")


def frozen_rows(now: dict) -> list[str]:
    """The "frozen body at 224 px" table: one row per recorded model of FROZEN_ORDER, beside the
    top-1 of the model of that name now (``now``: name -> metrics of the current models)."""
    out = ["| model | top-1 % at 224 px | MC branch % | mean h | distinct parts / image | peaks in the box | "
           "top-1 % now | change |", "|---|---|---|---|---|---|---|---|"]
    for name, _, _, final in recorded(FROZEN_ORDER):
        loc = _localization(name)
        where = f"{loc['distinct_parts']:.3f} | {loc['in_box']:.3f}" if loc else "– | –"
        h = f"{final['mean_h']:.3f}" if "mean_h" in final else "–"
        new = now.get(name, {}).get("top1")
        change = f"{new - final['top1']:+.2f}" if new is not None else "–"
        out.append(f"| `{name}` | {final['top1']:.2f} | {fmt(final.get('top1_mc'))} | {h} | {where} | {fmt(new)} | "
                   f"{change} |")
    return out if len(out) > 2 else []


SWEEP_TEXT = (
    "The anchored variant at 288 px, at the recipe's mu = 1.5 (the app's default before this sweep) and at two "
    "lower weights, two seeds each (`scripts/train_levers.sh`). `cub-mc-anchor` and `cub-mc-anchor-s1` are the "
    "mu = 0.15 configuration trained again by `scripts/train_checkpoints.sh` on the same cache (the targets "
    "table): at seed 0 it gives the lever run's weights exactly (69.66 %, the same loss at every epoch), at "
    "seed 1 other weights from the first epoch on (70.71 % against 70.31 %; the cause is not found), so the "
    "default's seed 1 is a third sample of the configuration. The mu = 0.5 and 0.15 runs were trained "
    "on a rebuilt copy of the block-5 caches (a later session, another machine of the same kind), whose "
    "features differ from the first copy's in the third digit (float rounding; correlation 0.99999): that moves "
    "a run by a few tenths (`anchor-s288-mu015-s1`: 71.61 % with flip on the first copy, 71.40 % on the second), "
    "the size of the seed-to-seed spread, so each weight's two seeds share one copy. A lower weight buys "
    "accuracy with localisation: the MC branch's own top-1 and h fall with mu (the runs' records), and so do "
    "the distinct parts.")


# The anchored variant's MC-Loss weight, two seeds each: (mu, seed-0 run, seed-1 run).
ANCHOR_SWEEP = (("1.5", "anchor-s288", "anchor-s288-s1"), ("0.5", "anchor-s288-mu05", "anchor-s288-mu05-s1"),
                ("0.15", "anchor-s288-mu015", "anchor-s288-mu015-s1"))


def _sweep_point(seed0: str, seed1: str) -> Optional[tuple[list[float], float, float]]:
    """(top-1 of each seed, mean distinct parts, mean peaks in the box) of a two-seed pair, or
    None while one of its runs or localisations is missing."""
    finals = {name: final for name, _, _, final in recorded((seed0, seed1))}
    locs = [_localization(n) for n in (seed0, seed1)]
    if any(finals.get(n) is None for n in (seed0, seed1)) or not all(locs):
        return None
    return ([finals[n]["top1"] for n in (seed0, seed1)], sum(r["distinct_parts"] for r in locs) / 2,
            sum(r["in_box"] for r in locs) / 2)


def anchor_sweep_rows(ce_mean: Optional[float], default_mu: Optional[float]) -> list[str]:
    """The anchored variant at each MC-Loss weight against ``ce_mean`` (CE's two-seed top-1) and
    the rule that picks the shipped configuration: within 0.5 of CE on the mean of two seeds, at
    least PARTS_FLOOR parts and BOX_FLOOR peaks in the box; then the most distinct parts.
    ``default_mu``: the weight `cub-mc-anchor` was trained with, said beside the rule's pick."""
    if ce_mean is None:
        return []
    out = ["| mu | top-1 % seed 0 | seed 1 | mean | mean - CE's | distinct parts / image (mean) | "
           "peaks in the box (mean) | meets the rule's bars |", "|---|---|---|---|---|---|---|---|"]
    passing = []
    for mu, seed0, seed1 in ANCHOR_SWEEP:
        point = _sweep_point(seed0, seed1)
        if point is None:
            continue
        (a, b), parts, box = point
        mean = (a + b) / 2
        ok = mean >= ce_mean - 0.5 and parts >= PARTS_FLOOR and box >= BOX_FLOOR
        if ok:
            passing.append((parts, mu))
        out.append(f"| {mu} | {a:.2f} | {b:.2f} | {mean:.2f} | {mean - ce_mean:+.2f} | {parts:.3f} | {box:.3f} | "
                   f"{'yes' if ok else 'no'} |")
    if len(out) == 2:
        return []
    pick = f"The rule picks mu = {max(passing)[1]}." if passing else "No weight meets the rule's bars."
    if default_mu is not None:
        pick += f" `cub-mc-anchor`, the app's default, is trained with mu = {default_mu:g}."
    return [f"CE's two-seed mean: {ce_mean:.2f} %, so the bar is {ce_mean - 0.5:.2f} %.", "", *out, "", pick]
