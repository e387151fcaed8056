"""Training the CUB part locator (:class:`~mcviz.core.part_locator.PartLocator`) on the frozen
trunk's cached block-5 outputs of CUB's training split: the evaluation crop and its mirror
(left and right parts swapped), the same cache every shipped CUB model trained on.

``train_locator`` writes ``OUT/last.safetensors`` (the shipped format), ``OUT/state.pt`` and
``OUT/metrics.jsonl`` after every epoch; a killed run resumes at its last finished epoch.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss
from tqdm import tqdm

from ..core.models import build_model, input_norm
from ..core.part_locator import PartLocator
from ..io.locator_file import save_locator
from ..trunk.part_targets import locator_data
from ..data.transforms import EvalTransform
from ..io.checkpoint import body_digest
from ..io.files import atomic_write_bytes
from .state import load_state, read_metrics, save_state

__all__ = ["LocatorConfig", "locator_loss", "train_locator"]


@dataclass
class LocatorConfig:
    """A locator training run (``mcviz locator train --help`` lists the same)."""

    root: str
    out: str
    backbone: str = "lite0"
    layer: str = "block5"
    image_size: int = 288
    width: int = 96
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    cache_dir: str = ""
    limit: Optional[int] = None  # the first N images of each split (tests)
    command: str = ""


def gaussian_targets(xy: torch.Tensor, h: int, w: int, sigma: float) -> torch.Tensor:
    """``(B, P, H*W)``: a Gaussian of ``sigma`` cells around each unit-square point, summing to 1 (the
    point lies between cell centres; a one-hot cell would call that noise)."""
    gx = (torch.arange(w, dtype=xy.dtype) + 0.5) / w
    gy = (torch.arange(h, dtype=xy.dtype) + 0.5) / h
    dx = (gx[None, None, None, :] - xy[..., 0, None, None]) * w
    dy = (gy[None, None, :, None] - xy[..., 1, None, None]) * h
    return (-(dx**2 + dy**2) / (2 * sigma**2)).flatten(2).softmax(-1)


def locator_loss(
    heat: torch.Tensor, vis: torch.Tensor, box: torch.Tensor, t: dict[str, torch.Tensor], sigma: float = 0.75
) -> tuple[torch.Tensor, dict[str, float]]:
    """Positions (L1 of the read-out point, plus the cross-entropy of each heat map against a Gaussian
    around the true point, which keeps the maps peaked: a diffuse map's expectation drifts toward its
    middle), visibility (BCE) and box (L1 + generalised IoU)."""
    b, p, h, w = heat.shape
    m = t["vis"]
    n = m.sum().clamp(min=1)
    xy = PartLocator.expected_xy(heat)
    l1 = ((xy - t["xy"]).abs().sum(-1) * m).sum() / n
    ce = (-(gaussian_targets(t["xy"], h, w, sigma) * heat.flatten(2).log_softmax(-1)).sum(-1) * m).sum() / n
    bce = F.binary_cross_entropy_with_logits(vis, m)
    lbox = F.l1_loss(box, t["box"]) + generalized_box_iou_loss(box, t["box"], reduction="mean")
    total = 10 * l1 + ce + bce + lbox
    return total, {k: float(v.detach()) for k, v in (("xy_l1", l1), ("heat_ce", ce), ("vis_bce", bce), ("box", lbox))}


def trunk_and_transform(backbone: str, layer: str, image_size: int) -> tuple[torch.nn.Module, EvalTransform, str]:
    """The frozen pretrained trunk up to ``layer``, the evaluation transform, and the trunk's digest."""
    model = build_model(backbone, 2, pretrained=True).eval()
    mean, std = input_norm(backbone)
    return model.split_at(layer)[0].eval(), EvalTransform(image_size, mean=mean, std=std), body_digest(model, layer)


def _batches(n: int, size: int, g: torch.Generator):
    order = torch.randperm(n, generator=g)
    for i in range(0, n - size + 1 if n >= size else n, size):
        yield order[i : i + size]


