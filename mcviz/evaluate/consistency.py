"""Part consistency and stability of a class's channels (Huang et al., ICCV 2023, "Evaluation and
Improvement of Interpretability for Self-Explainable Part-Prototype Networks"), the protocol the
part-prototype literature reports, applied to each class's ξ channels in place of its prototypes.

- Each CUB test photo is cropped to its bounding box and squashed to ``size`` x ``size``.
- A channel's map is upsampled to that size (bicubic) and its argmax taken; the visible parts
  inside the square of half-side ``36 * size / 224`` around it are the channel's *hits*.
- **Consistency**: the share of channels for which some part is hit in >= 80 % of their class's
  test photos where that part is visible.
- **Stability**: the share of photos whose hits are unchanged when N(0, 0.2) noise, clipped to
  +-0.25, is added to the normalised photo, averaged over the channels.

As in the reference code (hqhQAQ/EvalProtoPNet, ``util/eval_interpretability.py``): the channels of
each photo's own class only, part points scaled from the box into the square and truncated to
whole pixels, the first maximum of the map, a region clipped to the photo. The noise is seeded
per photo, so every model sees the same noisy photos.

A frozen trunk (the shipped models') runs once for both versions of every photo and is cached
(``.cache/trunk``, like the training caches); each model then runs only its own layers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
import torch
import torchvision.transforms.functional as TF
from torch.utils.data import Dataset

from ..data.cub import CUB
from ..trunk.cache import CachedFeatures, build_cache, cache_folder, default_cache_dir
from ..io.files import atomic_write_bytes, load_side_file, side_path
from ..trunk.split_pass import SplitPass

__all__ = [
    "CONSISTENCY",
    "BoxCropViews",
    "ChannelConsistency",
    "ConsistencyReport",
    "box_parts",
    "consistency_report",
    "load_consistency",
    "part_hits",
    "save_consistency",
    "summarise",
]

CONSISTENCY = "consistency.json"  # the side file beside a checkpoint
FORMAT = "mcviz-consistency/1"
PART_THRESH = 0.8
NOISE_STD, NOISE_CLIP = 0.2, 0.25


def half_side(size: int) -> int:
    """The hit square's half-side: 36 px at the protocol's 224, scaled to ``size``."""
    return int(round(36 * size / 224))


class BoxCropViews:
    """A CUB photo -> ``(2, 3, size, size)``: its box squashed to a square and normalised, then the
    same with the protocol's clipped Gaussian noise (seeded by ``seed`` and the photo's index).
    Called as the trunk cache's view transform, ``(image, index)``."""

    views = 2

    def __init__(
        self, boxes: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float], seed: int = 0
    ) -> None:
        self.boxes, self.size, self.mean, self.std, self.seed = boxes, int(size), list(mean), list(std), int(seed)

    def config(self) -> dict:
        return {
            "box_crop": self.size,
            "mean": self.mean,
            "std": self.std,
            "noise": [NOISE_STD, NOISE_CLIP],
            "seed": self.seed,
        }

    def __call__(self, img, index: int) -> torch.Tensor:
        x, y, w, h = (float(v) for v in self.boxes[index])
        crop = img.crop((int(x), int(y), int(x + w), int(y + h))).resize((self.size, self.size), resample=2)
        clean = TF.normalize(TF.to_tensor(crop), self.mean, self.std)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        noise = (torch.randn(clean.shape, generator=g) * NOISE_STD).clamp(-NOISE_CLIP, NOISE_CLIP)
        return torch.stack([clean, clean + noise])


def box_parts(cub: CUB, size: int) -> np.ndarray:
    """``(n, 15, 3)``: each photo's parts as ``(x, y, visible)`` in the pixels of its box squashed to
    ``size`` (truncated to whole pixels, as the reference code does)."""
    boxes, parts = cub.boxes.numpy(), cub.parts.numpy()
    out = np.zeros(parts.shape, np.int64)
    for i, ((bx, by, bw, bh), p) in enumerate(zip(boxes, parts)):
        vis = p[:, 2] > 0
        out[i, :, 0] = np.where(vis, ((p[:, 0] - bx) / bw * size).astype(np.int64), 0)
        out[i, :, 1] = np.where(vis, ((p[:, 1] - by) / bh * size).astype(np.int64), 0)
        out[i, :, 2] = vis
    return out


