"""Do channel peaks land on the object and on *different* parts? (pointing game on CUB parts)

For each test image and its true class, each of the class's channels' peak (the argmax
cell of the raw channel, at the centre of that cell in crop pixels) is matched to the
nearest visible annotated part within ``radius`` x the bird box's diagonal. Random peaks
on the same grid give the chance level.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import torch

from ..data.transforms import cell_centre
from ..core.folding import for_inference
from ..core.models import MCNet, channels_last
from ..trunk.split_pass import SplitPass


@dataclass
class LocalizationReport:
    images: int
    peaks: int
    in_box: float  # fraction of peaks inside the bird's box
    near_part: float  # fraction of peaks within the radius of some visible part
    distinct_parts: float  # mean number of distinct parts hit by a class's channels, per image
    same_part_rate: float  # fraction of images where two channels of the class hit the same part
    random_in_box: float
    random_near_part: float
    random_distinct_parts: float
    radius: float
    xi: int
    source: str = "images"  # or "cache": the frozen trunk's outputs came from the training cache

    def as_dict(self) -> dict:
        return asdict(self)


def match_parts(
    peaks: torch.Tensor, box: torch.Tensor, parts: torch.Tensor, radius: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pointing-game rule. ``peaks (B, k, 2)``, ``box (B, 4)`` xywh, ``parts (B, P, 3)`` ->
    ``(inside the box (B, k) bool, the nearest visible part within radius x the box diagonal
    (B, k), -1 for none)``."""
    x, y = peaks[..., 0], peaks[..., 1]
    x0, y0 = box[:, 0:1], box[:, 1:2]
    inside = (x >= x0) & (x <= x0 + box[:, 2:3]) & (y >= y0) & (y <= y0 + box[:, 3:4])
    diag = box[:, 2:4].norm(dim=1)  # (B,)
    vis = parts[..., 2] > 0  # (B, P)
    d = torch.cdist(peaks.float(), parts[..., :2].float())  # (B, k, P)
    d = d.masked_fill(~vis[:, None, :], float("inf"))
    dmin, which = d.min(dim=2)
    hit = dmin <= radius * diag[:, None]
    return inside, torch.where(hit, which, torch.full_like(which, -1))


def _score(peaks: torch.Tensor, box: torch.Tensor, parts: torch.Tensor, radius: float):
    """peaks (B, k, 2), box (B, 4) xywh, parts (B, P, 3) -> per-batch sums."""
    inside, part_id = match_parts(peaks, box, parts, radius)
    distinct, dup = [], []
    for row in part_id:  # k is tiny (xi); this loop is over images of one batch
        ids = [int(v) for v in row if v >= 0]
        distinct.append(len(set(ids)))
        dup.append(len(ids) != len(set(ids)))
    return int(inside.sum()), int((part_id >= 0).sum()), sum(distinct), sum(dup)


def class_peaks(
    model: MCNet, features: torch.Tensor, labels: torch.Tensor, crop: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each of the labelled class's channels peaks, in crop pixels: ``(B, m, 2)`` (x, y) and
    a ``(B, m)`` mask of the real channels (uneven groups are padded to the largest, m)."""
    b, _, h, w = features.shape
    idx, valid = model.groups.padded_index
    chans = idx[labels]
    arg = features[torch.arange(b)[:, None], chans].flatten(2).argmax(2)
    return torch.stack(cell_centre(arg, w, h, crop, crop), dim=-1), valid[labels]


@torch.no_grad()
def localize(run: SplitPass, radius: float = 0.15, seed: int = 0, locator=None) -> LocalizationReport:
    """Pointing-game statistics of the true class's channel peaks over ``run``'s split of a
    CUB-layout data set.

    A model trained with ``--freeze`` reads its frozen trunk's outputs from the training cache
    when one exists for this split and ``run.use_cache`` is set (same numbers, a fraction of the
    time). With ``locator`` (``(PartLocator, its metadata)``) the parts and box the locator
    predicts on each photo stand in for the annotations (``source`` says so): the figures a photo
    set without annotations would get.
    """
    model = run.model
    loader, after, cub = run.annotated()
    tf = cub.transform
    g = torch.Generator().manual_seed(seed)
    totals = dict(images=0, peaks=0, in_box=0, near=0, distinct=0, dup=0, r_in=0, r_near=0, r_distinct=0)
    xi = 0
    trunk = _locator_trunk(locator, model, after, tf.crop) if locator is not None else None
    for x, y, ann in run.bar(loader, "localize"):
        if locator is not None:
            ann = _predicted_annotation(locator[0], x if trunk is None else trunk(channels_last(x)), tf.crop)
        f = run.features(x, after)
        b, _, h, w = f.shape
        peaks, vmask = class_peaks(model, f, y, tf.crop)
        xi = max(xi, peaks.shape[1])
        rnd = torch.randint(0, h * w, peaks.shape[:2], generator=g)
        rpeaks = torch.stack(cell_centre(rnd, w, h, tf.crop, tf.crop), dim=-1)
        if not bool(vmask.all()):  # uneven groups: score the real channels only
            peaks = torch.where(vmask[..., None], peaks, torch.full_like(peaks, -1e6))
            rpeaks = torch.where(vmask[..., None], rpeaks, torch.full_like(rpeaks, -1e6))
        a = _score(peaks, ann["box"], ann["parts"], radius)
        r = _score(rpeaks, ann["box"], ann["parts"], radius)
        totals["images"] += b
        totals["peaks"] += int(vmask.sum())
        totals["in_box"] += a[0]
        totals["near"] += a[1]
        totals["distinct"] += a[2]
        totals["dup"] += a[3]
        totals["r_in"] += r[0]
        totals["r_near"] += r[1]
        totals["r_distinct"] += r[2]
    n, p = totals["images"], max(totals["peaks"], 1)
    if n == 0:
        raise ValueError("no images to localize")
    return LocalizationReport(
        images=n,
        peaks=totals["peaks"],
        in_box=totals["in_box"] / p,
        near_part=totals["near"] / p,
        distinct_parts=totals["distinct"] / n,
        same_part_rate=totals["dup"] / n,
        random_in_box=totals["r_in"] / p,
        random_near_part=totals["r_near"] / p,
        random_distinct_parts=totals["r_distinct"] / n,
        radius=radius,
        xi=xi,
        source=("cache" if after else "images") + (", parts predicted by the part locator" if locator else ""),
    )


def _locator_trunk(locator, model: MCNet, after: Optional[str], crop: int):
    """None when the inputs already are the output of the locator's trunk step (the cache), else
    the model's own body up to that step; refuses a locator of another trunk or crop."""
    from ..io.locator_file import locator_fits

    meta = locator[1]
    if not locator_fits(meta, model) or meta.transform.crop != crop:
        raise ValueError("the part locator reads another trunk or crop than this model's")
    if after == meta.layer:
        return None
    if after is not None:
        raise ValueError(f"the inputs come out of {after}, not the part locator's {meta.layer}: use --no-cache")
    return for_inference(model.split_at(meta.layer)[0])


def _predicted_annotation(locator, trunk_out: torch.Tensor, crop: int) -> dict[str, torch.Tensor]:
    """The locator's parts (invisible ones at visibility 0) and box as a batch of annotations in crop pixels."""
    from ..core.part_locator import as_annotations

    return as_annotations(*locator.predict(trunk_out.float()), scale=crop)
