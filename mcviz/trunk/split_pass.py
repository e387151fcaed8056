"""A checkpoint over a data set's split: the one object every measurement takes.

``localize``, ``parts``, ``atlas``, ``rank``, ``faithfulness``, ``consistency`` and ``eval`` all run
one model over one split. What they share travels together here: the model and its metadata, the
checkpoint's transform, the folded copy the batches run through, and where the inputs come from (the
images, or the frozen trunk's cached outputs with the body step they come out of), with the batch
size, the workers and the random subset. The CLI builds it once (:func:`mcviz.cli.common.split_pass`).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Optional, TypeVar

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..core.folding import for_inference
from ..core.models import MCNet, channels_last
from ..data import CUB, build, random_subset
from ..data.transforms import EvalTransform
from ..io.checkpoint import as_meta, load_checkpoint
from ..io.files import file_sha256
from ..io.meta import CheckpointMeta
from .cache import eval_inputs, find_cache
from .part_targets import image_size

__all__ = ["SplitPass"]

T = TypeVar("T")


class _CachedWithAnnotations(Dataset):
    """``(trunk output, label, annotation)`` from a trunk cache, the annotations mapped with the
    stored images' sizes (read from their headers, EXIF rotation included): what the images
    would give, without decoding them."""

    def __init__(self, ds: CUB, cached) -> None:
        self.ds, self.cached = ds, cached

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        x, y = self.cached[i]
        return x, y, self.ds.annotation(i, *image_size(self.ds.samples[i][0]))


@dataclass
class SplitPass:
    """``model`` (with its ``meta``) over the ``split`` of ``dataset`` at ``root``.

    Args:
        model: the network; its metadata ``meta`` gives the transform and the frozen layer.
        meta: the checkpoint's metadata.
        dataset: a name of :data:`mcviz.data.DATASETS` (``"cub"`` for the part measures).
        root: the folder that holds the data set.
        split: ``"test"`` or ``"train"``.
        limit: a seeded random subset of this many images (the same one from images or the cache).
        batch_size: images per batch.
        workers: loader processes when images are decoded (none for a cache).
        use_cache: read a ``--freeze`` model's frozen trunk outputs from the cache when it holds the split.
        cache_dir: the trunk cache (default ``$MCVIZ_CACHE`` or ``.cache/trunk``).
        progress: show tqdm bars on stderr.
        checkpoint: the file the model came from, when there is one (side files record its SHA-256).
    """

    model: MCNet
    meta: CheckpointMeta
    dataset: str
    root: str
    split: str = "test"
    limit: Optional[int] = None
    batch_size: int = 64
    workers: int = 2
    use_cache: bool = True
    cache_dir: Optional[str] = None
    progress: bool = True
    checkpoint: Optional[Path] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.meta = as_meta(self.meta, self.model)
        self.root = str(self.root)

    @classmethod
    def open(cls, checkpoint: str | Path, dataset: str, root: str | Path, **options) -> "SplitPass":
        """Load ``checkpoint`` (safetensors, no code run) and pass it over ``dataset``; ``options``
        are the fields above.

        Raises:
            mcviz.io.checkpoint.CheckpointError: the file is no readable checkpoint.
        """
        model, meta = load_checkpoint(checkpoint)
        return cls(model, meta, dataset, str(root), checkpoint=Path(checkpoint), **options)

    def on(self, split: str) -> "SplitPass":
        """The same model and options over another split."""
        return dataclasses.replace(self, split=split)

    @property
    def transform(self) -> EvalTransform:
        """The checkpoint's evaluation transform."""
        return EvalTransform.from_config(self.meta.input)

    @cached_property
    def net(self) -> torch.nn.Module:
        """The folded, channels-last copy the batches run through. The cache lookups hash the
        original trunk's weights (:attr:`model`), never this copy."""
        return for_inference(self.model)

    @cached_property
    def sha256(self) -> str:
        """The checkpoint file's SHA-256 ("" without a file)."""
        return file_sha256(self.checkpoint) if self.checkpoint else ""

    def features(self, x: torch.Tensor, after: Optional[str]) -> torch.Tensor:
        """The MC features (float32) of a batch of inputs that come out of ``after`` (None: images)."""
        return self.net.features(channels_last(x), after).float()

    def bar(self, items: Iterable[T], desc: str) -> Iterable[T]:
        """``items`` with a progress bar when :attr:`progress` is set."""
        return tqdm(items, desc=desc, disable=not self.progress, file=sys.stderr)

    def images(self) -> Dataset:
        """The split's images under the checkpoint's transform (no subset)."""
        tf = self.transform
        base = build(self.dataset, self.root, self.split, tf, min_side=tf.resize)
        if len(base.classes) != self.model.num_classes:
            raise ValueError(
                f"the model has {self.model.num_classes} classes but {self.dataset} at {self.root} has "
                f"{len(base.classes)}"
            )
        return base

    def inputs(self, flip: bool = False, base: Optional[Dataset] = None) -> tuple[Dataset, Optional[str]]:
        """``(data set of (input, label), the body step its inputs come out of or None)``: the images
        (``base``, default :meth:`images`), or the frozen trunk's cached outputs when the cache holds
        them. With ``flip`` each input is ``(2, ...)``: the view and its mirror."""
        base = self.images() if base is None else base
        return eval_inputs(self.model, self.meta, base, self.split, self.limit, self.use_cache, self.cache_dir, flip)

    def loader(self, flip: bool = False) -> tuple[DataLoader, Optional[str]]:
        """:meth:`inputs` in batches."""
        ds, after = self.inputs(flip)
        return self.batches(ds, after), after

    def annotated(self) -> tuple[DataLoader, Optional[str], CUB]:
        """``(loader of (input, label, annotation), the body step the inputs come out of or None, the
        CUB data set with the checkpoint's transform and the part names)`` over a CUB-layout split."""
        tf = self.transform
        cub = ds = CUB(self.root, self.split, tf, annotations=True)
        if len(ds.classes) != self.model.num_classes:
            raise ValueError(f"the model has {self.model.num_classes} classes but {self.root} has {len(ds.classes)}")
        cached = find_cache(self.model, self.meta, ds, tf, self.split, self.cache_dir) if self.use_cache else None
        after = None
        if cached is not None:
            after, feats = cached
            ds = _CachedWithAnnotations(ds, feats)
            ds.classes = feats.classes  # type: ignore[attr-defined]
            ds.targets = feats.targets  # type: ignore[attr-defined]
        return self.batches(random_subset(ds, self.limit, 1), after), after, cub

    def batches(self, ds: Dataset, after: Optional[str]) -> DataLoader:
        """``ds`` in batches of :attr:`batch_size` (no worker processes for cached inputs)."""
        return DataLoader(ds, batch_size=self.batch_size, num_workers=0 if after else self.workers)
