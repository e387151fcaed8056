"""What every ``mcviz`` command shares: the error a user can fix, loading a checkpoint, the
arguments of the commands that run a checkpoint over a data set, and image inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..data import DATASETS, IMAGE_SUFFIXES


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def checkpoint_and_data(p, datasets=None) -> None:
    """The arguments of every command that runs a checkpoint over a data set."""
    p.add_argument("checkpoint")
    p.add_argument(
        "--dataset",
        choices=datasets or DATASETS,
        required=datasets is None,
        default=None if datasets is None else datasets[0],
    )
    p.add_argument("--root", required=True, help="folder that holds the data set")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=None, help="a random subset of N images")
    p.add_argument("--workers", type=int, default=2)


def cache_options(p, no_cache: bool = True) -> None:
    """``--cache-dir`` (and ``--no-cache``) of the commands that run a checkpoint over a split."""
    p.add_argument(
        "--cache-dir",
        default=None,
        help="trunk cache of a --freeze model (default $MCVIZ_CACHE or .cache/trunk); used when it "
        "holds this split, else the images are read",
    )
    if no_cache:
        p.add_argument("--no-cache", dest="use_cache", action="store_false", help="always read the images")


def split_pass(args, **over):
    """The :class:`~mcviz.trunk.split_pass.SplitPass` a command's arguments name: the checkpoint and
    data arguments (:func:`checkpoint_and_data`, :func:`cache_options`, ``--batch-size``) where the
    command has them; ``over`` replaces any field (``checkpoint=`` another file, or ``model=`` and
    ``meta=`` an already loaded and changed model)."""
    from ..trunk.split_pass import SplitPass

    opts = {
        "dataset": getattr(args, "dataset", None) or "cub",
        "root": args.root,
        "split": getattr(args, "split", "test"),
        "limit": getattr(args, "limit", None),
        "workers": getattr(args, "workers", 2),
        "batch_size": getattr(args, "batch_size", 64),
        "use_cache": getattr(args, "use_cache", True),
        "cache_dir": getattr(args, "cache_dir", None) or None,
    }
    opts.update(over)
    checkpoint = Path(opts.pop("checkpoint", None) or args.checkpoint)
    if "model" not in opts:
        opts["model"], opts["meta"] = load(str(checkpoint))
    return SplitPass(checkpoint=checkpoint, **opts)


def load(path: str):
    from ..io.checkpoint import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(path)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None


def image_files(inputs: Sequence[str], missing_ok: bool = False):
    """The image files named or found in the folders named. A missing path is an error, or with
    ``missing_ok`` is returned beside them: ``(files, missing)``, to report and skip."""
    out: list[Path] = []
    missing: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():
            out.append(p)
        elif missing_ok:
            missing.append(p)
        else:
            raise UserError(f"{p}: no such file or folder")
    return (out, missing) if missing_ok else out
