"""Which channels matter for a class: the paper's Table IX view (top-10 per class)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from ..checkpoint import load_checkpoint
from ..models import MCNet


@dataclass
class ChannelRanking:
    class_index: int
    channels: list[int]
    scores: list[float]
    owners: list[int]  # the class whose group holds each channel (-1: none)
    source: str  # where the scores come from, in words


def _load(checkpoint: Union[str, Path, MCNet, tuple[MCNet, dict]]) -> tuple[MCNet, dict[str, Any]]:
    if isinstance(checkpoint, (str, Path)):
        return load_checkpoint(checkpoint)
    if isinstance(checkpoint, tuple):
        return checkpoint
    return checkpoint, {}


def class_channel_scores(model: MCNet, meta: dict[str, Any], dataset=None, batch_size: int = 64,
                         progress: bool = False) -> tuple[torch.Tensor, str]:
    """A ``(classes, channels)`` importance matrix and its source.

    - soft channel labels stored in the checkpoint, when present, as their *specificity*: each
      label minus that channel's mean label over classes, the order in which the regrouping
      (:func:`mcviz.soft_labels.regroup`) hands channels to classes. A channel every class
      weighs alike is nobody's channel; raw labels put such channels at the top of every list;
    - else, with a ``dataset``: the mean GAP activation of each channel over each class's images;
    - else the classifier's weights: exact for the GAP + linear head; for the official head
      (GMP, BN, FC, BN, ELU, FC) the product of its linear maps with the BNs folded in and the
      ELU taken as identity, a first-order view.
    """
    extra = meta.get("extra") or {}
    soft = model.soft_labels if getattr(model, "soft", False) else extra.get("soft_labels")
    if soft is not None:
        soft = soft.detach().float()
        return soft - soft.mean(dim=0, keepdim=True), "learned soft channel labels (specificity: minus the " \
                                                       "channel's mean over classes)"
    if dataset is not None:
        n, c = model.groups.num_channels, model.num_classes
        sums, counts = torch.zeros(c, n), torch.zeros(c)
        model.eval()
        with torch.no_grad():
            for batch in tqdm(DataLoader(dataset, batch_size=batch_size), disable=not progress, desc="activations"):
                x, y = batch[0], batch[1]
                g = model.features(x).float().mean(dim=(2, 3))
                sums.index_add_(0, y, g)
                counts += torch.bincount(y, minlength=c).float()
        return sums / counts.clamp(min=1)[:, None], "mean activation over the class's images"
    head = model.head
    if model.head_kind == "gap":
        return head[-1].weight.detach().float().clone(), "the GAP+linear classifier's weights"
    bn1, fc1, bn2, fc2 = head[2], head[3], head[4], head[6]

    def bn_scale(bn):
        return (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()

    w = fc2.weight.detach() @ torch.diag(bn_scale(bn2)) @ fc1.weight.detach() @ torch.diag(bn_scale(bn1))
    return w.float(), "the official head's weights, linearised (ELU taken as identity)"


def top_channels(checkpoint: Union[str, Path, MCNet, tuple[MCNet, dict]], class_index: int, k: int = 10,
                 dataset=None) -> ChannelRanking:
    """The ``k`` most important channels of ``class_index`` (see :func:`class_channel_scores`).

    ``checkpoint`` is a path, a loaded model, or ``(model, meta)``. ``dataset`` (optional)
    ranks by mean activation over the images of that class found in it.
    """
    model, meta = _load(checkpoint)
    if not 0 <= class_index < model.num_classes:
        raise ValueError(f"class {class_index} out of range 0..{model.num_classes - 1}")
    if dataset is not None:
        targets = getattr(dataset, "targets", None)
        if targets is not None:
            dataset = Subset(dataset, [i for i, t in enumerate(targets) if t == class_index])
    scores, source = class_channel_scores(model, meta, dataset)
    row = scores[class_index]
    k = min(k, row.numel())
    top = row.topk(k)
    owner = model.groups.owner()
    return ChannelRanking(class_index, [int(i) for i in top.indices], [float(v) for v in top.values],
                          [int(owner[i]) for i in top.indices], source)
