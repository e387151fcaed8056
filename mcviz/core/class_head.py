"""The class-connected head: a class's score is read from its own channels alone.

``score_c = b_c + sum_j M[c, j] * w_j * BN(pool(F))_j``, where ``M`` is the class x channel
connection: the channel groups' membership (1 on a class's own channels, 0 elsewhere) or,
for the soft-label variant, the learned soft labels. Each term ``M[c, j] * w_j * BN(pool(F))_j``
is channel j's *evidence* for class c; the evidence of a class's channels plus its bias is its
score exactly, so an explanation built from it is the decision itself, not an estimate of it
(as with ProtoPNet's class-connected last layer).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .groups import ChannelGroups

__all__ = ["CLASS_HEADS", "ClassConnected", "class_connected_head", "membership"]

# head name -> the spatial pool it starts with
CLASS_HEADS: dict[str, type[nn.Module]] = {
    "class-connected-max": nn.AdaptiveMaxPool2d,
    "class-connected-avg": nn.AdaptiveAvgPool2d,
}


def membership(groups: ChannelGroups) -> torch.Tensor:
    """``(classes, channels)``: 1 where the channel belongs to the class's group."""
    m = torch.zeros(groups.num_classes, groups.num_channels)
    for c, chans in enumerate(groups.members):
        m[c, list(chans)] = 1.0
    return m


class ClassConnected(nn.Module):
    """Pooled ``(B, N)`` -> ``(B, classes)`` through a fixed class x channel connection.

    One weight per channel (not per class and channel): with hard groups a channel feeds one
    class only, so a per-pair weight would add nothing but the zeros of ``M``. The connection is
    a non-persistent buffer: it follows from the groups (or the soft labels) that the checkpoint
    already stores, so nothing is saved twice.
    """

    def __init__(self, connection: torch.Tensor) -> None:
        super().__init__()
        c, n = connection.shape
        self.register_buffer("connection", connection.float().clone(), persistent=False)
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(c))

    @property
    def in_features(self) -> int:
        return self.weight.numel()

    @property
    def out_features(self) -> int:
        return self.bias.numel()

    def class_weights(self) -> torch.Tensor:
        """``(classes, N)``: the weight of each pooled channel in each class's score."""
        return self.connection.to(self.weight.dtype) * self.weight[None, :]

    def evidence(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, classes, N)``: each channel's term of each class's score (the bias excluded)."""
        return x[:, None, :] * self.class_weights()[None].to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.class_weights().T.to(x.dtype) + self.bias.to(x.dtype)


def class_connected_head(kind: str, groups: ChannelGroups) -> nn.Sequential:
    """Pool, BatchNorm (one scale and shift per channel, which keeps the sum exact), connection."""
    if kind not in CLASS_HEADS:
        raise ValueError(f"unknown class-connected head {kind!r}; choose one of {', '.join(CLASS_HEADS)}")
    n = groups.num_channels
    return nn.Sequential(CLASS_HEADS[kind](1), nn.Flatten(), nn.BatchNorm1d(n), ClassConnected(membership(groups)))
