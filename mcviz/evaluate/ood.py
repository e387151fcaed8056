"""Calibrating and measuring the out-of-distribution check (:mod:`mcviz.explain.ood`).

The threshold is set on one half of a split the model never trained on (the test split) and
its false-alarm rate measured on the other half, so the rate is an honest estimate for new
photos of the data set. Photos of other things (a folder of them) only measure the detection
rate and AUROC; they never move the threshold.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..core.folding import for_inference
from ..core.models import MCNet, channels_last
from ..data.images import ImageError, open_image
from ..data.transforms import EvalTransform
from ..explain.ood import SCORES, OODCalibration, ood_scores

__all__ = ["auroc", "calibrate", "folder_logits", "halves", "rates", "split_logits"]


@torch.no_grad()
def split_logits(
    model: MCNet, loader: DataLoader, device: torch.device, after: Optional[str] = None, progress: bool = True
) -> torch.Tensor:
    """``(n, classes)`` class scores of every input of ``loader`` (the first view where it holds
    several), from the checkpoint's own prediction stream."""
    out = []
    for batch in tqdm(loader, desc="class scores", leave=False, disable=not progress, file=sys.stderr):
        x = batch[0].to(device)
        if x.dim() == 5:
            x = x[:, 0]
        out.append(model.logits_from_features(model.features(channels_last(x), after)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model.num_classes)


@torch.no_grad()
def folder_logits(
    model: MCNet,
    transform: EvalTransform,
    files: Sequence[Path],
    device: torch.device,
    batch_size: int = 32,
    progress: bool = True,
) -> tuple[torch.Tensor, list[Path]]:
    """``(class scores, the files read)`` of photos in any format :func:`open_image` reads;
    unreadable files are reported on stderr and skipped."""
    net = for_inference(model).to(device)
    scores: list[torch.Tensor] = []
    read: list[Path] = []
    batch: list[torch.Tensor] = []

    def flush() -> None:
        if batch:
            scores.append(
                net.logits_from_features(net.features(channels_last(torch.stack(batch).to(device)))).float().cpu()
            )
            batch.clear()

    for f in tqdm(files, desc="other photos", leave=False, disable=not progress, file=sys.stderr):
        try:
            img = open_image(f, min_side=transform.resize)
        except ImageError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            continue
        batch.append(transform(img))
        read.append(Path(f))
        if len(batch) == batch_size:
            flush()
    flush()
    return (torch.cat(scores) if scores else torch.zeros(0, model.num_classes)), read


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """The probability that a random in-distribution photo scores above a random other one
    (ties count half): the area under the ROC curve of the score as a detector."""
    inside, outside = np.asarray(inside, float), np.asarray(outside, float)
    if not len(inside) or not len(outside):
        return float("nan")
    both = np.concatenate([inside, outside])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both))
    ranks[order] = np.arange(1, len(both) + 1)
    # average ranks of ties
    _, inv, counts = np.unique(both, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = (sums / counts)[inv]
    u = ranks[: len(inside)].sum() - len(inside) * (len(inside) + 1) / 2
    return float(u / (len(inside) * len(outside)))


def halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(calibration indices, held-out indices)``: a seeded random half of ``range(n)`` each."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])


def calibrate(
    logits: torch.Tensor,
    checkpoint_sha256: str,
    *,
    dataset: str,
    split: str,
    domain: str,
    score: str = "energy",
    quantile: float = 0.03,
    seed: int = 0,
) -> OODCalibration:
    """A threshold at the ``quantile`` of ``score`` over one random half of ``logits`` (a split
    the model did not train on), with the false-alarm rate it gives on the other half.

    Raises:
        ValueError: an unknown score, a quantile outside (0, 0.5), or fewer than 20 photos.
    """
    if not 0 < quantile < 0.5:
        raise ValueError(f"quantile {quantile} must lie in (0, 0.5)")
    if len(logits) < 20:
        raise ValueError(f"{len(logits)} photos are too few to calibrate a threshold (at least 20)")
    s = ood_scores(logits, score).numpy()
    cal, held = halves(len(s), seed)
    threshold = float(np.quantile(s[cal], quantile))
    return OODCalibration(
        checkpoint_sha256=checkpoint_sha256,
        score=score,
        threshold=round(threshold, 4),
        quantile=quantile,
        dataset=dataset,
        split=split,
        calibration_images=len(cal),
        held_out_images=len(held),
        false_alarm=round(float((s[held] < threshold).mean()), 4),
        domain=domain,
    )


def rates(logits_in: torch.Tensor, logits_out: Optional[torch.Tensor], calibration: OODCalibration) -> dict:
    """Flagged shares and AUROC of every score: what ``mcviz eval --ood-folder`` and
    ``calibrate-ood`` print. ``false_alarm``/``detected`` use the calibration's own score."""
    s_in = ood_scores(logits_in, calibration.score).numpy()
    out: dict = {
        "score": calibration.score,
        "threshold": calibration.threshold,
        "false_alarm": round(float((s_in < calibration.threshold).mean()), 4),
        "n_in": len(s_in),
    }
    if logits_out is not None and len(logits_out):
        s_out = ood_scores(logits_out, calibration.score).numpy()
        out["detected"] = round(float((s_out < calibration.threshold).mean()), 4)
        out["n_out"] = len(s_out)
        out["auroc"] = {
            name: round(auroc(ood_scores(logits_in, name).numpy(), ood_scores(logits_out, name).numpy()), 4)
            for name in SCORES
        }
    return out