def train_locator(cfg: LocatorConfig, resume: bool = False, progress: bool = True) -> dict:
    """Train (or resume) a locator run; returns the last epoch's row."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    trunk, tf, digest = trunk_and_transform(cfg.backbone, cfg.layer, cfg.image_size)
    data = locator_data(cfg.root, "train", trunk, tf, cfg.backbone, cfg.layer, cfg.cache_dir, cfg.limit, progress)
    feats = torch.from_numpy(np.array(data.feats))  # read into memory (float16): ~1.5 GB for CUB's train split
    n, views = feats.shape[:2]
    targets = {k: torch.stack([t[k] for t in data.targets], 1) for k in ("xy", "vis", "box")}  # (N, views, ...)
    loc = PartLocator(feats.shape[2], width=cfg.width)
    opt = torch.optim.AdamW(loc.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * max(n * views // cfg.batch_size, 1)
    )
    start = 0
    if resume and (out / "state.pt").exists():
        st = load_state(out)
        loc.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        start = int(st["epoch"])
    rows = [r for r in read_metrics(out / "metrics.jsonl") if r["epoch"] <= start]
    atomic_write_bytes(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    row: dict = {}
    for epoch in range(start, cfg.epochs):
        t0 = time.time()
        steps, sums = _locator_epoch(loc, opt, sched, feats, targets, epoch, cfg, progress)
        row = {
            "epoch": epoch + 1,
            "train_time_s": round(time.time() - t0, 1),
            **{f"train_{k}": round(v / max(steps, 1), 5) for k, v in sums.items()},
        }
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        save_locator(out / "last.safetensors", loc.eval(), _meta(cfg, tf, digest, epoch + 1))
        save_state(
            out / "state.pt",
            {
                "epoch": epoch + 1,
                "model": loc.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
            },
        )
        tqdm.write(
            f"locator epoch {epoch + 1}/{cfg.epochs}: loss {row['train_loss']:.3f} [{row['train_time_s']:.0f}s]",
            file=sys.stderr,
        )
    # the read-out is picked on the training split (the test split stays unseen)
    loc.window, pck = choose_window(loc.eval(), feats[:, 0], targets)
    save_locator(out / "last.safetensors", loc, {**_meta(cfg, tf, digest, cfg.epochs), "window_pck": pck})
    return row


def _locator_epoch(
    loc: PartLocator, opt, sched, feats: torch.Tensor, targets: dict, epoch: int, cfg: LocatorConfig, progress: bool
) -> tuple[int, dict[str, float]]:
    """One epoch over every (image, view) pair; returns the steps and the sums of the loss terms."""
    loc.train()
    n, views = feats.shape[:2]
    g = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
    sums: dict[str, float] = {}
    steps = 0
    bar = tqdm(
        list(_batches(n * views, cfg.batch_size, g)),
        desc=f"locator {epoch + 1}/{cfg.epochs}",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    for idx in bar:
        img, view = idx // views, idx % views
        heat, vis, box = loc(feats[img, view].float())
        loss, terms = locator_loss(heat, vis, box, {k: v[img, view] for k, v in targets.items()})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched.last_epoch + 1 < sched.total_steps:
            sched.step()
        steps += 1
        for k, v in {"loss": float(loss.detach()), **terms}.items():
            sums[k] = sums.get(k, 0.0) + v
        bar.set_postfix(loss=f"{sums['loss'] / steps:.3f}")
    return steps, sums


def _meta(cfg: LocatorConfig, tf: EvalTransform, digest: str, epoch: int) -> dict:
    return {
        "backbone": cfg.backbone,
        "layer": cfg.layer,
        "input": tf.config(),
        "trunk_sha256": digest,
        "epochs": cfg.epochs,
        "epoch": epoch,
        "command": cfg.command,
        "train": asdict(cfg),
    }


@torch.no_grad()
def choose_window(
    loc: PartLocator, feats: torch.Tensor, targets: dict[str, torch.Tensor], windows: tuple[int, ...] = (0, 1, 2)
) -> tuple[int, dict[str, float]]:
    """The read-out window (:meth:`PartLocator.expected_xy`) with the best PCK@0.1 on ``feats`` (the
    training split's evaluation view) in the crop's unit square, and each window's PCK."""
    hits = {w: 0 for w in windows}
    seen = 0
    for i in range(0, len(feats), 256):
        heat = loc(feats[i : i + 256].float())[0]
        vis, xy_true, box = (targets[k][i : i + 256, 0] for k in ("vis", "xy", "box"))
        reach = 0.1 * torch.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
        seen += int(vis.sum())
        for w in windows:
            d = (loc.expected_xy(heat, w) - xy_true).norm(dim=-1)
            hits[w] += int(((d <= reach[:, None]) & (vis > 0)).sum())
    pck = {str(w): round(hits[w] / max(seen, 1), 5) for w in windows}
    return max(windows, key=lambda w: (hits[w], -w)), pck
