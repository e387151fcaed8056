"""The targets of the app's default CUB model's channels: different parts, consistent and stable, still
exact and as accurate as cross-entropy. Each figure is read from its record (the checkpoint's part
profiles, the lever run's localisation and deletion records, the consistency records, the checkpoints'
metadata), beside the same figures of `cub-mc-cc` (the same recipe without part annotations).

Used by scripts/consistency_doc.py (docs/consistency.md).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Optional

import recipes
from readme_figures import _kept_top1, better_ce
from results_models import RUNS_DOC, default_model

from mcviz.evaluate.parts import PartProfiles
from mcviz.io import read_metadata

REPO = Path(__file__).resolve().parents[1]
CKPTS = REPO / "checkpoints"
LEVERS = RUNS_DOC / "levers"


def _json(path: Path) -> Optional[dict]:
    return json.loads(path.read_text()) if path.exists() else None


def _top1(name: str) -> Optional[float]:
    """A model's final-epoch top-1: the shipped checkpoint's, or a second seed's kept metadata."""
    if (CKPTS / f"{name}.safetensors").exists():
        return read_metadata(CKPTS / f"{name}.safetensors").metrics.top1
    return _kept_top1(name)


def usual_parts(name: str) -> Optional[dict]:
    """From NAME.parts.json: the mean number of distinct usual parts of a class's channels, the classes
    whose channels share one usual part, and the channels whose usual part is the throat."""
    path = CKPTS / f"{name}.parts.json"
    if not path.exists():
        return None
    prof = PartProfiles.from_json(path.read_text())
    groups = read_metadata(CKPTS / f"{name}.safetensors").channel_groups()
    tops = [c.top for c in prof.own]
    distinct = [len({tops[ch] for ch in groups.channels(c)}) for c in range(groups.num_classes)]
    return {
        "distinct": sum(distinct) / len(distinct),
        "collapsed": sum(d == 1 for d in distinct),
        "throat": Counter(tops)["throat"],
        "channels": len(tops),
    }


def figures(name: str) -> dict:
    """Every figure of the targets for the shipped model ``name`` (None where a record is missing)."""
    lever = recipes.lever_of_shipped().get(name)
    seeds = [t for t in (_top1(name), _top1(recipes.second_seed(name))) if t is not None]
    loc = _json(LEVERS / f"{lever}.localize.json") if lever else None
    faith = _json(LEVERS / f"{lever}.faithfulness.json") if lever else None
    cons = _json(RUNS_DOC / "consistency" / f"{name}.json")
    drops = (faith or {}).get("drops", {})
    own, rnd = drops.get("own-channels", {}).get("3"), drops.get("random", {}).get("3")
    return {
        "top1": seeds,
        "parts": usual_parts(name),
        "localize": loc,
        "consistency": cons,
        "off": (100 * own[0], 100 * rnd[0]) if own and rnd else None,
        "annotations": bool(read_metadata(CKPTS / f"{name}.safetensors").hparam("part_guide", 0)),
    }


def _cell(f: dict, key: str) -> tuple[str, Optional[bool]]:
    p, loc, cons = f["parts"], f["localize"], f["consistency"]
    if key == "top1":
        if not f["top1"]:
            return "–", None
        mean = sum(f["top1"]) / len(f["top1"])
        plain = [t for t in (_top1("cub-ce"), _top1("cub-ce-s1")) if t is not None]
        bar = better_ce(sum(plain) / len(plain) if plain else None)
        seeds = " / ".join(f"{t:.2f}" for t in f["top1"])
        return f"{mean:.2f} % ({seeds}; bar {bar - 0.5:.2f})", (mean >= bar - 0.5 and len(f["top1"]) == 2)
    if key == "distinct":
        return ("–", None) if p is None else (f"{p['distinct']:.2f}", p["distinct"] >= 2.9)
    if key == "collapsed":
        return (
            ("–", None)
            if p is None
            else (f"{p['collapsed']} (throat: {p['throat']} of {p['channels']})", p["collapsed"] <= 2)
        )
    if key in ("same_part_rate", "distinct_parts", "in_box"):
        if loc is None:
            return "–", None
        v = loc[key]
        ok = v <= 0.15 if key == "same_part_rate" else v >= (2.4 if key == "distinct_parts" else 0.90)
        return f"{v:.3f}", ok
    if key in ("consistency", "stability"):
        if cons is None:
            return "–", None
        return f"{cons[key]:.1f} %", cons[key] >= (60 if key == "consistency" else 50)
    if key == "off":
        if f["off"] is None:
            return "–", None
        own, rnd = f["off"]
        return f"{own:.1f} against {rnd:.1f} points ({own / max(rnd, 1e-9):.0f}x)", own >= 5 * rnd
    raise KeyError(key)


TARGETS = [
    ("top1", "top-1, mean of two seeds >= the better CE mean - 0.5"),
    ("distinct", "distinct usual parts per class >= 2.9 of 3"),
    ("collapsed", "classes whose channels share one usual part <= 2"),
    ("same_part_rate", "`localize`: two channels on one part <= 0.15 of the photos"),
    ("distinct_parts", "`localize`: distinct parts per photo >= 2.4"),
    ("in_box", "`localize`: peaks in the box >= 0.90"),
    ("consistency", "consistency >= 60 %"),
    ("stability", "stability >= 50 %"),
    ("off", "exact: own channels off drop a class's accuracy >= 5x as many random ones (k = 3)"),
]


def rows() -> list[str]:
    """The targets table: the default beside `cub-mc-cc` (when the default is another model)."""
    default = default_model()
    names = [default] + (["cub-mc-cc"] if default != "cub-mc-cc" and (CKPTS / "cub-mc-cc.safetensors").exists() else [])
    figs = {n: figures(n) for n in names}
    head = (
        "| target | "
        + " | ".join(f"`{n}`" + (" (default, part annotations)" if figs[n]["annotations"] else "") for n in names)
        + " |"
    )
    out = [head, "|---|" + "---|" * len(names)]
    for key, what in TARGETS:
        cells = []
        for n in names:
            text, ok = _cell(figs[n], key)
            cells.append(text + ("" if ok is None else " ✓" if ok else " ✗"))
        out.append(f"| {what} | " + " | ".join(cells) + " |")
    return out
