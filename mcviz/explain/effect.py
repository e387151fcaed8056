"""What a channel does to a class's score: mean ablation at the head's pooled input.

The head of an :class:`~mcviz.core.models.MCNet` starts by pooling each feature channel to one
number (GMP for the official head, GAP for the plain one; with soft labels, of the
SE-weighted features). Switching a channel *off* sets that pooled number to its mean: the
running mean of the head's first BatchNorm (its mean over the training images) for the
official head, the mean over the given images otherwise. A channel's *effect* on class ``c``
is how far that drops the class's logit, averaged over the class's images.

Only the head runs again, never the trunk. For the official head (BN, FC, BN, ELU, FC)
switching one channel off is a rank-one change of the hidden layer, so the effects of every
channel on every image come out of one batched product (:func:`channel_effects`); the
GAP + linear and the class-connected heads are linear, and their effects are exact in closed
form (for a class-connected head a channel outside the class's group has no effect at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn

from ..core.class_head import CLASS_HEADS
from ..core.models import HeadParts, MCNet, channels_last
from ..trunk.split_pass import SplitPass

__all__ = ["HeadAblation", "channel_effects", "pooled_inputs"]


def pooled_inputs(model: MCNet, features: torch.Tensor) -> torch.Tensor:
    """``(B, N, H, W)`` MC features -> ``(B, N)``: what the head's layers after pooling see."""
    if model.soft:
        features = features * model.se(features)[:, :, None, None].to(features.dtype)
    return model.head_parts().pool(features).float()


@dataclass
class HeadAblation:
    """The head after its pooling, and the value each channel takes when switched off."""

    parts: HeadParts  # the head's layers; ``parts.classifier``: pooled (B, N) -> logits (B, classes)
    means: torch.Tensor  # (N,) pooled value of a channel switched off
    kind: str  # "official", "gap" or a class-connected head
    chunk: int = 16  # images per batched product in :meth:`effects`

    @property
    def head(self) -> nn.Module:
        """Pooled ``(B, N)`` -> logits."""
        return self.parts.classifier

    @classmethod
    def of(
        cls, model: MCNet, pooled: Optional[torch.Tensor] = None, means: Optional[torch.Tensor] = None
    ) -> "HeadAblation":
        """The model's head. A channel switched off takes ``means`` when given; else the official
        head's BatchNorm running mean, or for a GAP head (which keeps no statistics) the mean of
        ``pooled`` (``(M, N)``, e.g. over the test images)."""
        parts = model.head_parts()
        parts.classifier.eval()
        if means is not None:
            means = means.detach().float().clone()
        elif parts.bn1 is not None:
            means = parts.bn1.running_mean.detach().float().clone()
        elif pooled is not None:
            means = pooled.float().mean(dim=0)
        else:
            raise ValueError("a GAP head keeps no channel means: pass the pooled values of some images")
        return cls(parts, means, model.head_kind)

    @torch.no_grad()
    def logits(self, pooled: torch.Tensor, off: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits of ``pooled (B, N)`` with the channels where ``off`` ((N,) or (B, N) bool) is
        True set to their means."""
        p = pooled.float()
        if off is not None:
            p = torch.where(off.to(torch.bool), self.means.to(p.dtype), p)
        return self.head(p).float()

    @torch.no_grad()
    def probabilities(self, pooled: torch.Tensor, channels: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Class probabilities of one image's ``pooled (N,)`` input, ``(before, after)`` switching
        ``channels`` off; only the head runs."""
        # a copy of an array (which may be read-only: the app shares it between sessions), not a view
        x = (pooled if isinstance(pooled, torch.Tensor) else torch.tensor(pooled))[None]
        off = torch.zeros(x.shape[1], dtype=torch.bool)
        off[list(channels)] = True
        before, after = (torch.softmax(self.logits(x, m), dim=1)[0] for m in (None, off))
        return before, after

    @torch.no_grad()
    def effects(self, pooled: torch.Tensor, class_index: int) -> torch.Tensor:
        """``(B, N)``: the drop of logit ``class_index`` on each image when each channel alone is
        switched off (positive: the channel supports the class)."""
        p = pooled.float()
        delta = self.means - p  # (B, N): the change of each pooled value when switched off
        if self.kind == "gap":
            return -delta * self.parts.out.weight[class_index].float()
        if self.kind in CLASS_HEADS:  # BN then a fixed connection: linear, exact in closed form
            bn = self.parts.bn1
            scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).float()
            return -delta * scale * self.parts.out.class_weights()[class_index].float()
        bn1, fc1, bn2, fc2 = self.parts.bn1, self.parts.fc1, self.parts.bn2, self.parts.out
        scale1 = bn1.weight / torch.sqrt(bn1.running_var + bn1.eps)
        scale2 = bn2.weight / torch.sqrt(bn2.running_var + bn2.eps)
        # hidden pre-activation after BN2, and how one channel's change moves it (rank one)
        v = bn2(fc1(bn1(p)))  # (B, hidden)
        step = (fc1.weight * scale2[:, None] * scale1[None, :]).T  # (N, hidden)
        w, b = fc2.weight[class_index].float(), fc2.bias[class_index].float()
        base = torch.nn.functional.elu(v) @ w + b  # (B,)
        out = torch.empty_like(p)
        for i in range(0, p.shape[0], self.chunk):  # chunks of images bound the (b, N, hidden) block
            d, vi = delta[i : i + self.chunk], v[i : i + self.chunk]
            moved = torch.nn.functional.elu(vi[:, None, :] + d[:, :, None] * step[None])  # (b, N, hidden)
            out[i : i + self.chunk] = base[i : i + self.chunk, None] - (moved @ w + b)
        return out


@torch.no_grad()
def channel_effects(
    ablation: HeadAblation, pooled: torch.Tensor, labels: torch.Tensor, classes: Optional[Sequence[int]] = None
) -> torch.Tensor:
    """``(classes, N)``: each channel's mean effect on each class's logit over that class's
    images in ``pooled (M, N)`` / ``labels (M,)`` (zero for a class without images)."""
    n_classes = ablation.parts.out.out_features
    classes = range(n_classes) if classes is None else classes
    out = torch.zeros(len(classes), pooled.shape[1])
    for row, c in enumerate(classes):
        mine = pooled[labels == c]
        if len(mine):
            out[row] = ablation.effects(mine, int(c)).mean(dim=0)
    return out


@dataclass
class PooledSet:
    """The head's pooled inputs of a data set's images, with what the rankings need of them."""

    pooled: torch.Tensor  # (M, N) the head's input after pooling
    mean_activation: torch.Tensor  # (M, N) each channel's spatial mean (GAP of the MC features)
    labels: torch.Tensor  # (M,)
    source: str  # "images", or "cache": the frozen trunk's outputs came from the training cache


@torch.no_grad()
def collect_pooled(run: SplitPass) -> PooledSet:
    """One pass over ``run``'s split: every image's pooled head input. A model trained with
    ``--freeze`` reads its frozen trunk's outputs from the training cache when that holds this split."""
    model = run.model
    loader, after = run.loader()
    channels_last(model.eval())
    pooled, gap, labels = [], [], []
    for x, y in run.bar(loader, "pooled inputs"):
        f = model.features(channels_last(x), after)
        pooled.append(pooled_inputs(model, f))
        gap.append(f.float().mean(dim=(2, 3)))
        labels.append(torch.as_tensor(y))
    if not labels:
        raise ValueError(f"no images in the {run.split} split of {run.root}")
    return PooledSet(torch.cat(pooled), torch.cat(gap), torch.cat(labels), "cache" if after else "images")
