"""Soft channel labels (paper Sec. IV-E, Eq. 8-12): learned, uneven, possibly shared groups.

No public implementation existed; the choices below are ours and are explained in
``docs/soft-labels.md``. In short:

- An SE block on the MC features gives every sample a weight ``t_k in (0, 1)`` per channel
  (Eq. 8). The CE head sees the re-weighted features ``F * t`` (the SE block's usual role),
  so the weights are shaped by classification as well as by Eq. 10-11.
- ``L_intra`` (Eq. 10): per class present in the batch, the cross-sample max of its weights,
  summed over channels, averaged over the classes present.
- ``L_inter`` (Eq. 11): minus the sum over channels of the max over every sample of the batch.
  Together they are smallest when each channel is high for one class and low for the others.
- Soft labels: a ``(classes, channels)`` matrix, the exponential moving average of each
  class's mean SE weights over training batches, initialised to the fixed contiguous groups
  so that training starts as plain MC-Loss.
- Regrouping: class ``i`` owns the channels whose soft label is at least ``threshold``, at
  least ``min_size`` and at most ``max_size`` of them, the most class-specific first (label
  minus the channel's mean label over classes; ties by channel index: deterministic).
  Channels may be shared and sizes are uneven; the MC-Loss then runs on these groups
  through the same vectorised gather as any other grouping.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .groups import ChannelGroups


class SEBlock(nn.Module):
    """Squeeze-and-excitation: ``(B, N, H, W) -> (B, N)`` weights in (0, 1)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(8, channels // reduction)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(features.float().mean(dim=(2, 3))))


def l_intra(weights: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Eq. 10: mean over the classes in the batch of sum_k max_j W_i[j, k]."""
    b, n = weights.shape
    per_class = torch.zeros(num_classes, n, dtype=weights.dtype, device=weights.device)
    per_class = per_class.scatter_reduce(0, target[:, None].expand(b, n), weights, reduce="amax", include_self=False)
    present = torch.bincount(target, minlength=num_classes) > 0
    return per_class[present].sum(dim=1).mean()


def l_inter(weights: torch.Tensor) -> torch.Tensor:
    """Eq. 11: minus sum_k of the max over all samples (of all classes) of the batch."""
    return -weights.max(dim=0).values.sum()


def initial_soft_labels(groups: ChannelGroups) -> torch.Tensor:
    """Soft labels equal to a fixed grouping: 1 on a class's own channels, 0 elsewhere."""
    p = torch.zeros(groups.num_classes, groups.num_channels)
    for i, m in enumerate(groups.members):
        p[i, list(m)] = 1.0
    return p


@torch.no_grad()
def update_soft_labels(soft: torch.Tensor, weights: torch.Tensor, target: torch.Tensor, momentum: float = 0.99) -> None:
    """EMA of each class's mean SE weights, for the classes in the batch (in place)."""
    c, n = soft.shape
    sums = torch.zeros(c, n, device=weights.device).index_add_(0, target, weights.float())
    counts = torch.bincount(target, minlength=c).float()
    present = counts > 0
    mean = sums[present] / counts[present, None]
    soft[present] = momentum * soft[present] + (1 - momentum) * mean.to(soft.device)


def regroup(soft: torch.Tensor, threshold: float = 0.5, min_size: int = 1, max_size: int = 6) -> ChannelGroups:
    """Groups from soft labels: class ``i`` owns its channels with label >= threshold, between
    ``min_size`` and ``max_size`` of them, preferring the channels most specific to it.

    Specificity is the label minus the channel's mean label over classes: when the SE weights
    are high for a channel in every class (they start that way), ranking by the raw label
    would hand every class the same few channels and collapse the MC-Loss; ranking by
    specificity keeps the classes apart. Ties go to the lower channel index (deterministic).
    A class with no channel at the threshold takes its most specific channel(s).
    """
    c, n = soft.shape
    if not 1 <= min_size <= max_size <= n:
        raise ValueError(f"need 1 <= min_size <= max_size <= {n}, got {min_size}, {max_size}")
    soft = soft.detach().float().cpu()
    specific = soft - soft.mean(dim=0, keepdim=True)
    # candidates (label >= threshold) first, each part ranked by specificity; a stable sort
    # on (-key, index) makes equal keys fall back to the channel index
    key = torch.where(soft >= threshold, specific + 2 * (specific.abs().max() + 1), specific)
    order = torch.sort(-key, dim=1, stable=True).indices
    sizes = (soft >= threshold).sum(dim=1).clamp(min_size, max_size)
    members = [sorted(order[i, : int(sizes[i])].tolist()) for i in range(c)]
    return ChannelGroups.from_members(members, n)


def shared_channels(groups: ChannelGroups) -> int:
    """How many channels belong to more than one class."""
    count = torch.zeros(groups.num_channels, dtype=torch.long)
    for m in groups.members:
        count[list(m)] += 1
    return int((count > 1).sum())


def family_sharing(scores: torch.Tensor, class_names: Sequence[str], k: int = 10) -> dict[str, float]:
    """Do similar classes share channels (paper Table IX)? ``scores`` is class x channel (soft
    labels); each class's top-``k`` channels are compared between every pair of classes of one
    family (same last word of the name: the gulls, the warblers...) and every pair of classes.

    Returns the mean number of shared channels of family pairs and of all pairs, their ratio,
    and the pair counts."""
    if scores.shape[0] != len(class_names):
        raise ValueError(f"{scores.shape[0]} rows of scores but {len(class_names)} class names")
    top = scores.float().topk(min(k, scores.shape[1]), dim=1).indices
    onehot = torch.zeros(scores.shape, dtype=torch.float32).scatter_(1, top, 1.0)
    shared = onehot @ onehot.T  # (C, C): channels in both top-k lists
    family = [n.split()[-1].lower() if n.split() else "" for n in class_names]
    same = torch.tensor([[a == b for b in family] for a in family])
    off = ~torch.eye(len(family), dtype=torch.bool)
    fam_pairs, all_pairs = same & off, off
    if not bool(fam_pairs.any()):
        raise ValueError("no two classes share a family name")
    fam, rand = float(shared[fam_pairs].mean()), float(shared[all_pairs].mean())
    return {
        "family": fam,
        "random": rand,
        "ratio": fam / rand if rand > 0 else float("inf"),
        "family_pairs": int(fam_pairs.sum()) // 2,
        "pairs": int(all_pairs.sum()) // 2,
    }
