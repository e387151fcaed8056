"""Accuracy of a model over a data set: top-1/top-5 of its prediction, of the CE head and of the
MC branch, the mean h (Eq. 7) of the true class, and per-class accuracy."""

from __future__ import annotations

import math
import sys
from typing import Any, Optional

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..core.loss import diversity_scores
from ..core.models import MCNet, channels_last


def _streams(model: MCNet, x: torch.Tensor, after: Optional[str]) -> tuple[torch.Tensor, ...]:
    """``(features, head scores, MC-branch scores, the prediction stream's class scores of the
    first view)`` of a batch. Inputs ``(B, V, ...)`` hold V views of each image (the view and its
    mirror): the scores are then the mean of the views' class probabilities, the features (for h)
    the first view's."""
    views = x.shape[1] if x.dim() == 5 else 0
    flat = x.flatten(0, 1) if views else x
    feats = model.features(channels_last(flat), after).float()
    head, mc = model.head_logits(feats), model.mc_logits(feats)
    own = mc if model.predict == "mc" else head
    if not views:
        return feats, head, mc, own

    def mean_prob(s: torch.Tensor) -> torch.Tensor:
        return torch.softmax(s.float(), dim=1).view(-1, views, s.shape[1]).mean(dim=1)

    return (
        feats.view(-1, views, *feats.shape[1:])[:, 0],
        mean_prob(head),
        mean_prob(mc),
        own.view(-1, views, own.shape[1])[:, 0],
    )


@torch.no_grad()
def evaluate(
    model: MCNet,
    loader: DataLoader,
    device: torch.device,
    num_classes: int,
    progress: bool = True,
    desc: str = "eval",
    after: Optional[str] = None,
    keep_scores: bool = False,
) -> dict[str, Any]:
    """Top-1/top-5 of the model's own prediction, of the CE head and of the MC branch,
    mean h (Eq. 7) of the true class's group, and per-class accuracy. Batches of ``(B, V, ...)``
    inputs (``SplitPass.loader(flip=True)``) are scored on the mean over their V views.
    ``keep_scores``: also return every image's class scores (first view) as ``"class_scores"``,
    for the out-of-distribution check."""
    model.eval()
    n = 0
    hits = {"top1": 0, "top5": 0, "top1_head": 0, "top1_mc": 0}
    h_sum = 0.0
    per_class_hit = torch.zeros(num_classes)
    per_class_n = torch.zeros(num_classes)
    kept: list[torch.Tensor] = []
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress, file=sys.stderr):
        x, y = batch[0].to(device, non_blocking=True), batch[1].to(device)
        feats, head, mc, own = _streams(model, x, after)
        if keep_scores:
            kept.append(own.float().cpu())
        logits = mc if model.predict == "mc" else head
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        ok = top5[:, 0] == y
        hits["top1"] += int(ok.sum())
        hits["top5"] += int((top5 == y[:, None]).any(1).sum())
        hits["top1_head"] += int((head.argmax(1) == y).sum())
        hits["top1_mc"] += int((mc.argmax(1) == y).sum())
        h = diversity_scores(feats, model.groups)
        h_sum += float(h.gather(1, y[:, None]).sum())
        per_class_n += torch.bincount(y.cpu(), minlength=num_classes).float()
        per_class_hit += torch.bincount(y[ok].cpu(), minlength=num_classes).float()
        n += len(y)
    if n == 0:
        raise ValueError("the evaluation set is empty")
    out: dict[str, Any] = {k: 100.0 * v / n for k, v in hits.items()}
    out["mean_h"] = h_sum / n
    out["n"] = n
    acc = torch.where(
        per_class_n > 0, 100.0 * per_class_hit / per_class_n.clamp(min=1), torch.full_like(per_class_n, float("nan"))
    )
    if keep_scores:
        out["class_scores"] = torch.cat(kept)
    out["per_class"] = [None if math.isnan(a) else round(float(a), 2) for a in acc]
    return out
