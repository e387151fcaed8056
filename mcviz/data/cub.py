"""CUB-200-2011 in its own layout, with bounding boxes and the 15 part locations."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch

from .base import DataError, ImageListDataset, readable_name, require_files

NUM_PARTS = 15
# CUB-200-2011's parts/parts.txt, in its order: stated once here (the reader checks the file against it)
PART_NAMES = (
    "back",
    "beak",
    "belly",
    "breast",
    "crown",
    "forehead",
    "left eye",
    "left leg",
    "left wing",
    "nape",
    "right eye",
    "right leg",
    "right wing",
    "tail",
    "throat",
)
# the part each part becomes in a mirror image (left and right swap)
MIRROR = tuple(
    PART_NAMES.index(p.replace("left", "#").replace("right", "left").replace("#", "right")) for p in PART_NAMES
)


def _table(path: Path) -> list[list[str]]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DataError(f"CUB: cannot read {path} ({exc.strerror})") from None
    rows = [ln.split() for ln in lines if ln.strip()]
    return rows


class CUB(ImageListDataset):
    """CUB-200-2011 from its own text files (``images.txt``, ``classes.txt``,
    ``image_class_labels.txt``, ``train_test_split.txt``).

    With ``annotations=True`` each item is ``(image, label, ann)`` where ``ann`` holds
    ``box`` ``(x, y, w, h)`` and ``parts`` ``(15, 3)`` as ``(x, y, visible)``, in the
    pixels of the *transformed* image when the transform has ``map_points`` (see
    :class:`~mcviz.data.transforms.EvalTransform`), else of the original image.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Optional[Callable] = None,
        annotations: bool = False,
        skip_bad: bool = False,
    ) -> None:
        root = Path(root)
        if split not in ("train", "test"):
            raise ValueError(f"CUB split must be 'train' or 'test', got {split!r}")
        files = ["images.txt", "classes.txt", "image_class_labels.txt", "train_test_split.txt"]
        if annotations:
            files += ["bounding_boxes.txt", "parts/parts.txt", "parts/part_locs.txt"]
        require_files(root, files, "CUB")
        paths = {int(r[0]): r[1] for r in _table(root / "images.txt")}
        labels = {int(r[0]): int(r[1]) - 1 for r in _table(root / "image_class_labels.txt")}
        is_train = {int(r[0]): r[1] == "1" for r in _table(root / "train_test_split.txt")}
        raw_classes = [r[1] for r in sorted(_table(root / "classes.txt"), key=lambda r: int(r[0]))]
        want = split == "train"
        ids = sorted(i for i in paths if is_train.get(i) == want)
        missing = [i for i in ids if i not in labels]
        if missing:
            raise DataError(f"CUB: image id {missing[0]} has no entry in image_class_labels.txt")
        samples = [(root / "images" / paths[i], labels[i]) for i in ids]
        for p, _ in samples:
            if not p.is_file():
                raise DataError(f"CUB: {p} is listed in images.txt but missing")
        super().__init__(samples, [readable_name(c) for c in raw_classes], transform, skip_bad)
        self.root = root
        self.split = split
        self.ids = ids
        self.raw_classes = raw_classes
        self.annotations = annotations
        if annotations:
            boxes = {int(r[0]): [float(v) for v in r[1:5]] for r in _table(root / "bounding_boxes.txt")}
            names = [" ".join(r[1:]) for r in sorted(_table(root / "parts/parts.txt"), key=lambda r: int(r[0]))]
            if tuple(names) != PART_NAMES:
                raise DataError(f"CUB: {root / 'parts/parts.txt'} names other parts than CUB-200-2011's 15: {names}")
            self.part_names = list(PART_NAMES)
            parts = torch.zeros(len(ids), NUM_PARTS, 3)
            pos = {i: k for k, i in enumerate(ids)}
            for r in _table(root / "parts/part_locs.txt"):
                k = pos.get(int(r[0]))
                if k is not None:
                    parts[k, int(r[1]) - 1] = torch.tensor([float(r[2]), float(r[3]), float(r[4])])
            self.boxes = torch.tensor([boxes[i] for i in ids])
            self.parts = parts

    def annotation(self, index: int, width: int, height: int) -> dict[str, torch.Tensor]:
        """Box and parts of sample ``index`` mapped through the transform's geometry."""
        box, parts = self.boxes[index].clone(), self.parts[index].clone()
        tf = self.transform
        if tf is not None and hasattr(tf, "map_points"):
            box = tf.map_box(box, width, height)
            vis = parts[:, 2] > 0
            parts[:, :2] = tf.map_points(parts[:, :2], width, height)
            parts[~vis, :2] = 0.0
        return {"box": box, "parts": parts, "index": torch.tensor(index)}

    def __getitem__(self, index: int):
        i, img = self._load_any(index)
        x = self.transform(img) if self.transform is not None else img
        y = self.samples[i][1]
        if not self.annotations:
            return x, y
        return x, y, self.annotation(i, *img.size)
