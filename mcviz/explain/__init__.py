"""Explanations: per-channel maps, merged maps, h and peaks, channel rankings.

- :class:`Explainer` — predictions and ``channel_maps(image, classes, method, layer)`` with
  methods ``activation`` (raw channels), ``contribution`` (share of a class logit) and the
  grad-cam package's ``gradcam``, ``gradcam++``, ``xgradcam``, ``layercam``, ``hirescam``,
  ``eigencam`` (target: the mean of channel n; layer chosen by name).
- :func:`top_channels` — the k most important channels of a class: by their measured effect on
  its logit (:func:`compute_effect_ranking`, the ``NAME.ranking.json`` of ``mcviz rank``), the
  soft labels (paper Table IX), the linearised head or the mean activation.
- :mod:`.ood` — is the photo of what the model knows? A threshold on its largest class score,
  calibrated on held-out photos (``NAME.ood.json``); :meth:`Explainer.predict` returns the verdict.
- :class:`HeadAblation` — switch channels off (pooled value set to its mean) and rerun only the
  head; :func:`channel_effects` — every channel's effect on every class, batched and exact.
- :mod:`.methods` — the map methods, one module each, behind one interface (:mod:`.methods.base`);
  :mod:`.render` — overlays, PNG panels and plotly figures of the maps.

Which CUB part a channel looks at is measured in :mod:`mcviz.evaluate.parts` (a floor up: it runs
the model over a data set).
"""

from .explainer import ChannelMaps, ClassMaps, Diversity, Explainer, Prediction, Predictions
from .ood import OODCalibration, OODVerdict, load_ood_calibration
from .methods import CAM_CLASSES, METHODS, ChannelMeanTarget, FeatureMethod, LayerMethod, MapMethod
from .effect import HeadAblation, channel_effects
from .rankings import (
    RANKINGS,
    ChannelRanking,
    EffectRanking,
    class_channel_scores,
    compute_effect_ranking,
    load_effect_ranking,
    top_channels,
)

__all__ = [
    "CAM_CLASSES",
    "ChannelMaps",
    "ChannelMeanTarget",
    "ChannelRanking",
    "ClassMaps",
    "Diversity",
    "EffectRanking",
    "Explainer",
    "FeatureMethod",
    "HeadAblation",
    "LayerMethod",
    "METHODS",
    "MapMethod",
    "OODCalibration",
    "OODVerdict",
    "Prediction",
    "Predictions",
    "RANKINGS",
    "channel_effects",
    "class_channel_scores",
    "compute_effect_ranking",
    "load_effect_ranking",
    "load_ood_calibration",
    "top_channels",
]
