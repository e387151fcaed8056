"""The interface of a per-channel map method.

A method turns one preprocessed image ``x`` ``(1, 3, H, W)`` and a flat list of channel indices
into raw maps ``(len(channels), h, w)`` (float32 numpy, the method's own units, at feature or
layer resolution). Normalising and upsampling happen in one place
(:class:`~mcviz.explain.explainer.Explainer`). Two kinds exist:

- :class:`FeatureMethod` reads the MC features themselves (``activation``, ``contribution``);
- :class:`LayerMethod` explains the features from a chosen layer before them (the CAM family).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Optional, Sequence

import numpy as np
import torch

from ...core.models import MCNet


class MapMethod(ABC):
    """A named map method (see the module docstring)."""

    name: ClassVar[str]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class FeatureMethod(MapMethod):
    """Maps computed from the MC features of ``x``."""

    @abstractmethod
    def __call__(
        self,
        model: MCNet,
        x: torch.Tensor,
        channels: Sequence[int],
        *,
        classes: Optional[Sequence[int]] = None,
        features: Optional[torch.Tensor] = None,
    ) -> np.ndarray:
        """``classes``: the class of each channel (for methods that need it); ``features``: the
        MC features of ``x`` when the caller already has them."""


class LayerMethod(MapMethod):
    """Maps at a layer before the MC features (per-channel CAMs are only informative there)."""

    @abstractmethod
    def __call__(
        self,
        model: MCNet,
        x: torch.Tensor,
        channels: Sequence[int],
        *,
        layer: Optional[str] = None,
        layer_output: Optional[torch.Tensor] = None,
        chunk: int = 16,
    ) -> np.ndarray:
        """``layer``: a step name (default: the model's last step before the MC features);
        ``layer_output``: that step's output for ``x`` when the caller has it; ``chunk``: channels
        per batched backward pass."""


def mc_features(model: MCNet, x: torch.Tensor, features: Optional[torch.Tensor]) -> torch.Tensor:
    """The MC features, reusing the caller's forward pass when it has one."""
    if features is not None:
        return features.detach()
    with torch.no_grad():
        return model.features(x)
