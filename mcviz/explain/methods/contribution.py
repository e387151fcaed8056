"""``contribution``: channel n's share of class c's logit at each place; the maps of a class sum
to its logit.

Exact for the GAP + linear head (``w[c, n] * F_n(p) / HW``), for the class-connected heads (channel
n's evidence for c, ``W[c, n] * BN(pool(F))_n``, spread over the places that make its pool: evenly
weighted by ``F_n(p)`` for the average, all on the argmax for the max; the maps of a class plus
its bias are its score) and for the MC branch (``F_n(p) / HW`` where n is the group's
cross-channel max at p, else 0). The official head (GMP, BN, FC, BN, ELU, FC) has no exact
decomposition, so models with it are decomposed through their MC branch.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from ...core.models import MCNet
from .base import FeatureMethod, mc_features


class Contribution(FeatureMethod):
    name = "contribution"

    def __call__(
        self,
        model: MCNet,
        x: torch.Tensor,
        channels: Sequence[int],
        *,
        classes: Optional[Sequence[int]] = None,
        features: Optional[torch.Tensor] = None,
    ) -> np.ndarray:
        if classes is None:
            raise ValueError("contribution maps need the class of each channel")
        f = mc_features(model, x, features)[0].float()
        if model.head_kind == "gap" and model.predict == "head":
            return _through_linear_head(model, f, channels, classes)
        if model.class_connected and model.predict == "head":
            return _through_class_connected_head(model, f, channels, classes)
        return _through_mc_branch(model, f, channels, classes)


def _through_linear_head(model: MCNet, f: torch.Tensor, channels: Sequence[int], classes: Sequence[int]) -> np.ndarray:
    hw = f.shape[1] * f.shape[2]
    w = model.head_parts().out.weight.detach().float()
    if model.soft:  # the head sees the SE-weighted features
        with torch.no_grad():
            w = w * model.se(f[None])[0][None, :]
    return torch.stack([w[c, n] * f[n] / hw for n, c in zip(channels, classes)]).cpu().numpy()


def _through_mc_branch(model: MCNet, f: torch.Tensor, channels: Sequence[int], classes: Sequence[int]) -> np.ndarray:
    hw = f.shape[1] * f.shape[2]
    out = []
    for n, c in zip(channels, classes):
        group = model.groups.channels(c)
        winner = torch.tensor(group)[f[group].argmax(dim=0)]
        out.append(torch.where(winner == n, f[n] / hw, torch.zeros_like(f[n])))
    return torch.stack(out).cpu().numpy()


def _through_class_connected_head(
    model: MCNet, f: torch.Tensor, channels: Sequence[int], classes: Sequence[int]
) -> np.ndarray:
    parts = model.head_parts()
    if model.soft:  # the head sees the SE-weighted features
        with torch.no_grad():
            f = f * model.se(f[None])[0][:, None, None].to(f.dtype)
    bn, hw = parts.bn1, f.shape[1] * f.shape[2]
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().float()
    shift = bn.bias.detach().float() - scale * bn.running_mean.float()
    w = parts.out.class_weights().detach().float()
    out = []
    for n, c in zip(channels, classes):
        if model.head_kind == "class-connected-max":
            m = torch.zeros_like(f[n])
            flat = int(f[n].argmax())
            m.view(-1)[flat] = w[c, n] * (scale[n] * f[n].view(-1)[flat] + shift[n])
        else:
            m = w[c, n] * (scale[n] * f[n] + shift[n]) / hw
        out.append(m)
    return torch.stack(out).cpu().numpy()
