"""Any data set stored as ``root/{train,test}/<class>/<image>`` (torchvision's ImageFolder)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from torchvision.datasets import ImageFolder

from .base import DataError, ImageListDataset, readable_name


def build_folder(
    root: str | Path, split: str, transform: Optional[Callable] = None, skip_bad: bool = False
) -> ImageListDataset:
    folder = Path(root) / split
    if not folder.is_dir():
        raise DataError(f"folder: {folder} does not exist (expected {Path(root)}/train and {Path(root)}/test)")
    try:
        # Let ImageFolder find classes and files; decoding stays with mcviz.
        tv = ImageFolder(str(folder), loader=lambda p: p)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"folder: {exc}") from None
    ds = ImageListDataset(tv.samples, [readable_name(c) for c in tv.classes], transform, skip_bad)
    ds.raw_classes = list(tv.classes)
    return ds
