"""What every mcviz data set shares: class names, labels, safe image loading."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from torch.utils.data import Dataset, Subset

from .images import ImageError, open_image

log = logging.getLogger("mcviz.data")


class DataError(RuntimeError):
    """A data set on disk is incomplete or unreadable; the message names the file."""


def readable_name(raw: str) -> str:
    """``'001.Black_footed_Albatross'`` -> ``'Black-footed Albatross'``.

    Drops a numeric ``NNN.`` prefix, turns underscores into spaces and joins a word to a
    following lower-case word with a hyphen (CUB writes "Black-footed" as ``Black_footed``).
    """
    name = re.sub(r"^\d+\.", "", raw.strip())
    words = [w for w in name.replace("_", " ").split(" ") if w]
    out: list[str] = []
    for w in words:
        if out and w[:1].islower() and out[-1][:1].isupper() and len(w) > 2:
            out[-1] = f"{out[-1]}-{w}"
        else:
            out.append(w)
    return " ".join(out)


class ImageListDataset(Dataset):
    """A list of ``(path, label)`` pairs with class names; images are decoded with
    :func:`mcviz.data.images.open_image`, so every failure names its file.

    With ``skip_bad=True`` an unreadable image is logged and replaced by the next
    readable one instead of raising. With ``min_side`` set, a large photo is decoded only as
    large as the transform needs (both sides >= ``min_side``; see ``open_image``), except
    where annotations in the stored pixels are read with it.
    """

    min_side: Optional[int] = None

    def __init__(
        self,
        samples: Sequence[tuple[Path, int]],
        classes: Sequence[str],
        transform: Optional[Callable] = None,
        skip_bad: bool = False,
    ) -> None:
        self.samples = [(Path(p), int(y)) for p, y in samples]
        self.classes = list(classes)
        self.transform = transform
        self.skip_bad = skip_bad

    @property
    def targets(self) -> list[int]:
        return [y for _, y in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int):
        """The RGB PIL image of sample ``index`` (no transform)."""
        path, _ = self.samples[index]
        try:
            shrink = None if getattr(self, "annotations", False) else self.min_side
            return open_image(path, min_side=shrink)
        except ImageError as exc:
            raise DataError(f"{type(self).__name__}: {exc}") from None

    def _load_any(self, index: int) -> tuple[int, Any]:
        for k in range(len(self)):
            i = (index + k) % len(self)
            try:
                return i, self.load(i)
            except DataError as exc:
                if not self.skip_bad:
                    raise
                log.warning("skipping unreadable image: %s", exc)
        raise DataError(f"{type(self).__name__}: no readable image at all")

    def __getitem__(self, index: int):
        i, img = self._load_any(index)
        x = self.transform(img) if self.transform is not None else img
        return x, self.samples[i][1]


def require_files(root: Path, names: Sequence[str], what: str) -> None:
    """Raise :class:`DataError` naming the first of ``names`` missing under ``root``."""
    if not root.is_dir():
        raise DataError(f"{what}: the folder {root} does not exist")
    for n in names:
        if not (root / n).exists():
            raise DataError(f"{what}: {root / n} is missing (is {root} the data set's root folder?)")


def random_subset(ds, limit: Optional[int], seed: int):
    """``limit`` images of ``ds`` drawn with ``seed`` (in their original order), or ``ds`` itself;
    the subset keeps ``classes`` and ``targets``."""
    if limit is None or limit >= len(ds):
        return ds
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:limit].sort().values.tolist()
    sub = Subset(ds, idx)
    sub.classes = ds.classes  # type: ignore[attr-defined]
    sub.targets = [ds.targets[i] for i in idx]  # type: ignore[attr-defined]
    return sub


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The random generator of one epoch of a run with ``seed``: the order in which its images are
    shuffled, and which cached view of each image it sees."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)