def part_hits(maps: np.ndarray, parts: np.ndarray, size: int, half: int, smooth: float = 0.0) -> np.ndarray:
    """``(k, 15)`` bool: the visible parts (``parts``: ``(15, 3)`` of one photo) inside the square of
    half-side ``half`` around each of the ``k`` maps' argmax, after bicubic upsampling to ``size``.
    ``smooth`` > 0 blurs each map first (a Gaussian of that many feature cells; not the protocol's,
    a lever for stability: a flat map's argmax jumps between near-equal cells)."""
    hits = np.zeros((len(maps), len(parts)), bool)
    vis = parts[:, 2] > 0
    for j, m in enumerate(maps):
        m = np.asarray(m, np.float32)
        if smooth > 0:
            m = cv2.GaussianBlur(m, (0, 0), smooth)
        up = cv2.resize(m, (size, size), interpolation=cv2.INTER_CUBIC)
        y, x = divmod(int(np.argmax(up)), size)  # the first maximum in row-major order
        y1, y2, x1, x2 = max(0, y - half), min(size, y + half), max(0, x - half), min(size, x + half)
        hits[j] = vis & (parts[:, 0] >= x1) & (parts[:, 0] <= x2) & (parts[:, 1] >= y1) & (parts[:, 1] <= y2)
    return hits


@dataclass
class ChannelConsistency:
    """One channel: the part it hits most reliably over its class's photos, how often, whether that
    makes it consistent (>= 80 %), and the share of photos whose hits survive the noise."""

    channel: int
    class_index: int
    part: Optional[str]
    share: float
    consistent: bool
    stability: float


@dataclass
class ConsistencyReport:
    checkpoint_sha256: str
    size: int
    images: int
    consistency: float  # % of channels
    stability: float  # % averaged over channels
    channels: list[ChannelConsistency] = field(default_factory=list)
    format: str = FORMAT
    smooth: float = 0.0  # the maps' blur in cells before the argmax (0: the protocol as published)

    def of(self, channel: int) -> Optional[ChannelConsistency]:
        return next((c for c in self.channels if c.channel == channel), None)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ConsistencyReport":
        d = json.loads(text)
        if d.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} file")
        chans = [ChannelConsistency(**c) for c in d.pop("channels")]
        return cls(**d, channels=chans)


def summarise(
    hits: dict[int, list[np.ndarray]],
    noisy: dict[int, list[np.ndarray]],
    visible: dict[int, np.ndarray],
    channels: dict[int, list[int]],
    part_names: Sequence[str],
) -> list[ChannelConsistency]:
    """Per channel of each class: ``hits[c]`` / ``noisy[c]`` hold one ``(k, 15)`` array per photo of
    class ``c`` (clean / noisy), ``visible[c]`` its ``(photos, 15)`` visibility."""
    out = []
    for c, chans in channels.items():
        if not hits.get(c):
            continue
        h, hn = np.stack(hits[c]), np.stack(noisy[c])  # (photos, k, 15)
        seen = np.maximum(visible[c].sum(axis=0), 1)  # photos where each part is visible
        for j, ch in enumerate(chans):
            share = h[:, j].sum(axis=0) / seen
            best = int(np.argmax(share))
            stable = float((h[:, j] == hn[:, j]).all(axis=1).mean())
            out.append(
                ChannelConsistency(
                    ch,
                    c,
                    part_names[best],
                    round(float(share[best]), 4),
                    bool(share[best] >= PART_THRESH),
                    round(stable, 4),
                )
            )
    return out


