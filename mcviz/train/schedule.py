"""The learning-rate schedule of a run: cosine, or x0.1 at 50 % and 75 % of the epochs like the paper."""

from __future__ import annotations

from collections import Counter

import torch

from .config import TrainConfig

__all__ = ["extend_schedule", "make_schedule"]


def make_schedule(opt, cfg: TrainConfig):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=[int(cfg.epochs * 0.5), int(cfg.epochs * 0.75)], gamma=0.1
    )


def extend_schedule(sched, cfg: TrainConfig) -> None:
    """After resuming with a larger --epochs, stretch the schedule to the new length."""
    if isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR):
        sched.T_max = cfg.epochs
    else:
        sched.milestones = Counter([int(cfg.epochs * 0.5), int(cfg.epochs * 0.75)])
