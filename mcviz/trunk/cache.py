"""Outputs of a frozen, pretrained trunk, computed once per data set and view, kept on disk.

On a CPU, fine-tuning a whole pretrained network costs ~12 minutes per CUB epoch; most of
that is the early layers, which fine-grained fine-tuning barely changes. With
``--freeze LAYER`` the body up to LAYER is frozen (weights *and* BatchNorm statistics), its
outputs for every image and view are written once to ``CACHE/<key>/`` and every model that
shares the trunk (all variants, all seeds) trains the rest on them.

Views of a training image: 0 the evaluation crop, 1 its mirror image, 2... random resized
crops (seeded per image and view, mirrored on odd views). The test split has view 0 only,
which is exactly what evaluation on images computes. The key hashes the trunk's weights, the
layer, the input transform, the views and the image list, so a stale cache is never read.
A killed build resumes at the last finished chunk.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torchvision.transforms.functional as TF
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..core.folding import for_inference
from ..core.models import channels_last
from ..io.files import atomic_write_bytes
from ..io.meta import CheckpointMeta
from ..data.base import epoch_generator, random_subset
from ..data.transforms import EvalTransform

__all__ = [
    "CachedFeatures",
    "ViewTransform",
    "build_cache",
    "cache_folder",
    "cache_key",
    "default_cache_dir",
    "build_eval_cache",
    "eval_inputs",
    "find_cache",
    "is_complete",
]

CACHE_FORMAT = 1
_CHUNK = 256  # images per progress record


def default_cache_dir() -> Path:
    """``$MCVIZ_CACHE`` or ``.cache/trunk`` under the working folder (ignored by git)."""
    return Path(os.environ.get("MCVIZ_CACHE", ".cache/trunk"))


class ViewTransform:
    """An image -> ``(views, 3, crop, crop)``: the evaluation crop, its mirror, random crops. With
    ``noise`` > 0, views 2 and 3 are the evaluation crop and its mirror with Gaussian noise of that
    std, clipped at 1.25 x it, added to the normalised photo (the stability protocol's noise,
    :mod:`mcviz.evaluate.consistency`; the parts stay where they are), and random crops follow."""

    def __init__(
        self, evaltf: EvalTransform, views: int, seed: int = 0, min_scale: float = 0.35, noise: float = 0.0
    ) -> None:
        if views < 1:
            raise ValueError("views must be >= 1")
        self.evaltf, self.views, self.seed, self.min_scale = evaltf, int(views), int(seed), float(min_scale)
        self.noise = float(noise)

    def config(self) -> dict:
        out = {"eval": self.evaltf.config(), "views": self.views, "seed": self.seed, "min_scale": self.min_scale}
        if self.noise:  # absent when off, so the caches made before it keep their keys
            out["noise"] = self.noise
        return out

    def source_view(self, view: int) -> Optional[int]:
        """The view whose geometry (part positions) ``view`` shares: itself for the crop and its
        mirror, 0 or 1 for a noisy copy, None for a random crop."""
        if view < 2:
            return view
        return view - 2 if self.noise and view < 4 else None

    def _noisy(self, x: torch.Tensor, index: int, view: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(random.Random(f"{self.seed}-{index}-{view}-noise").getrandbits(63))
        return x + (torch.randn(x.shape, generator=g) * self.noise).clamp(-1.25 * self.noise, 1.25 * self.noise)

    def _random_crop(self, img, rng: random.Random) -> torch.Tensor:
        w, h = img.size
        for _ in range(10):  # torchvision's RandomResizedCrop rule, with our own generator
            area = w * h * rng.uniform(self.min_scale, 1.0)
            ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            cw, ch = int(round((area * ratio) ** 0.5)), int(round((area / ratio) ** 0.5))
            if 0 < cw <= w and 0 < ch <= h:
                top, left = rng.randint(0, h - ch), rng.randint(0, w - cw)
                break
        else:
            cw, ch, top, left = w, h, 0, 0
        crop = self.evaltf.crop
        x = TF.resized_crop(img, top, left, ch, cw, [crop, crop], antialias=True)
        return TF.normalize(TF.to_tensor(x), self.evaltf.mean, self.evaltf.std)

    def __call__(self, img, index: int) -> torch.Tensor:
        centre = self.evaltf(img)
        out = [centre]
        if self.views > 1:
            out.append(centre.flip(-1))
        for v in range(2, self.views):
            if self.source_view(v) is not None:
                out.append(self._noisy(out[v - 2], index, v))
                continue
            x = self._random_crop(img, random.Random(f"{self.seed}-{index}-{v}"))
            out.append(x.flip(-1) if v % 2 else x)
        return torch.stack(out)


class _Views(Dataset):
    def __init__(self, ds, tf: ViewTransform) -> None:
        self.ds, self.tf = ds, tf

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        return self.tf(self.ds.load(i), i)


def _trunk_hash(trunk: nn.Module) -> str:
    """The trunk's weights at float16 precision: a checkpoint stored in float16 (as the shipped
    ones are) still finds the cache its training run made from the float32 weights."""
    h = hashlib.sha1()
    for k, v in trunk.state_dict().items():
        v = v.detach().cpu()
        if v.is_floating_point():
            v = v.to(torch.float16)
        h.update(k.encode())
        h.update(v.contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_key(ds, trunk: nn.Module, tf: ViewTransform, what: dict) -> str:
    """A hash of everything the cached outputs depend on: trunk weights, transform and
    views, the image list and labels, and ``what`` (data set, split, layer...)."""
    h = hashlib.sha1(json.dumps({"format": CACHE_FORMAT, "views": tf.config(), **what}, sort_keys=True).encode())
    h.update(_trunk_hash(trunk).encode())
    # absolute paths: "../data/x.jpg" and "/home/me/data/x.jpg" are the same images
    for p, y in ds.samples:
        h.update(f"{os.path.abspath(p)}|{y}\n".encode())
    return h.hexdigest()[:16]


def cache_folder(root: Path, ds, trunk: nn.Module, tf: ViewTransform, what: dict) -> Path:
    """Where the cache of ``trunk`` over ``ds`` lives under ``root``; ``what`` names the data set,
    split, backbone and layer (readable in the folder name, and hashed with the rest)."""
    name = "-".join(str(what[k]) for k in ("dataset", "split", "backbone", "layer"))
    return Path(root) / f"{name}-{cache_key(ds, trunk, tf, what)}"


def is_complete(folder: Path) -> bool:
    state = Path(folder) / "progress.json"
    return state.exists() and bool(json.loads(state.read_text()).get("complete"))


def build_cache(
    ds, trunk: nn.Module, tf: ViewTransform, folder: Path, batch_size: int = 32, workers: int = 2, progress: bool = True
) -> Path:
    """Write ``trunk``'s outputs for every image and view of ``ds`` (an
    :class:`~mcviz.data.ImageListDataset`) to ``folder/features.npy`` ``(N, views, C, H, W)``
    float16, resuming a killed build; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    state_path = folder / "progress.json"
    if is_complete(folder):
        return folder
    # BatchNorm folded (the key was made from the trunk's own weights): ~15 % faster, and the
    # difference (~1e-5) is below what the float16 cache keeps
    trunk = for_inference(trunk)
    n, v = len(ds), tf.views
    with torch.no_grad():
        shape = tuple(trunk(tf(ds.load(0), 0)[:1]).shape[1:])
    feats_path = folder / "features.npy"
    done = json.loads(state_path.read_text())["done"] if state_path.exists() and feats_path.exists() else 0
    mode = "r+" if done else "w+"
    feats = np.lib.format.open_memmap(feats_path, mode=mode, dtype=np.float16, shape=(n, v, *shape))
    np.save(folder / "targets.npy", np.asarray(ds.targets, dtype=np.int64))
    todo = torch.utils.data.Subset(_Views(ds, tf), range(done, n))
    loader = DataLoader(todo, batch_size=batch_size, num_workers=workers)
    bar = tqdm(total=n, initial=done, desc=f"caching {folder.name}", unit="img", disable=not progress, file=sys.stderr)
    i = done
    with torch.no_grad():
        for x in loader:
            b = x.shape[0]
            out = trunk(channels_last(x.flatten(0, 1))).reshape(b, v, *shape)
            feats[i : i + b] = out.to(torch.float16).numpy()
            i += b
            bar.update(b)
            if i % _CHUNK < b or i == n:
                feats.flush()
                atomic_write_bytes(state_path, json.dumps({"done": i, "complete": i == n}).encode())
    bar.close()
    del feats
    return folder


