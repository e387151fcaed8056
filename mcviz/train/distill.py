"""Knowledge distillation (``--distill CKPT``): the model also learns a trained teacher's softened
class probabilities (Hinton et al., 2015). A class-connected head, which may read a class's score
from its own channels only, learns from the official head's decision this way."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..core.models import MCNet, channels_last
from .config import ConfigError, TrainConfig

__all__ = ["distill_term", "load_teacher"]


def load_teacher(cfg: TrainConfig, model: MCNet, classes: list, after: Optional[str], device) -> MCNet:
    """The --distill checkpoint, checked to fit: the same classes and, when the inputs are a frozen
    trunk's cached outputs, the same trunk up to that step (its tensors, not only its name)."""
    from ..io.checkpoint import load_checkpoint

    teacher, meta = load_checkpoint(cfg.distill)
    if list(meta.class_names) != list(classes):
        raise ConfigError(f"--distill {cfg.distill}: its classes are not this data set's")
    if after:
        ours, theirs = model.split_at(after)[0].state_dict(), teacher.split_at(after)[0].state_dict()
        if ours.keys() != theirs.keys() or any(
            not torch.allclose(ours[k].float(), theirs[k].float(), atol=1e-3)
            for k in ours
            if ours[k].is_floating_point()
        ):
            raise ConfigError(f"--distill {cfg.distill}: its body up to {after} is not this run's frozen trunk")
    teacher = channels_last(teacher.to(device).eval())
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def distill_term(
    teacher: MCNet,
    x: torch.Tensor,
    logits: torch.Tensor,
    after: Optional[str],
    t: float,
    device_type: str = "cpu",
    amp_dtype: torch.dtype = torch.float16,
    amp: bool = False,
) -> torch.Tensor:
    """T^2 x KL(teacher || student) of the class probabilities softened by ``t`` (Hinton et al., 2015);
    ``x``: the student's input (a cached trunk output when ``after`` names its step)."""
    with torch.no_grad(), torch.autocast(device_type, dtype=amp_dtype, enabled=amp):
        target = teacher.logits_from_features(teacher.features(x, after))
    return (
        t
        * t
        * F.kl_div(
            F.log_softmax(logits.float() / t, 1),
            F.log_softmax(target.float() / t, 1),
            reduction="batchmean",
            log_target=True,
        )
    )
