"""``activation``: the raw channels of the MC feature map (the paper's Fig. 5 and 7)."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from ...core.models import MCNet
from .base import FeatureMethod, mc_features


class Activation(FeatureMethod):
    name = "activation"

    def __call__(
        self,
        model: MCNet,
        x: torch.Tensor,
        channels: Sequence[int],
        *,
        classes: Optional[Sequence[int]] = None,
        features: Optional[torch.Tensor] = None,
    ) -> np.ndarray:
        f = mc_features(model, x, features)[0]
        return f[list(channels)].float().cpu().numpy()
