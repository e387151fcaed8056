"""``mcviz explain``: per-channel maps of images, as PNG panels and JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import UserError, image_files, load


def add_explain(sub) -> None:
    from ..explain import METHODS

    p = sub.add_parser("explain", help="per-channel maps of images as PNG panels + JSON")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--method", choices=list(METHODS), default="activation")
    p.add_argument("--layer", default=None, help="layer for the CAM methods (default: the one before the MC features)")
    p.add_argument("--top-k", type=int, default=3, help="explain the k most probable classes")
    p.add_argument(
        "--class",
        dest="classes",
        action="append",
        default=None,
        metavar="NAME_OR_INDEX",
        help="explain this class instead of the top-k (repeatable; a class index or a "
        "case-insensitive part of its name that matches one class)",
    )
    p.add_argument("--opacity", type=float, default=0.5)
    p.add_argument(
        "--locator",
        default=None,
        metavar="PATH",
        help="the CUB part locator that names the part under each peak of a bird model's channels "
        "(default: the shipped checkpoints/locator/cub-parts.safetensors; 'none': no part names)",
    )
    p.set_defaults(func=cmd_explain)


def _locator(arg, meta):
    """``(locator, its metadata)`` for a CUB model, or None (another data set, 'none', or no file)."""
    from ..io.locator_file import default_locator_path, load_locator
    from ..io.checkpoint import CheckpointError

    if meta.dataset != "cub" or arg == "none":
        return None
    path = Path(arg) if arg else default_locator_path()
    if not path.is_file():
        if arg:
            raise UserError(f"{path}: no such part locator")
        return None
    try:
        return load_locator(path)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None


def _suggest(word: str, names: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word.lower(), [n.lower() for n in names], n=3, cutoff=0.6)
    by_lower = {n.lower(): n for n in names}
    return f"; did you mean {' or '.join(repr(by_lower[c]) for c in close)}?" if close else ""


def _resolve_classes(wanted: list[str], names: list[str]) -> list[int]:
    out = []
    for w in wanted:
        if w.strip().isdigit():
            i = int(w)
            if not 0 <= i < len(names):
                raise UserError(f"class index {i} is outside 0..{len(names) - 1}")
            out.append(i)
            continue
        hits = [i for i, n in enumerate(names) if n.lower() == w.lower()] or [
            i for i, n in enumerate(names) if w.lower() in n.lower()
        ]
        if len(hits) != 1:
            shown = ", ".join(names[i] for i in hits[:5]) + (" ..." if len(hits) > 5 else "")
            raise UserError(
                f"class {w!r} matches {len(hits)} classes"
                + (f": {shown}" if hits else _suggest(w, names))
                + "; give an index or a longer name"
            )
        out.append(hits[0])
    return out


def _explainer(checkpoint: str):
    from ..explain import Explainer, load_ood_calibration

    model, meta = load(checkpoint)
    ex = Explainer(model, meta, ood=load_ood_calibration(checkpoint))
    if ex.ood is None:
        print(
            f"note: {checkpoint} has no out-of-distribution calibration (`mcviz calibrate-ood`): "
            "photos of other things are explained without a warning",
            file=sys.stderr,
        )
    return ex


def cmd_explain(args, argv) -> int:
    from tqdm import tqdm

    from ..data.images import ImageError, open_image
    from ..evaluate.parts import load_part_profiles, peak_parts
    from ..explain.render import panel_png

    ex = _explainer(args.checkpoint)
    if args.layer and args.layer not in ex.layers():
        raise UserError(f"unknown layer {args.layer!r}; choose one of {', '.join(ex.layers())}")
    files, missing = image_files(args.images, missing_ok=True)
    for m in missing:
        print(f"skipped: {m}: no such file or folder", file=sys.stderr)
    if not files:
        raise UserError("no image files found")
    chosen = _resolve_classes(args.classes, ex.class_names) if args.classes else None
    meta = ex.meta
    # the part each channel usually looks at, where the checkpoint ships its part profiles
    profiles = load_part_profiles(args.checkpoint)
    locator = _locator(args.locator, meta)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = len(missing)
    for f in tqdm(files, desc="explain", file=sys.stderr):
        try:
            img = open_image(f, min_side=ex.transform.resize)
        except ImageError as exc:
            tqdm.write(f"skipped: {exc}", file=sys.stderr)
            failed += 1
            continue
        preds = ex.predict(img, args.top_k)
        cm = ex.channel_maps(img, chosen or [p.index for p in preds], method=args.method, layer=args.layer)
        labels = {ch: profiles.own[ch].usual() for c in cm.classes for ch in c.channels} if profiles else None
        here, extra = {}, {}
        if preds.ood is not None:
            extra["ood"] = preds.ood.as_dict()
        if locator is not None and preds.flagged:
            extra |= {
                "parts_in_image": None,
                "parts_source": "none: the photo does not look like a bird of CUB, so the part locator names no parts",
            }
        elif locator is not None:
            # the part under each peak of this photo, from the parts the locator predicts on it
            ann = ex.locate_parts(img, *locator).annotation()
            for c in cm.classes:
                here.update(zip(c.channels, peak_parts(c.peaks, ann)))
            extra |= {
                "parts_in_image": {str(ch): part for ch, part in here.items()},
                "parts_source": "predicted by the CUB part locator",
                "predicted_parts": ann,
            }
        shown = (
            {
                ch: "\n".join(
                    t for t in (f"this photo: {here[ch]}" if ch in here else "", (labels or {}).get(ch, "")) if t
                )
                for c in cm.classes
                for ch in c.channels
            }
            if (here or labels)
            else None
        )
        stem = out / f.stem
        stem.with_suffix(".png").write_bytes(
            panel_png(
                cm,
                preds,
                title=f"{f.name}: {cm.method}",
                opacity=args.opacity,
                labels=shown,
                banner=preds.ood.message() if preds.flagged else "",
            )
        )
        if preds.flagged:
            tqdm.write(
                f"{f.name}: not like {preds.ood.domain} (score {preds.ood.score:.2f} < "
                f"{preds.ood.threshold:.2f}); explained with a warning",
                file=sys.stderr,
            )
        stem.with_suffix(".json").write_text(json.dumps({**cm.record(preds, labels, image=str(f)), **extra}, indent=2))
    done = len(files) + len(missing) - failed
    print(f"{done} image(s) explained into {out}" + (f", {failed} missing or unreadable skipped" if failed else ""))
    return 1 if done == 0 else 0
