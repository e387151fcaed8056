"""The targets table of docs/results.md: issue 19's targets, each with what was measured and, where
missed, by how much. Used by scripts/results.py.

Two records are not in any checkpoint: docs/runs/eval-speed.json (the last line of
`mcviz eval CKPT --dataset cub --root ... --no-cache --json` over the full test split, the speed
target's measurement) and docs/runs/train-checkpoints.json (`{"wall_s": ...}`, written by
scripts/train_checkpoints.sh when it rebuilds every model: run without names).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from results_class_head import cc_target_rows
from results_levers import LEVERS, recorded, train_minutes
from results_models import (
    BOX_FLOOR,
    OWN_FLOOR,
    PARTS_FLOOR,
    REPO,
    RUNS_DOC,
    mean_top1,
    default_model,
    localization,
    map_side,
    soft_family,
)

CHECKPOINTS = REPO / "checkpoints"


def _minutes(name: str) -> Optional[float]:
    f = RUNS_DOC / f"{name}.metrics.jsonl"
    if not f.exists():
        return None
    return train_minutes([json.loads(line) for line in f.read_text().splitlines() if line.strip()])


def _best_lever() -> Optional[tuple[str, float]]:
    """The finished CE lever run with the highest top-1 (every row of the lever table is CE)."""
    best = None
    for name, _, _, final in recorded(dict(LEVERS)):
        if final is not None and (best is None or final["top1"] > best[1]):
            best = (name, final["top1"])
    return best


class _Table:
    def __init__(self) -> None:
        self.rows = [
            "## Targets",
            "",
            "The targets (final epoch, full test split). Where one is missed, the last column says by how much.",
            "",
            "| target | measured | met | missed by |",
            "|---|---|---|---|",
        ]

    def row(self, what: str, measured: str, ok: Optional[bool], short: str = "") -> None:
        met = "not measured" if ok is None else "yes" if ok else "**no**"
        self.rows.append(f"| {what} | {measured} | {met} | {'' if ok else short} |")


def _parity_row(t: _Table, by: dict, default: str) -> None:
    """MC-Loss against CE on two seeds: the shipped configuration is the default model's; plain
    `cub-mc` is shown beside it."""
    ce2 = mean_top1(by, ["cub-ce", "cub-ce-s1"])
    means = {n: v for n in dict.fromkeys([default, "cub-mc"]) if (v := mean_top1(by, [n, f"{n}-s1"])) is not None}
    if ce2 is None or default not in means:
        return
    shown = "; ".join(
        f"`{n}`{' (the default)' if n == default else ''} {v:.2f} % ({v - ce2:+.2f})" for n, v in means.items()
    )
    t.row(
        "CUB: shipped MC-Loss configuration >= CE - 0.5 (means of two seeds)",
        f"{shown}; CE {ce2:.2f} %",
        means[default] >= ce2 - 0.5,
        f"{ce2 - 0.5 - means[default]:.2f}",
    )


def _accuracy_rows(t: _Table, by: dict, cub) -> None:
    default = default_model()
    ce = by.get("cub-ce", {}).get("top1")
    if ce is not None:
        best = _best_lever()
        extra = f" (best CE lever run: `{best[0]}` {best[1]:.2f} %)" if best else ""
        t.row(
            "CUB: CE >= 76 % top-1",
            f"`cub-ce` {ce:.2f} %{extra}",
            ce >= 76,
            f"{76 - max(ce, best[1] if best else ce):.2f}",
        )
    d = by.get(default, {}).get("top1")
    if d is not None:
        t.row(f"CUB: the app's default model (`{default}`) >= 76 % top-1", f"{d:.2f} %", d >= 76, f"{76 - d:.2f}")
    sides = {p.stem: map_side(m.input["crop"], m.backbone) for p, m in cub}
    if sides:
        worst = min(sides, key=sides.get)
        t.row(
            "CUB: every model's maps 14x14 or finer",
            f"coarsest: `{worst}` {sides[worst]}x{sides[worst]}",
            sides[worst] >= 14,
            f"{14 - sides[worst]} cells",
        )
    _parity_row(t, by, default)
    cc_target_rows(t, by, mean_top1(by, ["cub-ce", "cub-ce-s1"]))
    cars_ce = by.get("cars-ce", {}).get("top1")
    cars_mc = {n: by[n]["top1"] for n in ("cars-mc-anchor", "cars-mc") if "top1" in by.get(n, {})}
    if cars_ce is not None:
        t.row("Stanford Cars: CE >= 80 % top-1", f"{cars_ce:.2f} %", cars_ce >= 80, f"{80 - cars_ce:.2f}")
        if cars_mc:
            best = max(cars_mc.values())
            t.row(
                "Stanford Cars: MC-Loss >= CE - 0.5",
                "; ".join(f"`{n}` {v:.2f} % ({v - cars_ce:+.2f})" for n, v in cars_mc.items())
                + f"; CE {cars_ce:.2f} %",
                best >= cars_ce - 0.5,
                f"{cars_ce - 0.5 - best:.2f}",
            )


def _explanation_rows(t: _Table, by: dict, cub) -> None:
    default = default_model()
    loc = {p.stem: localization(p) for p, _ in cub}.get(default)
    if loc:
        t.row(
            f"default model: >= {PARTS_FLOOR:.1f} distinct parts per image",
            f"{loc['distinct_parts']:.3f}",
            loc["distinct_parts"] >= PARTS_FLOOR,
            f"{PARTS_FLOOR - loc['distinct_parts']:.3f}",
        )
        t.row(
            f"default model: >= {BOX_FLOOR:.2f} of the peaks in the box",
            f"{loc['in_box']:.3f}",
            loc["in_box"] >= BOX_FLOOR,
            f"{BOX_FLOOR - loc['in_box']:.3f}",
        )
    faith = RUNS_DOC / f"{default}.faithfulness.json"
    if faith.exists():  # issue 20's target, measured by scripts/faithfulness.py
        own = json.loads(faith.read_text())["in-sample"]["own_in_top10"]["effect"]
        t.row(
            f"default model: >= {OWN_FLOOR} of a class's own channels in its top 10 by effect",
            f"{own:.2f}",
            own >= OWN_FLOOR,
            f"{OWN_FLOOR - own:.2f}",
        )
    fam, base = soft_family(cub), by.get("cub-mc", {}).get("top1")
    if fam:
        name, f, soft_top1 = fam
        if base is not None:
            t.row(
                "soft labels: top-1 >= plain MC-Loss's - 1",
                f"`{name}` {soft_top1:.2f} % vs {base:.2f} %",
                soft_top1 >= base - 1,
                f"{base - 1 - soft_top1:.2f}",
            )
        t.row(
            "soft labels: family / random sharing of top-10 lists >= 2",
            f"{f['ratio']:.2f}",
            f["ratio"] >= 2,
            f"{2 - f['ratio']:.2f}",
        )


def _wall_text(path: Path) -> str:
    """The rebuild's wall time, with how it was run when that was not one uninterrupted call."""
    r = json.loads(path.read_text())
    text = f"{r['wall_s'] / 3600:.1f} h at {r.get('size', '?')} px"
    return f"{text} ({r['note']})" if r.get("note") else text


