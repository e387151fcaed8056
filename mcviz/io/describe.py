"""A checkpoint in words, for the app and the reports: its data set, loss and head, named so that
a reader tells the anchored variant from plain MC-Loss and a class-connected head from the others."""

from __future__ import annotations

import shlex
from pathlib import Path

from .meta import CheckpointMeta

__all__ = ["dataset_name", "head_name", "plain_command", "training_name", "variant_name", "xi_text"]

_DATASETS = {"cub": "CUB-200-2011", "cars": "Stanford Cars", "aircraft": "FGVC-Aircraft", "flowers": "Flowers-102"}
# image folders whose name says which data set they hold
_FOLDERS = {
    "stanford_cars": "Stanford Cars",
    "cars": "Stanford Cars",
    "fgvc_aircraft": "FGVC-Aircraft",
    "flowers-102": "Flowers-102",
    "cub_200_2011": "CUB-200-2011",
}
_VARIANTS = {
    "ce": "cross-entropy",
    "mc": "MC-Loss",
    "mc-no-div": "MC-Loss without L_div",
    "mc-no-dis": "MC-Loss without L_dis",
    "mc-no-cwa": "MC-Loss without CWA",
    "mc-v2": "MC-Loss v2 (L_div of the true class only)",
    "mc-ccap": "MC-Loss with cross-channel average",
    "mc-soft": "MC-Loss on soft channel labels",
}
_HEADS = {
    "official": "official head",
    "gap": "GAP + linear head",
    "class-connected-max": "class-connected head (max pool)",
    "class-connected-avg": "class-connected head (average pool)",
}
RECIPE_MU = 1.5  # the from-scratch setting (paper Sec. IV-A), which the shipped models keep


def _flag(command: str, flag: str) -> str:
    """The value of ``flag`` in a recorded command (its last one), or ""."""
    try:
        words = shlex.split(command)
    except ValueError:
        return ""
    found = [words[i + 1] for i, w in enumerate(words[:-1]) if w == flag]
    return found[-1] if found else ""


def _root(command: str) -> str:
    return _flag(command, "--root")


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


def training_name(meta: CheckpointMeta) -> str:
    """How the body was trained and from what teacher: ``"body frozen through block5; block 6 and the
    head conv trained (0.2 x lr); distilled from cub-ce (weight 3, T = 4)"``."""
    words = []
    freeze = meta.hparam("freeze")
    if freeze:
        words.append(f"body frozen through {freeze}")
        if freeze != "head_conv":
            words.append(
                f"the layers after {freeze} trained"
                + (f" ({meta.hparam('body_lr'):g} x lr)" if meta.hparam("body_lr", 1.0) != 1.0 else "")
            )
    elif meta.hparam("pretrained"):
        words.append("whole body fine-tuned")
    teacher = _flag(meta.command, "--distill")  # a path: not a hyperparameter, but the command has it
    if teacher and meta.hparam("distill_weight"):
        words.append(
            f"distilled from {Path(teacher).name.removesuffix('.safetensors')} (weight "
            f"{meta.hparam('distill_weight'):g}, T = {meta.hparam('distill_temperature', 4.0):g})"
        )
    if meta.hparam("part_guide"):
        words.append(f"part-guided (weight {meta.hparam('part_guide'):g}: uses CUB's part annotations)")
    if meta.hparam("cache_noise"):
        words.append(f"trained also on noisy copies of its views (std {meta.hparam('cache_noise'):g})")
    if meta.map_blur:
        words.append(f"maps blurred by a Gaussian of {meta.map_blur:g} cell" + ("s" if meta.map_blur != 1 else ""))
    return "; ".join(words) or "trained from scratch"


def plain_command(command: str) -> str:
    """The recorded command with each repeated option said once, at its last value (the value that
    counted): ``--image-size 224 ... --image-size 288`` becomes ``--image-size 288``."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    items: list[list[str]] = []
    for w in words:
        if w.startswith("--") or not items:
            items.append([w])
        else:
            items[-1].append(w)
    last = {item[0]: i for i, item in enumerate(items) if item[0].startswith("--")}
    kept = [item for i, item in enumerate(items) if not item[0].startswith("--") or last[item[0]] == i]
    return shlex.join([w for item in kept for w in item])
