"""The commands that run a checkpoint over a data set: ``eval``, ``localize``, ``sanity``,
``atlas``, ``parts``, ``cache``, ``rank`` and ``faithfulness``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import UserError, cache_options, checkpoint_and_data, image_files, load, split_pass
from .ood import ood_folder_option, report_ood


def add_eval(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint on a data set")
    checkpoint_and_data(p)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--predict", choices=["head", "mc"], default=None, help="override the checkpoint's prediction stream"
    )
    p.add_argument(
        "--flip",
        action="store_true",
        help="test-time mirroring: average the class probabilities of each image and its mirror (a "
        "--freeze model reads both from a cache made by `mcviz cache --flip`, else the images)",
    )
    p.add_argument(
        "--crop",
        type=int,
        default=None,
        metavar="PX",
        help="test at PX px crops (images squashed to PX x 8/7) instead of the checkpoint's own size: "
        "a network trained on random crops often scores higher on larger test crops",
    )
    cache_options(p)
    ood_folder_option(p)
    p.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args, argv) -> int:
    import dataclasses
    import time

    from .. import data as mdata
    from ..core.models import resolve_device
    from ..data.transforms import resize_for
    from ..evaluate.accuracy import evaluate

    model, meta = load(args.checkpoint)
    device = resolve_device(args.device)
    model.to(device)
    if args.predict:
        model.predict = args.predict
    if args.crop:
        meta = dataclasses.replace(meta, input={**meta.input, "crop": args.crop, "resize": resize_for(args.crop)})
    run = split_pass(args, model=model, meta=meta)
    try:
        loader, after = run.loader(flip=args.flip)
    except (mdata.DataError, ValueError) as exc:
        raise UserError(str(exc)) from None
    start = time.perf_counter()
    # the cache is found by the original trunk's weights; the folded copy only runs the batches
    r = evaluate(run.net, loader, device, model.num_classes, after=after, keep_scores=True)
    class_scores = r.pop("class_scores")
    r["seconds"] = round(time.perf_counter() - start, 1)
    r["source"] = "cache" if after else "images"
    r["flip"] = args.flip
    r["checkpoint"] = args.checkpoint
    r["crop"] = int(meta.input["crop"])
    names = meta.class_names or [str(i) for i in range(model.num_classes)]
    print(
        f"{args.checkpoint}: {meta.variant or '?'} {meta.backbone} on {args.dataset} {args.split} ({r['n']} images"
        f" {'through the cached frozen trunk' if after else 'from the images'}, "
        f"{r['n'] / max(r['seconds'], 1e-3):.1f} img/s)"
    )
    print(
        f"  top-1 {r['top1']:.2f}%{' (image and mirror averaged)' if args.flip else ''}   top-5 "
        f"{r['top5']:.2f}%   (CE head {r['top1_head']:.2f}%, MC branch {r['top1_mc']:.2f}%)"
    )
    print(f"  mean h (true class) {r['mean_h']:.3f} of xi = {max(model.groups.sizes)}")
    scored = [(a, names[i]) for i, a in enumerate(r["per_class"]) if a is not None]
    worst = sorted(scored)[:5]
    if worst:
        print("  worst classes: " + ", ".join(f"{n} {a:.0f}%" for a, n in worst))
    ood = report_ood(args, model, meta, device, class_scores)
    if ood is not None:
        r["ood"] = ood
    if args.json:
        r["per_class"] = {names[i]: a for i, a in enumerate(r["per_class"]) if a is not None}
        print(json.dumps(r))
    return 0


def add_localize(sub) -> None:
    p = sub.add_parser("localize", help="pointing game of channel peaks on CUB part annotations")
    checkpoint_and_data(p, datasets=["cub"])
    p.add_argument("--radius", type=float, default=0.15, help="hit radius as a fraction of the box diagonal")
    p.add_argument(
        "--predicted-parts",
        nargs="?",
        const="",
        default=None,
        metavar="LOCATOR",
        help="score against the parts and box the CUB part locator predicts on each photo instead of the "
        "annotations (default locator: checkpoints/locator/cub-parts.safetensors)",
    )
    cache_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_localize)


def cmd_localize(args, argv) -> int:
    from ..data import DataError
    from ..evaluate.localization import localize

    run = split_pass(args)
    locator = None
    if args.predicted_parts is not None:
        from ..io.locator_file import default_locator_path, load_locator
        from ..io.checkpoint import CheckpointError

        try:
            locator = load_locator(args.predicted_parts or default_locator_path())
        except (CheckpointError, OSError) as exc:
            raise UserError(f"the part locator: {exc}") from None
    try:
        r = localize(run, args.radius, locator=locator)
    except (DataError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(
        f"{args.checkpoint}: {r.images} images, {r.peaks} peaks of the true class's {r.xi} channels"
        + (" (frozen trunk's outputs from the training cache)" if r.source.startswith("cache") else "")
        + ("; PARTS AND BOX PREDICTED by the part locator, not CUB's annotations" if locator else "")
    )
    print(f"{'':24}{'model':>8}{'random':>8}")
    print(f"{'peaks in the box':24}{r.in_box:8.3f}{r.random_in_box:8.3f}")
    print(f"{'peaks near a part':24}{r.near_part:8.3f}{r.random_near_part:8.3f}")
    print(f"{'distinct parts / image':24}{r.distinct_parts:8.3f}{r.random_distinct_parts:8.3f}")
    print(f"{'two channels, one part':24}{r.same_part_rate:8.3f}")
    if args.json:
        print(json.dumps(r.as_dict()))
    return 0


def add_sanity(sub) -> None:
    from ..explain import METHODS

    p = sub.add_parser("sanity", help="cascading model-randomisation check of the map methods (Adebayo et al.)")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=["activation", "contribution", "gradcam"])
    p.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="a method fails if its maps still correlate above this once every layer is random",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sanity)


def cmd_sanity(args, argv) -> int:
    from ..data.images import ImageError, open_image
    from ..evaluate.sanity import cascading_randomisation

    model, meta = load(args.checkpoint)
    images = []
    for f in image_files(args.images):
        try:
            images.append(open_image(f))
        except ImageError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
    if not images:
        raise UserError("no readable image")
    rows = cascading_randomisation(model, meta, images, args.methods)
    stages = list(dict.fromkeys(r.randomised for r in rows))
    print(f"Spearman rank correlation with the original maps ({len(images)} image(s)), layers randomised from the top:")
    print(f"{'randomised down to':22}" + "".join(f"{m:>14}" for m in args.methods))
    table = {(r.method, r.randomised): r.spearman for r in rows}
    for st in stages:
        print(f"{st:22}" + "".join(f"{table[(m, st)]:14.3f}" for m in args.methods))
    verdict = {m: ("FAIL" if table[(m, stages[-1])] > args.threshold else "pass") for m in args.methods}
    print(f"{'verdict':22}" + "".join(f"{verdict[m]:>14}" for m in args.methods))
    if args.json:
        print(json.dumps({"rows": [r.__dict__ for r in rows], "verdict": verdict}))
    return 0


def add_atlas(sub) -> None:
    p = sub.add_parser("atlas", help="for every channel, the images that activate it most (for the app)")
    checkpoint_and_data(p)
    p.add_argument("--out", default=None, help="default: CHECKPOINT with .atlas.json, where the app looks")
    p.add_argument("--top", type=int, default=6)
    cache_options(p, no_cache=False)
    p.set_defaults(func=cmd_atlas)


def cmd_atlas(args, argv) -> int:
    from ..evaluate.atlas import build_atlas, save_atlas
    from ..io.files import ATLAS, side_path
    from ..data import DataError

    try:
        atlas = build_atlas(split_pass(args), args.top)
    except (DataError, ValueError) as exc:
        raise UserError(str(exc)) from None
    out = Path(args.out) if args.out else side_path(args.checkpoint, ATLAS)
    save_atlas(atlas, out)
    print(f"atlas of {len(atlas['channels'])} channels over {atlas['images']} images -> {out}")
    return 0


def add_parts(sub) -> None:
    p = sub.add_parser("parts", help="which CUB part each MC channel looks at (writes NAME.parts.json)")
    checkpoint_and_data(p, datasets=["cub"])
    p.add_argument("--radius", type=float, default=0.15, help="hit radius as a fraction of the box diagonal")
    p.add_argument(
        "--strongest",
        type=int,
        default=10,
        help="second population: images where the channel is among the K strongest by peak value",
    )
    cache_options(p, no_cache=False)
    p.add_argument("--plot", action="store_true", help="also write NAME.parts.png, the channel x part matrix")
    p.set_defaults(func=cmd_parts)


def cmd_parts(args, argv) -> int:
    from ..data import DataError
    from ..evaluate.parts import compute_part_profiles
    from ..io.files import PARTS, PARTS_PLOT, atomic_write_bytes, side_path

    run = split_pass(args)
    try:
        prof = compute_part_profiles(run, args.radius, args.strongest)
    except (DataError, ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    out = side_path(args.checkpoint, PARTS)
    atomic_write_bytes(out, prof.to_json().encode())
    named = [c for c in prof.own if c.top]
    print(f"part profiles of {len(prof.own)} channels over {prof.images} {args.split} images -> {out}")
    if named:
        best = sorted(named, key=lambda c: -c.confidence)[:5]
        print("most part-specific channels (own class): " + ", ".join(f"ch {c.channel} {c.label()}" for c in best))
    if args.plot:
        from ..explain.render import part_matrix_png

        png = side_path(args.checkpoint, PARTS_PLOT)
        png.write_bytes(part_matrix_png(prof))
        print(f"channel x part matrix -> {png}")
    return 0


def add_cache(sub) -> None:
    p = sub.add_parser(
        "cache", help="cache a --freeze checkpoint's frozen trunk over a split (eval view), read by eval-time commands"
    )
    checkpoint_and_data(p)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--cache-dir", default=None, help="default $MCVIZ_CACHE or .cache/trunk")
    p.add_argument("--flip", action="store_true", help="cache each image's mirror too (for `mcviz eval --flip`)")
    p.set_defaults(func=cmd_cache)


def cmd_cache(args, argv) -> int:
    from .. import data as mdata
    from ..trunk.cache import build_eval_cache

    model, meta = load(args.checkpoint)
    tf = mdata.EvalTransform.from_config(meta.input)
    try:
        ds = mdata.build(args.dataset, args.root, args.split, tf, min_side=tf.resize)
        folder = build_eval_cache(
            model, meta, ds, args.split, args.cache_dir, args.batch_size, args.workers, flip=args.flip
        )
    except (mdata.DataError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(f"{args.split} split of {args.root} through the frozen trunk -> {folder}")
    return 0


def add_rank(sub) -> None:
    p = sub.add_parser(
        "rank", help="rank every class's channels by their effect on its logit (writes NAME.ranking.json)"
    )
    checkpoint_and_data(p)
    cache_options(p)
    p.add_argument("--json", action="store_true", help="end with one JSON line: own channels in the top 10")
    p.set_defaults(func=cmd_rank)


def cmd_rank(args, argv) -> int:
    import time

    from ..data import DataError
    from ..explain.rankings import compute_effect_ranking, linearised_head_scores, own_in_top, save_effect_ranking

    run = split_pass(args)
    model = run.model
    start = time.perf_counter()
    try:
        r = compute_effect_ranking(run)
    except (DataError, ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    out = save_effect_ranking(r, args.checkpoint)
    print(
        f"effect ranking of {r.effects.shape[1]} channels for {r.effects.shape[0]} classes over {r.images} "
        f"{args.split} images ({time.perf_counter() - start:.0f} s) -> {out}"
    )
    own = {"effect": own_in_top(r.effects, model), "linearised-head": own_in_top(linearised_head_scores(model), model)}
    print(
        f"own channels in the top 10, mean over classes: by effect {own['effect']:.2f}, "
        f"by the linearised head {own['linearised-head']:.2f}"
    )
    if args.json:
        print(json.dumps({"split": args.split, "images": r.images, "own_in_top10": own}))
    return 0


def add_faithfulness(sub) -> None:
    p = sub.add_parser(
        "faithfulness",
        help="deletion curves: switch off each class's top-k channels under each ranking and measure the drop",
    )
    checkpoint_and_data(p)
    p.add_argument(
        "--rank-split",
        default=None,
        help="split the effect and activation rankings are measured on (default --split; another "
        "split makes the check held-out)",
    )
    p.add_argument("--k", type=int, nargs="+", default=[1, 3, 10], help="how many channels to switch off")
    p.add_argument("--draws", type=int, default=10, help="random rankings averaged")
    cache_options(p)
    p.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    p.set_defaults(func=cmd_faithfulness)


def cmd_faithfulness(args, argv) -> int:
    from ..data import DataError
    from ..evaluate.faithfulness import faithfulness

    run = split_pass(args)
    try:
        curves = faithfulness(run, args.rank_split, args.k, args.draws)
    except (DataError, ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    print(
        f"{args.checkpoint}: {curves.classes} classes, {curves.images} {curves.split} images, rankings "
        f"measured on {curves.rank_split}; before deletion: accuracy {100 * curves.accuracy:.1f} %, "
        f"class probability {100 * curves.prob:.1f} % (macro); drops in points:"
    )
    print("\n".join(curves.markdown()))
    if args.json:
        print(json.dumps(curves.as_dict()))
    return 0