class CachedFeatures(Dataset):
    """The cached outputs as a data set of ``(features, label)``. With several views, each
    epoch (:meth:`set_epoch`) draws one view per image, seeded by ``seed`` and the epoch."""

    def __init__(self, folder: Path, classes: Sequence[str], seed: int = 0, all_views: bool = False) -> None:
        self.folder = Path(folder)
        self.all_views = all_views  # items are (views, C, H, W): every view of the image (test-time mirroring)
        self.feats = np.load(self.folder / "features.npy", mmap_mode="r")
        self.labels = np.load(self.folder / "targets.npy")
        self.classes = list(classes)
        self.targets = self.labels.tolist()
        self.views = self.feats.shape[1]
        self.seed = seed
        self.with_index = False  # items (features, label, index, view): a term that needs the photo's targets
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        g = epoch_generator(self.seed, epoch)
        self.view_of = torch.randint(self.views, (len(self),), generator=g).tolist()

    def __len__(self) -> int:
        return int(self.feats.shape[0])

    def __getitem__(self, i: int):
        v = slice(None) if self.all_views else self.view_of[i]
        x = torch.from_numpy(np.array(self.feats[i, v], dtype=np.float32))
        if self.with_index:
            return x, int(self.labels[i]), i, -1 if self.all_views else v
        return x, int(self.labels[i])


