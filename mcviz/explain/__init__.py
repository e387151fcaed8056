"""Explanations: per-channel maps, merged maps, h and peaks, channel rankings.

- :class:`Explainer` — predictions and ``channel_maps(image, classes, method, layer)`` with
  methods ``activation`` (raw channels), ``contribution`` (share of a class logit) and the
  grad-cam package's ``gradcam``, ``gradcam++``, ``xgradcam``, ``layercam``, ``hirescam``,
  ``eigencam`` (target: the mean of channel n; layer chosen by name).
- :func:`top_channels` — the k most important channels of a class (paper Table IX).
- :func:`part_profile` — which CUB part a channel looks at (``mcviz parts`` writes the file).
"""

from .explainer import ChannelMaps, ClassMaps, Diversity, Explainer, Prediction
from .methods import CAM_CLASSES, METHODS, ChannelMeanTarget, contribution_stream
from .parts import ChannelParts, PartProfiles, load_part_profiles, part_profile
from .rankings import ChannelRanking, class_channel_scores, top_channels

__all__ = ["CAM_CLASSES", "ChannelMaps", "ChannelMeanTarget", "ChannelParts", "ChannelRanking", "ClassMaps",
           "Diversity", "Explainer", "METHODS", "PartProfiles", "Prediction", "class_channel_scores",
           "contribution_stream", "load_part_profiles", "part_profile", "top_channels"]
