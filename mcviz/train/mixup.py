"""Mixup (Zhang et al., 2018) of a training batch, at the cached layer when the body is frozen."""

from __future__ import annotations

import random

import torch

from .config import TrainConfig

__all__ = ["mixed"]


def mixed(cfg: TrainConfig, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup (Zhang et al., 2018): the batch blended with itself in a random order, weight ~
    Beta(a, a); at the cached layer when the body is frozen (manifold mixup). Returns ``(inputs,
    the partner's labels, weight of the own labels)``; without ``--mixup`` the batch as it is."""
    if cfg.mixup <= 0:
        return x, y, 1.0
    lam = random.betavariate(cfg.mixup, cfg.mixup)
    perm = torch.randperm(len(x), device=x.device)
    return lam * x + (1 - lam) * x[perm], y[perm], lam