class MirrorPair:
    """An image -> ``(2, 3, crop, crop)``: the evaluation crop and its mirror (the first two
    views of :class:`ViewTransform`), for predictions averaged over both."""

    def __init__(self, evaltf: EvalTransform) -> None:
        self.evaltf = evaltf
        self.resize, self.crop = evaltf.resize, evaltf.crop

    def __call__(self, img) -> torch.Tensor:
        x = self.evaltf(img)
        return torch.stack([x, x.flip(-1)])


def _eval_folder(
    model: nn.Module,
    meta: CheckpointMeta,
    ds,
    evaltf: EvalTransform,
    split: str,
    cache_dir: Optional[str],
    views: int = 1,
) -> Optional[tuple[str, Path]]:
    layer = meta.frozen_layer
    if not layer:
        return None
    what = {"dataset": meta.dataset, "split": split, "backbone": meta.backbone, "layer": layer}
    folder = cache_folder(
        Path(cache_dir) if cache_dir else default_cache_dir(),
        ds,
        model.split_at(layer)[0],
        ViewTransform(evaltf, views),
        what,
    )
    return layer, folder


def build_eval_cache(
    model: nn.Module,
    meta: CheckpointMeta,
    ds,
    split: str,
    cache_dir: Optional[str] = None,
    batch_size: int = 32,
    workers: int = 2,
    progress: bool = True,
    flip: bool = False,
) -> Path:
    """Write the evaluation view of ``ds`` (built with the checkpoint's transform; with ``flip``
    also its mirror) through the frozen trunk of a ``--freeze`` checkpoint, where
    :func:`find_cache` looks for it."""
    views = 2 if flip else 1
    found = _eval_folder(model, meta, ds, ds.transform, split, cache_dir, views)
    if found is None:
        raise ValueError("this checkpoint was not trained with --freeze: it has no frozen trunk to cache")
    layer, folder = found
    return build_cache(
        ds, model.split_at(layer)[0], ViewTransform(ds.transform, views), folder, batch_size, workers, progress
    )


def find_cache(
    model: nn.Module,
    meta: CheckpointMeta,
    ds,
    evaltf: EvalTransform,
    split: str,
    cache_dir: Optional[str] = None,
    flip: bool = False,
) -> Optional[tuple[str, CachedFeatures]]:
    """``(layer, CachedFeatures)`` of the evaluation view of ``ds`` (with ``flip``: the view and
    its mirror, both in every item) when the checkpoint (``model``, ``meta``) was trained with
    ``--freeze`` and a complete cache of its frozen trunk over exactly these images exists (made
    by its training run or ``mcviz cache``); else None."""
    found = _eval_folder(model, meta, ds, evaltf, split, cache_dir, 2 if flip else 1)
    if found is None:
        return None
    layer, folder = found
    return (layer, CachedFeatures(folder, ds.classes, all_views=flip)) if is_complete(folder) else None


def eval_inputs(
    model: nn.Module,
    meta: CheckpointMeta,
    base: Dataset,
    split: str,
    limit: Optional[int] = None,
    use_cache: bool = True,
    cache_dir: Optional[str] = None,
    flip: bool = False,
) -> tuple[Dataset, Optional[str]]:
    """``(data set of (input, label), the body step its inputs come out of or None)`` for running
    ``model`` over the images ``base`` (a split under the checkpoint's transform): those images, or
    the frozen trunk's cached outputs when the model was trained with ``--freeze`` and the cache
    holds this split. With ``flip`` each input is ``(2, ...)``: the view and its mirror. ``limit``
    draws the same random subset either way (:class:`mcviz.trunk.split_pass.SplitPass` wraps this)."""
    cached = find_cache(model, meta, base, base.transform, split, cache_dir, flip) if use_cache else None
    if cached:
        after, ds = cached
    else:
        after, ds = None, base
        if flip:
            ds = copy.copy(base)
            ds.transform = MirrorPair(base.transform)
    return random_subset(ds, limit, 1), after
