"""Per-channel map methods by name (one short module each; the interface is in :mod:`.base`).

:data:`METHODS` maps a name to a callable :class:`~.base.MapMethod`: ``activation``
(:mod:`.activation`), ``contribution`` (:mod:`.contribution`) and the grad-cam package's
methods (:mod:`.cam`).
"""

from __future__ import annotations

from .activation import Activation
from .base import FeatureMethod, LayerMethod, MapMethod
from .cam import CAM_CLASSES, Cam, ChannelMeanTarget, cam_maps
from .contribution import Contribution

METHODS: dict[str, MapMethod] = {m.name: m for m in (Activation(), Contribution(), *(Cam(n) for n in CAM_CLASSES))}

__all__ = [
    "Activation",
    "CAM_CLASSES",
    "Cam",
    "ChannelMeanTarget",
    "Contribution",
    "FeatureMethod",
    "LayerMethod",
    "METHODS",
    "MapMethod",
    "cam_maps",
]
