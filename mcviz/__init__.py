"""mcviz: train fine-grained classifiers with the Mutual-Channel Loss and see what its channels learned."""

__version__ = "0.1.0"

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from .groups import ChannelGroups  # noqa: E402
from .loss import MCLoss, diversity_scores, discriminality_logits, random_cwa_mask  # noqa: E402
from .models import MCNet, PretrainedUnavailable, build_model  # noqa: E402

__all__ = [
    "ChannelGroups",
    "CheckpointError",
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
