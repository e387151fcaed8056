"""How well the part locator finds CUB's parts on the test split, and whether the parts it names
under a model's channel peaks are the ones the true annotations name.

- **PCK@0.1**: a visible part is found when its prediction lies within 0.1 x the longer side of
  the bird's box, measured in the photo's own pixels (the crop's squash undone).
- **Visibility accuracy**: predicted visible (probability >= 0.5) against annotated visible and
  inside the model's crop (a part the crop cuts off is not in what the model sees).
- **Box IoU** in the photo's pixels.
- **Naming agreement**: for each test image and each of its true class's channels, the part the
  peak is named after (the rule of ``mcviz localize``: the nearest visible part within 0.15 x the
  box diagonal, else on the bird near no part, else off the bird) from the predicted parts and box
  against the same from the annotations.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torchvision.ops import box_iou
from tqdm import tqdm

from ..core.models import channels_last
from ..core.part_locator import CUB_PARTS, PartLocator, as_annotations, crop_to_image
from ..io.locator_file import trunk_for
from ..io.locator_file import LocatorMeta
from ..trunk.split_pass import SplitPass
from .parts import NO_PART, OFF_BIRD, categorise_peaks

__all__ = ["LocatorReport", "evaluate_locator", "naming_agreement"]


@dataclass
class LocatorReport:
    images: int
    pck: float  # over visible parts
    pck_per_part: dict[str, float]
    visibility_accuracy: float
    box_iou: float
    threshold: float = 0.1
    naming: dict[str, float] = field(default_factory=dict)  # model -> agreement
    # model -> the most frequent disagreements: (named from the annotations, named from the prediction, share)
    naming_confusions: dict[str, list] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _predict_all(locator: PartLocator, feats: np.ndarray, batch_size: int = 128, progress: bool = True):
    xy, vis, box = [], [], []
    for i in tqdm(range(0, len(feats), batch_size), desc="locate parts", disable=not progress, file=sys.stderr):
        x = torch.from_numpy(np.asarray(feats[i : i + batch_size, 0], dtype=np.float32))
        a, b, c = locator.predict(x)
        xy.append(a), vis.append(b), box.append(c)
    return torch.cat(xy), torch.cat(vis), torch.cat(box)


def pck(pred_xy: torch.Tensor, parts: torch.Tensor, boxes: torch.Tensor, threshold: float = 0.1):
    """``(overall, per part)`` fraction of visible parts found; ``parts (N, P, 3)``, ``boxes (N, 4)`` xywh."""
    vis = parts[..., 2] > 0
    d = (pred_xy - parts[..., :2]).norm(dim=-1)
    hit = (d <= threshold * boxes[:, 2:].amax(1, keepdim=True)) & vis
    per = hit.sum(0).float() / vis.sum(0).clamp(min=1).float()
    return float(hit.sum() / vis.sum().clamp(min=1)), per


def evaluate_locator(
    locator: PartLocator,
    meta: LocatorMeta,
    root: str,
    limit: Optional[int] = None,
    progress: bool = True,
    cache_dir: str = "",
) -> LocatorReport:
    """The locator's figures on CUB's test split (its trunk's cached outputs, built when missing)."""
    from ..trunk.part_targets import locator_data

    tf = meta.transform
    data = locator_data(root, "test", trunk_for(meta), tf, meta.backbone, meta.layer, cache_dir, limit, progress)
    xy, vis, box = _predict_all(locator, data.feats, progress=progress)
    sizes = torch.tensor(data.sizes, dtype=torch.float32)
    pxy, pbox = crop_to_image(xy * tf.crop, box * tf.crop, tf, sizes)
    overall, per = pck(pxy, data.cub.parts, data.cub.boxes)
    vis_acc = float(((vis >= 0.5).float() == data.targets[0]["vis"]).float().mean())
    gt = data.cub.boxes.clone()
    gt[:, 2:] += gt[:, :2]
    lim = torch.cat([sizes, sizes], 1)
    iou = box_iou(torch.minimum(pbox.clamp(min=0), lim), gt).diagonal().mean()
    return LocatorReport(
        images=len(xy),
        pck=overall,
        pck_per_part=dict(zip(CUB_PARTS, per.tolist())),
        visibility_accuracy=vis_acc,
        box_iou=float(iou),
    )


@torch.no_grad()
def naming_agreement(
    locator: PartLocator, run: SplitPass, radius: float = 0.15, threshold: float = 0.5, top: int = 8
) -> tuple[float, list[tuple[str, str, float]]]:
    """Fraction of a CUB model's true-class channel peaks on ``run``'s split whose part, named from
    the locator's predicted parts and box, equals the part named from the annotations; and the
    ``top`` most frequent disagreements as (annotated name, predicted name, share of all peaks)."""
    from .localization import class_peaks

    model, checkpoint = run.model, run.checkpoint or "the model"
    loader, after, cub = run.annotated()
    if after != "block5" and after is not None:
        raise ValueError(f"{checkpoint}: its cached inputs come out of {after}, not the locator's block5")
    trunk = None if after else model.split_at("block5")[0]
    tf = cub.transform
    same = total = 0
    confused: Counter = Counter()
    names = [*CUB_PARTS, NO_PART, OFF_BIRD]
    for x, y, ann in run.bar(loader, f"naming {Path(checkpoint).stem}"):
        b5 = x if after else trunk(channels_last(x))
        peaks, m = class_peaks(model, run.features(b5, "block5"), y, tf.crop)
        guess = as_annotations(*locator.predict(b5.float()), scale=tf.crop, threshold=threshold)
        true = categorise_peaks(peaks, ann["box"], ann["parts"], radius)
        pred = categorise_peaks(peaks, guess["box"], guess["parts"], radius)
        same += int(((true == pred) & m).sum())
        total += int(m.sum())
        confused.update(zip(true[m & (true != pred)].tolist(), pred[m & (true != pred)].tolist()))
    worst = [(names[a], names[b], n / max(total, 1)) for (a, b), n in confused.most_common(top)]
    return same / max(total, 1), worst
