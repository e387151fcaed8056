"""``mcviz`` command line: thin wrappers that parse, call the library and print.

One module per family of commands: :mod:`.train`, :mod:`.evaluate` (the commands that run a
checkpoint over a data set) and :mod:`.explain`; :mod:`.common` holds what they share.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .._version import __version__
from ..memory import keep_freed_memory
from . import consistency, evaluate, explain, locator, ood, train
from .common import UserError

__all__ = ["UserError", "build_parser", "main", "train_main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcviz", description="Mutual-Channel Loss: train, evaluate, explain.")
    p.add_argument("--version", action="version", version=f"mcviz {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    train.add_train(sub)
    evaluate.add_eval(sub)
    explain.add_explain(sub)
    locator.add_locator(sub)
    for add in (
        evaluate.add_localize,
        evaluate.add_sanity,
        evaluate.add_atlas,
        evaluate.add_parts,
        evaluate.add_cache,
        evaluate.add_rank,
        evaluate.add_faithfulness,
        ood.add_calibrate_ood,
        consistency.add_consistency,
    ):
        add(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    keep_freed_memory()  # every command runs batches through a network: see mcviz.memory
    try:
        return int(args.func(args, argv) or 0)
    except UserError as exc:
        print(f"mcviz: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mcviz: interrupted", file=sys.stderr)
        return 130


def train_main() -> int:
    """``mcviz-train``: the train subcommand as its own script (for ``torchrun``)."""
    return main(["train", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
