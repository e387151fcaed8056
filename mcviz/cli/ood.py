"""``mcviz calibrate-ood``: the out-of-distribution threshold of a checkpoint, and its rates."""

from __future__ import annotations

import json
import sys

from .common import UserError, cache_options, checkpoint_and_data, image_files, load, split_pass


def ood_folder_option(p) -> None:
    from ..data import DATASETS

    p.add_argument(
        "--ood-folder",
        nargs="+",
        default=None,
        metavar="DIR",
        help="photos of other things (folders or files): report the share the check flags and the AUROC of each score",
    )
    p.add_argument(
        "--ood-dataset",
        choices=DATASETS,
        default=None,
        help="...or another data set's --split (e.g. Stanford Cars under a bird model), read like the "
        "model's own (through the trunk cache where it holds it)",
    )
    p.add_argument("--ood-root", default=None, help="the folder of --ood-dataset")


def add_calibrate_ood(sub) -> None:
    p = sub.add_parser(
        "calibrate-ood",
        help="calibrate the check that says when a photo is not of what the model "
        "knows; writes NAME.ood.json beside the checkpoint",
    )
    checkpoint_and_data(p)
    cache_options(p)
    p.add_argument("--score", default="energy", help="energy (default), max_logit or max_prob")
    p.add_argument(
        "--quantile",
        type=float,
        default=0.03,
        help="the threshold is this quantile of the score on a random half of the split (default 0.03); "
        "the other half measures the false alarms",
    )
    p.add_argument("--domain", default=None, help="what the model knows, for the warning (default: from the data set)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=64)
    ood_folder_option(p)
    p.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    p.set_defaults(func=cmd_calibrate_ood)


def split_class_scores(args, model, meta, device):
    """The checkpoint's class scores over ``args.split`` (the trunk cache where it holds it)."""
    from .. import data as mdata

    try:
        ds, after = split_pass(args, model=model, meta=meta).inputs()
    except (mdata.DataError, ValueError) as exc:
        raise UserError(str(exc)) from None
    return _class_scores(args, model, ds, after, device)


def _class_scores(args, model, ds, after, device):
    """The class scores of a split's inputs (images, or the trunk cache's outputs after ``after``)."""
    from torch.utils.data import DataLoader

    from ..core.folding import for_inference
    from ..evaluate.ood import split_logits

    loader = DataLoader(ds, batch_size=args.batch_size, num_workers=0 if after else args.workers)
    return split_logits(for_inference(model).to(device), loader, device, after)


def _other_dataset_scores(args, model, meta, device):
    from .. import data as mdata

    if not args.ood_root:
        raise UserError("--ood-dataset needs --ood-root")
    run = split_pass(args, model=model, meta=meta, dataset=args.ood_dataset, root=args.ood_root, limit=None)
    tf = run.transform
    try:
        base = mdata.build(args.ood_dataset, args.ood_root, args.split, tf, min_side=tf.resize)
        ds, after = run.inputs(base=base)
    except (mdata.DataError, ValueError) as exc:
        raise UserError(str(exc)) from None
    return _class_scores(args, model, ds, after, device)


def other_class_scores(args, model, meta, device, names: list | None = None):
    """Class scores of the photos of ``--ood-folder`` or of ``--ood-dataset``'s split (None without either);
    ``names`` (a list) receives the folder's file names in their order."""
    from ..data.transforms import EvalTransform
    from ..evaluate.ood import folder_logits

    if args.ood_dataset:
        return _other_dataset_scores(args, model, meta, device)
    if not args.ood_folder:
        return None
    files = image_files(args.ood_folder)
    if not files:
        raise UserError(f"no photos in {' '.join(args.ood_folder)}")
    logits, read = folder_logits(model, EvalTransform.from_config(meta.input), files, device, args.batch_size)
    if names is not None:
        names.extend(p.name for p in read)
    return logits


def cmd_calibrate_ood(args, argv) -> int:
    from ..core.models import resolve_device
    from ..evaluate.ood import calibrate, rates
    from ..explain.ood import SCORES, domain_of, save_ood_calibration
    from ..io.files import file_sha256

    if args.score not in SCORES:
        raise UserError(f"unknown score {args.score!r}; choose one of {', '.join(SCORES)}")
    model, meta = load(args.checkpoint)
    device = resolve_device(args.device)
    model.to(device)
    logits = split_class_scores(args, model, meta, device)
    try:
        cal = calibrate(
            logits,
            file_sha256(args.checkpoint),
            dataset=meta.dataset or args.dataset,
            split=args.split,
            domain=args.domain or domain_of(meta),
            score=args.score,
            quantile=args.quantile,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    out = save_ood_calibration(cal, args.checkpoint)
    print(
        f"{out}: {cal.score} >= {cal.threshold:.3f} is '{cal.domain}' ({cal.quantile:.0%} quantile of "
        f"{cal.calibration_images} {args.split} photos); false alarms on the other {cal.held_out_images}: "
        f"{cal.false_alarm:.1%}"
    )
    r = {"calibration": json.loads(cal.to_json())}
    names: list[str] = []
    other = other_class_scores(args, model, meta, device, names)
    if other is not None:
        r["other"] = rates(logits, other, cal)
        if names:  # which of the other photos pass for the model's own: what the check misses
            from ..explain.ood import ood_scores

            s = ood_scores(other, cal.score)
            r["other"]["missed"] = [n for n, v in zip(names, s.tolist()) if v >= cal.threshold]
        print(
            f"  other photos ({r['other']['n_out']}): {r['other']['detected']:.1%} flagged; AUROC "
            + ", ".join(f"{k} {v:.3f}" for k, v in r["other"]["auroc"].items())
        )
    if args.json:
        print(json.dumps(r))
    return 0


def report_ood(args, model, meta, device, logits) -> dict | None:
    """``mcviz eval``'s OOD figures from the split's class scores ``logits``: false alarms with the
    stored calibration and, with ``--ood-folder``, the detection rate and AUROC there (None when
    the checkpoint has no calibration)."""
    from ..evaluate.ood import rates
    from ..explain.ood import load_ood_calibration

    cal = load_ood_calibration(args.checkpoint)
    if cal is None:
        if args.ood_folder or args.ood_dataset:
            raise UserError(
                f"{args.checkpoint} has no out-of-distribution calibration: run "
                f"`mcviz calibrate-ood {args.checkpoint} --dataset ... --root ...` first"
            )
        return None
    r = rates(logits, other_class_scores(args, model, meta, device), cal)
    print(
        f"  not-{cal.domain} check ({cal.score} < {cal.threshold:.2f}): {r['false_alarm']:.1%} of {args.split} "
        "photos flagged"
        + (
            f"; {r['detected']:.1%} of {r['n_out']} other photos flagged, AUROC {r['auroc'][cal.score]:.3f}"
            if "detected" in r
            else ""
        ),
        file=sys.stdout,
    )
    return r
