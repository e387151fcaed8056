"""``mcviz train``: its flags come from :class:`mcviz.train.config.TrainConfig`."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Sequence

from ..train.config import MACHINE_OPTIONS, TrainConfig, add_arguments, config_from_args
from .common import UserError


def add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (CE or an MC-Loss variant)",
        description="Train on a data set; resumable with --resume, distributed under torchrun.",
    )
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last finished epoch")
    add_arguments(p)
    p.set_defaults(func=cmd_train)


def _resumed_config(args, given: set[str]) -> TrainConfig:
    """The config of the run in ``--resume DIR``, extended to ``--epochs`` and with the machine's
    own options (workers, device, cache folder) where given again."""
    from ..train import load_state

    try:
        state = load_state(args.resume)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    cfg_d = json.loads(state["config"])
    cfg_d["out"] = args.resume
    if args.epochs is not None:
        if args.epochs < state["epoch"]:
            raise UserError(f"--epochs {args.epochs} is less than the {state['epoch']} epochs already done")
        cfg_d["epochs"] = args.epochs
    for name in MACHINE_OPTIONS:
        if f"--{name.replace('_', '-')}" in given:
            cfg_d[name] = getattr(args, name)
    return TrainConfig(**cfg_d)


def _new_config(args, argv: Sequence[str]) -> TrainConfig:
    missing = [n for n in ("dataset", "root", "out") if getattr(args, n) is None]
    if missing:
        raise UserError("train needs " + ", ".join(f"--{m}" for m in missing) + " (or --resume DIR)")
    try:
        cfg = config_from_args(args, "mcviz " + " ".join(shlex.quote(a) for a in argv))
    except ValueError as exc:  # bad combination of options
        raise UserError(str(exc)) from None
    if (Path(cfg.out) / "state.pt").exists():
        raise UserError(f"{cfg.out} already holds a run; use --resume {cfg.out} or another --out")
    return cfg


def cmd_train(args, argv: Sequence[str]) -> int:
    from ..core.models import PretrainedUnavailable
    from ..data import DataError
    from ..train import ConfigError, train

    given = {a.split("=")[0] for a in argv if a.startswith("--")}
    cfg = _resumed_config(args, given) if args.resume else _new_config(args, argv)
    try:
        last = train(cfg, resume=bool(args.resume))
    except (DataError, PretrainedUnavailable, FileNotFoundError, ConfigError) as exc:
        raise UserError(str(exc)) from None
    if last and "top1" in last:
        print(
            f"final epoch {last['epoch']}: top-1 {last['top1']:.2f}%  mean h {last['mean_h']:.3f}  "
            f"-> {Path(cfg.out) / 'last.safetensors'}"
        )
    return 0
