"""Stanford Cars (devkit), FGVC-Aircraft and Flowers-102 through torchvision's parsers.

torchvision reads each format (``.mat`` files, ``images_variant_*.txt``); mcviz then
owns the image loading, so an unreadable image is reported by name like everywhere else.
Nothing is ever downloaded: the root is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torchvision.datasets as tvd

from .base import DataError, ImageListDataset

# torchvision's own folder name for each data set, under the root it is given.
_FOLDER = {"cars": "stanford_cars", "aircraft": "fgvc-aircraft-2013b", "flowers": "flowers-102"}
_SPLITS = {
    "cars": {"train": "train", "test": "test"},
    "aircraft": {"train": "trainval", "test": "test", "val": "val", "trainval": "trainval"},
    "flowers": {"train": "train", "val": "val", "test": "test"},
}


def _parent_root(name: str, root: Path) -> Path:
    """Accept both the folder above the data set (torchvision's convention) and the data set's own."""
    if (root / _FOLDER[name]).is_dir():
        return root
    if root.name == _FOLDER[name]:
        return root.parent
    raise DataError(
        f"{name}: expected the folder {root / _FOLDER[name]} (torchvision's layout); "
        f"give --root as the folder that contains '{_FOLDER[name]}/'"
    )


def _wrap(name: str, samples, classes, transform, skip_bad) -> ImageListDataset:
    ds = ImageListDataset(samples, classes, transform, skip_bad)
    for p, _ in ds.samples:
        if not p.is_file():
            raise DataError(f"{name}: image {p} is listed in the annotations but missing")
    return ds


def build_torchvision(
    name: str, root: str | Path, split: str, transform: Optional[Callable] = None, skip_bad: bool = False
) -> ImageListDataset:
    if split not in _SPLITS[name]:
        raise ValueError(f"{name}: split must be one of {', '.join(_SPLITS[name])}, got {split!r}")
    parent = _parent_root(name, Path(root))
    tv_split = _SPLITS[name][split]
    try:
        if name == "cars":
            ds = tvd.StanfordCars(parent, split=tv_split, download=False)
            samples = ds._samples
            classes = [str(c) for c in ds.classes]
        elif name == "aircraft":
            ds = tvd.FGVCAircraft(parent, split=tv_split, annotation_level="variant", download=False)
            samples = list(zip(ds._image_files, ds._labels))
            classes = list(ds.classes)
        else:
            ds = tvd.Flowers102(parent, split=tv_split, download=False)
            samples = list(zip(ds._image_files, ds._labels))
            classes = [c.title() for c in ds.classes]
    except (RuntimeError, FileNotFoundError, OSError, KeyError, ValueError) as exc:
        raise DataError(f"{name}: cannot read the data set under {parent / _FOLDER[name]}: {exc}") from None
    return _wrap(name, samples, classes, transform, skip_bad)
