"""mcviz: train fine-grained classifiers with the Mutual-Channel Loss and see what its channels learned.

The package follows the data: :mod:`mcviz.core` (groups, loss, models), :mod:`mcviz.data`
(data sets and the trunk cache), :mod:`mcviz.io` (checkpoints), :mod:`mcviz.train`,
:mod:`mcviz.evaluate`, :mod:`mcviz.explain` and :mod:`mcviz.cli`.
"""

__version__ = "0.1.0"

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
