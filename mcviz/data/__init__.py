"""Data sets by name: ``build(name, root, split, transform=...)``.

=========  ===================================================  ==================
name       format                                               splits
=========  ===================================================  ==================
cub        CUB-200-2011's own layout (+ boxes and 15 parts)     train, test
cars       Stanford Cars devkit (torchvision.StanfordCars)      train, test
aircraft   FGVC-Aircraft (torchvision.FGVCAircraft, variants)   train(=trainval), val, test
flowers    Flowers-102 (torchvision.Flowers102)                 train, val, test
folder     ImageFolder: root/train/<class>/*, root/test/...     train, test
=========  ===================================================  ==================
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from .base import DataError, ImageListDataset, epoch_generator, random_subset, readable_name
from .cub import CUB
from .folder import build_folder
from .images import IMAGE_SUFFIXES, ImageError, open_image, to_rgb
from .torchvision_sets import build_torchvision
from .transforms import EvalTransform, train_transform

DATASETS: tuple[str, ...] = ("cub", "cars", "aircraft", "flowers", "folder")

__all__ = [
    "CUB",
    "DATASETS",
    "DataError",
    "EvalTransform",
    "IMAGE_SUFFIXES",
    "ImageError",
    "ImageListDataset",
    "build",
    "epoch_generator",
    "open_image",
    "random_subset",
    "readable_name",
    "to_rgb",
    "train_transform",
]


def build(
    name: str,
    root: str | Path,
    split: str = "train",
    transform: Optional[Callable] = None,
    *,
    annotations: bool = False,
    skip_bad: bool = False,
    min_side: Optional[int] = None,
) -> ImageListDataset:
    """The ``split`` of data set ``name`` stored under ``root``; never downloads.

    Every data set has ``classes`` (readable names) and ``targets``. ``annotations``
    (boxes and parts) is available for ``cub`` only. ``skip_bad`` logs and skips
    unreadable images instead of raising :class:`DataError`. ``min_side``: decode large
    photos only as large as a transform that resizes to ``min_side`` needs.

    Args:
        name: ``cub``, ``cars``, ``flowers``, ``aircraft`` or ``folder`` (:data:`DATASETS`).
        root: the folder that holds it, in its own layout.
        split: ``train`` or ``test``.
        transform: applied to each PIL image.
        annotations: also read CUB's boxes and parts.
        skip_bad: skip unreadable images (logged) instead of raising.
        min_side: the shorter side a transform needs (large photos are decoded smaller).

    Returns:
        A data set of ``(image, label)`` with ``classes`` and ``targets``.

    Raises:
        ValueError: an unknown data set, or annotations asked of one without them.
        DataError: the layout is missing or broken (with what was expected where).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    if annotations and name != "cub":
        raise ValueError(f"part and box annotations exist for 'cub' only, not {name!r}")
    if name == "cub":
        ds: ImageListDataset = CUB(root, split, transform, annotations=annotations, skip_bad=skip_bad)
    elif name == "folder":
        ds = build_folder(root, split, transform, skip_bad)
    else:
        ds = build_torchvision(name, root, split, transform, skip_bad)
    ds.min_side = min_side
    return ds
