"""``mcviz locator train`` and ``mcviz locator eval``: the CUB part locator."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from .common import UserError, split_pass


def add_locator(sub) -> None:
    p = sub.add_parser("locator", help="the CUB part locator: where each part of this bird is (train, eval)")
    lsub = p.add_subparsers(dest="locator_command", metavar="ACTION")
    t = lsub.add_parser("train", help="train the locator on CUB's training split (frozen trunk's cached outputs)")
    t.add_argument("--root", required=True, help="CUB_200_2011 folder (its own layout, with parts/)")
    t.add_argument("--out", required=True, help="run folder: last.safetensors, state.pt, metrics.jsonl")
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--width", type=int, default=96, help="channels of the head")
    t.add_argument("--image-size", type=int, default=288)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--limit", type=int, default=None, help="the first N images of each split (a quick check)")
    t.add_argument("--cache-dir", default="", help="default $MCVIZ_CACHE or .cache/trunk")
    t.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    t.set_defaults(func=cmd_train)
    e = lsub.add_parser(
        "eval",
        help="PCK@0.1, visibility accuracy and box IoU on CUB's test split; with --models, "
        "how often the parts named under each model's peaks agree with the annotations'",
    )
    e.add_argument("locator", help="a locator file (checkpoints/cub-parts.locator.safetensors)")
    e.add_argument("--root", required=True)
    e.add_argument("--models", nargs="*", default=[], help="CUB checkpoints for the naming agreement")
    e.add_argument("--limit", type=int, default=None)
    e.add_argument("--cache-dir", default="")
    e.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    e.set_defaults(func=cmd_eval)
    p.set_defaults(func=lambda args, argv: (p.print_help(), 2)[1])


def cmd_train(args, argv) -> int:
    from ..train.part_locator import LocatorConfig, train_locator

    if not (Path(args.root) / "parts" / "part_locs.txt").is_file():
        raise UserError(f"{args.root} is not a CUB-200-2011 folder with parts/part_locs.txt")
    cfg = LocatorConfig(
        root=args.root,
        out=args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        width=args.width,
        image_size=args.image_size,
        seed=args.seed,
        limit=args.limit,
        cache_dir=args.cache_dir,
        command="mcviz " + shlex.join(argv),
    )
    row = train_locator(cfg, resume=args.resume)
    print(f"wrote {Path(args.out) / 'last.safetensors'} (epoch {row.get('epoch', cfg.epochs)})")
    return 0


def cmd_eval(args, argv) -> int:
    from ..io.locator_file import load_locator
    from ..evaluate.part_locator import evaluate_locator, naming_agreement
    from ..io.checkpoint import CheckpointError

    try:
        locator, meta = load_locator(args.locator)
    except (CheckpointError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    report = evaluate_locator(locator, meta, args.root, args.limit, cache_dir=args.cache_dir)
    print(
        f"{report.images} test images: PCK@0.1 {100 * report.pck:.1f} % of visible parts, visibility "
        f"{100 * report.visibility_accuracy:.1f} %, box IoU {report.box_iou:.3f}"
    )
    for name, v in report.pck_per_part.items():
        print(f"  {name:<11} {100 * v:5.1f} %")
    for ckpt in args.models:
        name = Path(ckpt).stem
        run = split_pass(args, checkpoint=ckpt, dataset="cub")
        report.naming[name], report.naming_confusions[name] = naming_agreement(locator, run)
        print(
            f"naming agreement, {name}: {100 * report.naming[name]:.1f} % of its peaks; most often instead: "
            + ", ".join(f"{a} -> {b} ({100 * s:.1f} %)" for a, b, s in report.naming_confusions[name][:4])
        )
    if args.json:
        print(json.dumps(report.as_dict()), file=sys.stdout)
    return 0
