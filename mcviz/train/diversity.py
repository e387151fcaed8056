"""How the diversity term L_div is scheduled and where it may act during training: the lambda
ramp (:func:`lam_at`) and the anchored region of a frozen copy of the network
(:func:`anchor_region`, docs/diversity.md)."""

from __future__ import annotations

import copy
from typing import Optional

import torch

from ..core.models import MCNet
from .config import TrainConfig


def lam_at(cfg: TrainConfig, epoch: int) -> float:
    """lambda in (0-based) ``epoch``: the warm-up ramps it linearly from 0 (``lam_warmup`` W:
    lam * epoch / W); with ``div_anchor`` K it is 0 before the anchor and the ramp starts
    at it, ``lam * (epoch - K + 1) / W``, so that L_div is on from epoch K."""
    w, k = cfg.lam_warmup, cfg.div_anchor
    if k:
        if epoch < k:
            return 0.0
        return cfg.lam * (min(1.0, (epoch - k + 1) / w) if w > 0 else 1.0)
    return cfg.lam * (min(1.0, epoch / w) if w > 0 else 1.0)


@torch.no_grad()
def anchor_region(anchor: MCNet, x: torch.Tensor, sd: float = 0.0, after: Optional[str] = None) -> torch.Tensor:
    """Where the frozen ``anchor`` network fires on ``x``: the positions at which the mean of
    its N channels reaches its spatial mean (+ ``sd`` x its spatial standard deviation; the
    peak always counts), ``(B, H, W)`` bool. With ``sd=0`` this is the ``object`` region of
    :func:`~mcviz.core.loss.diversity_scores`, computed by a network L_div does not train."""
    return threshold_region(anchor.features(x, after).float().mean(dim=1), sd)


def threshold_region(mean_map: torch.Tensor, sd: float = 0.0) -> torch.Tensor:
    """``(B, H, W)`` bool: where ``mean_map`` reaches its spatial mean + ``sd`` x its spatial
    standard deviation, and its peak (so the region is never empty)."""
    m = mean_map.flatten(1)
    inside = m >= m.mean(dim=1, keepdim=True) + sd * m.std(dim=1, keepdim=True)
    inside |= m == m.amax(dim=1, keepdim=True)
    return inside.view_as(mean_map)


def frozen_copy(model: MCNet, state: Optional[dict] = None) -> MCNet:
    anchor = copy.deepcopy(model)
    if state is not None:
        anchor.load_state_dict(state)
    anchor.eval()
    for p in anchor.parameters():
        p.requires_grad_(False)
    return anchor