class _Batches(Dataset):
    def __init__(self, cub: CUB, views: BoxCropViews) -> None:
        self.cub, self.views = cub, views

    def __len__(self) -> int:
        return len(self.cub)

    def __getitem__(self, i: int):
        return self.views(self.cub.load(i), i), int(self.cub.targets[i])


def _inputs(run: SplitPass, cub: CUB, views: BoxCropViews, whole: bool = True) -> tuple[Dataset, Optional[str]]:
    """The two views of every photo: through the model's frozen trunk, cached once for every model
    that shares it, or as images for a model trained whole (or for a part of the split: ``whole``
    False, which a cache of the whole split would not be worth)."""
    layer = run.meta.frozen_layer
    if not layer or not whole:
        return _Batches(cub, views), None
    what = {"dataset": "cub-boxes", "split": cub.split, "backbone": run.meta.backbone, "layer": layer}
    trunk = run.model.split_at(layer)[0]
    folder = cache_folder(Path(run.cache_dir) if run.cache_dir else default_cache_dir(), cub, trunk, views, what)
    build_cache(cub, trunk, views, folder, run.batch_size, run.workers)
    return CachedFeatures(folder, cub.classes, all_views=True), layer


@torch.no_grad()
def consistency_report(run: SplitPass, size: int = 288, smooth: float = 0.0) -> ConsistencyReport:
    """Consistency and stability of every class's channels over CUB's test split at ``run.root``
    (``run.limit``: the first N photos only, for a quick look; ``smooth``: see :func:`part_hits`).
    The protocol crops each photo to its box, so ``run``'s own transform and split are not used."""
    model, meta = run.model, run.meta
    cub = CUB(run.root, "test", annotations=True)
    if len(cub.classes) != model.num_classes:
        raise ValueError(f"the model has {model.num_classes} classes but CUB at {run.root} has {len(cub.classes)}")
    tf = meta.input
    views = BoxCropViews(cub.boxes, size, tf.get("mean", (0.485, 0.456, 0.406)), tf.get("std", (0.229, 0.224, 0.225)))
    n = min(len(cub), run.limit or len(cub))
    ds, after = _inputs(run, cub, views, whole=n == len(cub))
    parts, half = box_parts(cub, size), half_side(size)
    groups = model.groups
    channels = {c: list(groups.channels(c)) for c in range(model.num_classes)}
    hits: dict[int, list] = {c: [] for c in channels}
    noisy: dict[int, list] = {c: [] for c in channels}
    i = 0
    for x, y in run.bar(run.batches(torch.utils.data.Subset(ds, range(n)), after), "consistency"):
        b = len(y)
        f = run.features(x.flatten(0, 1), after)
        f = f.view(b, 2, *f.shape[1:]).numpy()
        for k in range(b):
            c = int(y[k])
            chans = channels[c]
            hits[c].append(part_hits(f[k, 0, chans], parts[i + k], size, half, smooth))
            noisy[c].append(part_hits(f[k, 1, chans], parts[i + k], size, half, smooth))
        i += b
    visible = {c: parts[:n][np.asarray(cub.targets[:n]) == c, :, 2] > 0 for c in channels}
    per = summarise(hits, noisy, visible, channels, cub.part_names)
    return ConsistencyReport(
        run.sha256,
        size,
        n,
        round(100 * float(np.mean([p.consistent for p in per])), 2),
        round(100 * float(np.mean([p.stability for p in per])), 2),
        per,
        smooth=smooth,
    )


def consistency_path(checkpoint: str | Path) -> Path:
    return side_path(checkpoint, CONSISTENCY)


def save_consistency(report: ConsistencyReport, checkpoint: str | Path) -> Path:
    out = consistency_path(checkpoint)
    atomic_write_bytes(out, report.to_json().encode())
    return out


def load_consistency(checkpoint: str | Path) -> Optional[ConsistencyReport]:
    """The checkpoint's consistency report (``mcviz consistency``), or None (missing or stale)."""
    return load_side_file(checkpoint, consistency_path(checkpoint), ConsistencyReport.from_json)
