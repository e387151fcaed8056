"""mcviz: train fine-grained classifiers with the Mutual-Channel Loss and see what its channels learned.

The package is built in floors, each importing only from those below it: :mod:`mcviz.data`
(transforms, decoding, data sets), :mod:`mcviz.core` (groups, loss, networks), :mod:`mcviz.io`
(checkpoints and side files), :mod:`mcviz.trunk` (the frozen trunk's cache), :mod:`mcviz.explain`,
:mod:`mcviz.evaluate`, :mod:`mcviz.train` and :mod:`mcviz.cli`.
"""

from ._version import __version__  # noqa: E402,F401

from .core.groups import ChannelGroups  # noqa: E402
from .core.loss import MCLoss, diversity_scores, discriminality_logits, random_cwa_mask  # noqa: E402
from .core.models import MCNet, PretrainedUnavailable, build_model  # noqa: E402
from .io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from .io.meta import CheckpointMeta  # noqa: E402

__all__ = [
    "ChannelGroups",
    "CheckpointError",
    "CheckpointMeta",
    "MCLoss",
    "MCNet",
    "PretrainedUnavailable",
    "build_model",
    "diversity_scores",
    "discriminality_logits",
    "load_checkpoint",
    "random_cwa_mask",
    "save_checkpoint",
]
