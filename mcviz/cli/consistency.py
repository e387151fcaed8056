"""``mcviz consistency``: part consistency and stability of a CUB model's channels (Huang et al., 2023)."""

from __future__ import annotations

import json

from .common import UserError, split_pass


def add_consistency(sub) -> None:
    p = sub.add_parser(
        "consistency",
        help="part consistency and stability of a CUB model's channels (Huang et al., "
        "ICCV 2023); writes NAME.consistency.json beside the checkpoint",
    )
    p.add_argument("checkpoint")
    p.add_argument("--root", required=True, help="the CUB-200-2011 folder")
    p.add_argument(
        "--size",
        type=int,
        default=288,
        help="box crops squashed to SIZE x SIZE (default 288; the protocol's papers use 224 on full-size photos)",
    )
    p.add_argument("--limit", type=int, default=None, help="the first N test photos only (a quick look; not saved)")
    p.add_argument(
        "--smooth",
        type=float,
        default=0.0,
        metavar="CELLS",
        help="blur each map by a Gaussian of CELLS feature cells before its argmax (not the protocol: a "
        "lever for stability; not saved)",
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="where the frozen trunk's outputs are cached (default $MCVIZ_CACHE or .cache/trunk)",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", action="store_true", help="end with one JSON line of the summary")
    p.set_defaults(func=cmd_consistency)


def cmd_consistency(args, argv) -> int:
    from ..data import DataError
    from ..evaluate.consistency import consistency_report, save_consistency

    run = split_pass(args, dataset="cub", split="test", batch_size=args.batch_size)
    if run.meta.dataset != "cub":
        raise UserError(
            f"{args.checkpoint} is a {run.meta.dataset or 'non-CUB'} model: the protocol needs CUB's part annotations"
        )
    try:
        r = consistency_report(run, args.size, args.smooth)
    except (DataError, ValueError) as exc:
        raise UserError(str(exc)) from None
    saved = None if args.limit or args.smooth else save_consistency(r, args.checkpoint)
    print(
        f"{args.checkpoint}: consistency {r.consistency:.1f} % of {len(r.channels)} channels, stability "
        f"{r.stability:.1f} % ({r.images} CUB test photos, box crops at {r.size} px"
        + (f", maps blurred by {r.smooth:g} cells" if r.smooth else "")
        + ")"
        + (f" -> {saved}" if saved else "")
    )
    parts: dict[str, int] = {}
    for c in r.channels:
        if c.consistent:
            parts[c.part] = parts.get(c.part, 0) + 1
    if parts:
        print(
            "  consistent channels by part: "
            + ", ".join(f"{p} {n}" for p, n in sorted(parts.items(), key=lambda t: -t[1]))
        )
    if args.json:
        print(
            json.dumps(
                {
                    "checkpoint": args.checkpoint,
                    "consistency": r.consistency,
                    "stability": r.stability,
                    "images": r.images,
                    "size": r.size,
                    "channels": len(r.channels),
                    "smooth": r.smooth,
                    "consistent_by_part": parts,
                }
            )
        )
    return 0
