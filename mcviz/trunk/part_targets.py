"""CUB's part annotations as the part locator's targets, beside the frozen trunk's cached outputs.

Positions and boxes are in the unit square of the evaluation crop (squash, centre crop), the frame
the locator predicts in; a mirror view swaps left and right parts. Shared by training
(:mod:`mcviz.train.part_locator`) and evaluation (:mod:`mcviz.evaluate.part_locator`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from ..data import build
from ..data.cub import CUB, MIRROR
from ..data.transforms import EvalTransform
from .cache import ViewTransform, build_cache, cache_folder, default_cache_dir

__all__ = ["LocatorData", "image_size", "locator_data", "mirrored", "unit_targets"]


def image_size(path: Path) -> tuple[int, int]:
    """A stored image's displayed ``(width, height)``, from its header (EXIF rotation included)."""
    with Image.open(path) as img:
        w, h = img.size
        if img.getexif().get(0x0112) in (5, 6, 7, 8):
            w, h = h, w
    return w, h


def unit_targets(cub: CUB, tf: EvalTransform, sizes: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
    """CUB's annotations in the unit square of the evaluation crop: ``xy (N, P, 2)``, ``vis (N, P)``
    (annotated visible *and* inside the crop), ``box (N, 4)`` x0 y0 x1 y1 clipped to the crop."""
    wh = torch.tensor(sizes, dtype=torch.float32)  # (N, 2)
    scale = tf.resize / wh
    xy = (cub.parts[:, :, :2] * scale[:, None, :] - tf.offset) / tf.crop
    inside = ((xy >= 0) & (xy <= 1)).all(-1)
    vis = (cub.parts[:, :, 2] > 0) & inside
    b = cub.boxes
    corners = torch.stack([b[:, :2], b[:, :2] + b[:, 2:]], 1) * scale[:, None, :]
    box = ((corners - tf.offset) / tf.crop).clamp(0, 1).flatten(1)
    return {"xy": xy * vis[..., None], "vis": vis.float(), "box": box}


def mirrored(t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The targets of the mirror image: x -> 1 - x, left and right parts swapped."""
    idx = list(MIRROR)
    xy, vis = t["xy"][:, idx].clone(), t["vis"][:, idx]
    xy[..., 0] = torch.where(vis > 0, 1 - xy[..., 0], xy[..., 0])
    b = t["box"]
    return {"xy": xy, "vis": vis, "box": torch.stack([1 - b[:, 2], b[:, 1], 1 - b[:, 0], b[:, 3]], 1)}


@dataclass
class LocatorData:
    feats: np.ndarray  # (N, views, C, H, W) float16, memory-mapped
    targets: list[dict[str, torch.Tensor]]  # one per view
    cub: CUB
    sizes: list[tuple[int, int]]


def locator_data(
    root: str,
    split: str,
    trunk: torch.nn.Module,
    tf: EvalTransform,
    backbone: str,
    layer: str,
    cache_dir: str = "",
    limit: Optional[int] = None,
    progress: bool = True,
) -> LocatorData:
    """The cached outputs of ``trunk`` (``backbone`` up to ``layer``) over CUB's ``split`` (built first
    where missing: the folder a ``--freeze --cache-layer LAYER`` training run uses; the training split
    with its mirror view) and their unit-square targets; ``limit``: the first N images."""
    views = 2 if split == "train" else 1
    ds = build("cub", root, split, min_side=tf.resize)
    cub = CUB(root, split, annotations=True)
    if limit is not None:
        keep = list(range(min(limit, len(ds))))
        ds.samples = [ds.samples[i] for i in keep]
        cub.samples, cub.parts, cub.boxes = [cub.samples[i] for i in keep], cub.parts[keep], cub.boxes[keep]
    what = {"dataset": "cub", "split": split, "backbone": backbone, "layer": layer}
    vt = ViewTransform(tf, views)
    where = Path(cache_dir) if cache_dir else default_cache_dir()
    folder = build_cache(ds, trunk, vt, cache_folder(where, ds, trunk, vt, what), progress=progress)
    sizes = [image_size(p) for p, _ in cub.samples]
    t0 = unit_targets(cub, tf, sizes)
    feats = np.load(folder / "features.npy", mmap_mode="r")
    return LocatorData(feats, [t0, mirrored(t0)][:views], cub, sizes)
