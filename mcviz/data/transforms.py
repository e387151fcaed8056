"""Image transforms whose geometry is known, so that points (boxes, parts) follow pixels."""

from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image
from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_for(crop: int) -> int:
    """The resize that precedes a ``crop`` (8/7, e.g. 256 -> 224, 128 -> 112)."""
    return int(round(crop * 8 / 7))


def cell_centre(index, grid_w: int, grid_h: int, crop_w: float, crop_h: float):
    """``(x, y)`` in crop pixels of the centre of cell ``index`` (row-major, an int or a tensor of
    them) of a ``grid_h`` x ``grid_w`` feature map laid over a ``crop_w`` x ``crop_h`` crop: where
    a channel's peak is drawn (the app, the CLI) and scored (localize, parts, atlas)."""
    return (index % grid_w + 0.5) * (crop_w / grid_w), (index // grid_w + 0.5) * (crop_h / grid_h)


class EvalTransform:
    """Squash to ``resize`` x ``resize``, centre-crop ``crop``, to a normalised tensor.

    :meth:`map_points` applies the same geometry to pixel coordinates of the original
    image, so CUB's boxes and part locations stay on the same pixels.
    """

    def __init__(
        self,
        crop: int,
        resize: int | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        self.crop = int(crop)
        self.resize = int(resize or resize_for(crop))
        if self.resize < self.crop:
            raise ValueError(f"resize ({self.resize}) must be >= crop ({self.crop})")
        self.mean, self.std = tuple(mean), tuple(std)
        self._tf = T.Compose(
            [
                T.Resize((self.resize, self.resize), interpolation=T.InterpolationMode.BILINEAR, antialias=True),
                T.CenterCrop(self.crop),
                T.ToTensor(),
                T.Normalize(self.mean, self.std),
            ]
        )

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return self._tf(img)

    @property
    def offset(self) -> float:
        # torchvision's CenterCrop starts at round((resize - crop) / 2).
        return float(int(round((self.resize - self.crop) / 2.0)))

    def map_points(self, xy: torch.Tensor, width: int, height: int) -> torch.Tensor:
        """Map ``(..., 2)`` pixel coordinates of a ``width`` x ``height`` image into the crop."""
        xy = torch.as_tensor(xy, dtype=torch.float32)
        scale = torch.tensor([self.resize / width, self.resize / height])
        return xy * scale - self.offset

    def map_box(self, box: torch.Tensor, width: int, height: int) -> torch.Tensor:
        """Map an ``(x, y, w, h)`` box; the result is clipped to the crop."""
        box = torch.as_tensor(box, dtype=torch.float32)
        p = self.map_points(torch.stack([box[:2], box[:2] + box[2:]]), width, height).clamp(0, self.crop)
        return torch.cat([p[0], p[1] - p[0]])

    def config(self) -> dict:
        return {"crop": self.crop, "resize": self.resize, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_config(cls, cfg: dict) -> "EvalTransform":
        """The transform a checkpoint's ``input`` metadata (:meth:`config`) describes."""
        return cls(cfg["crop"], cfg.get("resize"), cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD))


def train_transform(
    crop: int, resize: int | None = None, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> T.Compose:
    """Training augmentation: squash, random crop, horizontal flip."""
    resize = int(resize or resize_for(crop))
    return T.Compose(
        [
            T.Resize((resize, resize), interpolation=T.InterpolationMode.BILINEAR, antialias=True),
            T.RandomCrop(crop),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )
