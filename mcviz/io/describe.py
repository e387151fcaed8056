"""A checkpoint in words, for the app and the reports: its data set, loss and head, named so that
a reader tells the anchored variant from plain MC-Loss and a class-connected head from the others."""

from __future__ import annotations

import shlex
from pathlib import Path

from .meta import CheckpointMeta

__all__ = ["dataset_name", "head_name", "variant_name", "xi_text"]

_DATASETS = {"cub": "CUB-200-2011", "cars": "Stanford Cars", "aircraft": "FGVC-Aircraft", "flowers": "Flowers-102"}
# image folders whose name says which data set they hold
_FOLDERS = {"stanford_cars": "Stanford Cars", "cars": "Stanford Cars", "fgvc_aircraft": "FGVC-Aircraft",
            "flowers-102": "Flowers-102", "cub_200_2011": "CUB-200-2011"}
_VARIANTS = {"ce": "cross-entropy", "mc": "MC-Loss", "mc-no-div": "MC-Loss without L_div",
             "mc-no-dis": "MC-Loss without L_dis", "mc-no-cwa": "MC-Loss without CWA",
             "mc-v2": "MC-Loss v2 (L_div of the true class only)", "mc-ccap": "MC-Loss with cross-channel average",
             "mc-soft": "MC-Loss on soft channel labels"}
_HEADS = {"official": "official head", "gap": "GAP + linear head",
          "class-connected-max": "class-connected head (max pool)",
          "class-connected-avg": "class-connected head (average pool)"}
RECIPE_MU = 1.5  # the from-scratch setting (paper Sec. IV-A), which the shipped models keep


def _root(command: str) -> str:
    try:
        words = shlex.split(command)
    except ValueError:
        return ""
    return words[words.index("--root") + 1] if "--root" in words[:-1] else ""


def dataset_name(meta: CheckpointMeta) -> str:
    """``"CUB-200-2011"``, ``"Stanford Cars"``...; an image folder by what its name says, else by its name."""
    if meta.dataset in _DATASETS:
        return _DATASETS[meta.dataset]
    folder = Path(_root(meta.command)).name
    return _FOLDERS.get(folder.lower(), f"image folder {folder}" if folder else (meta.dataset or "unknown data"))


def variant_name(meta: CheckpointMeta) -> str:
    """``"MC-Loss, anchored L_div, λ = 2, μ = 0.3"``: the loss and every option that differs from
    the paper's (cross-entropy has none)."""
    name = _VARIANTS.get(meta.variant or "", meta.variant or "unknown loss")
    if meta.variant in (None, "ce"):
        return name
    opts = meta.diversity_options()
    words = []
    if opts.get("div_anchor"):
        words.append("anchored L_div")
    elif opts.get("div_region"):
        words.append(f"L_div in the {opts['div_region']} region")
    if "lam" in opts:
        words.append(f"λ = {opts['lam']:g}")
    mu = meta.hparam("mu")
    if mu is not None and mu != RECIPE_MU:
        words.append(f"μ = {mu:g}")
    return ", ".join([name, *words])


def head_name(meta: CheckpointMeta) -> str:
    return _HEADS.get(meta.head, f"{meta.head} head")


def xi_text(meta: CheckpointMeta) -> str:
    """ξ as trained: ``"3"``; soft labels regroup the channels, so ``"3 at the start, 1-6 now"``."""
    sizes = meta.groups.get("sizes") or [len(m) for m in meta.groups.get("members") or []]
    start = meta.hparam("xi")
    if meta.soft or (sizes and min(sizes) != max(sizes)):
        now = f"{min(sizes)}-{max(sizes)}" if sizes else "?"
        lead = f"{start} at the start, " if start is not None and meta.soft else ""
        return f"{lead}{now} per class" + (" now" if meta.soft else "")
    return str(max(sizes)) if sizes else (str(start) if start is not None else "–")