def _cost_rows(t: _Table, cub, cars) -> None:
    shipped = [p.stem for p, _ in list(cub) + list(cars) if p.shipped]
    minutes = {n: m for n in shipped if (m := _minutes(n)) is not None}
    if minutes:
        slow = max(minutes, key=minutes.get)
        t.row(
            "<= 30 minutes of this CPU per model after the cache",
            f"slowest: `{slow}` {minutes[slow]:.1f} min",
            minutes[slow] <= 30,
            f"{minutes[slow] - 30:.1f} min",
        )
    wall = RUNS_DOC / "train-checkpoints.json"
    t.row(
        "wall time of all of `scripts/train_checkpoints.sh` reported",
        _wall_text(wall) if wall.exists() else "no full rebuild recorded",
        True if wall.exists() else None,
    )
    speed = RUNS_DOC / "eval-speed.json"
    if speed.exists():
        r = json.loads(speed.read_text())
        ips = r["n"] / r["seconds"]
        t.row(
            "`mcviz eval` of a CUB model reads the images at >= 40 img/s",
            f"{ips:.1f} img/s (`mcviz eval {r.get('checkpoint', 'CKPT')} --no-cache`, {r['n']} images in "
            f"{r['seconds']:.0f} s, 2 cores)",
            ips >= 40,
            f"{40 - ips:.1f} img/s",
        )
    else:
        t.row("`mcviz eval` of a CUB model reads the images at >= 40 img/s", "no record", None)
    size = sum(f.stat().st_size for f in CHECKPOINTS.rglob("*") if f.is_file()) / 1e6
    t.row("`checkpoints/` <= 100 MB", f"{size:.1f} MB", size <= 100, f"{size - 100:.1f} MB")


def targets(by: dict, cub, cars) -> list[str]:
    """The targets table: ``by`` maps a model's name to its metrics, ``cub``/``cars`` are its runs."""
    t = _Table()
    _accuracy_rows(t, by, cub)
    _explanation_rows(t, by, cub)
    _cost_rows(t, cub, cars)
    return t.rows
