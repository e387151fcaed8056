"""A CUB part locator: where each of the 15 parts of *this* bird is, whether it is visible, and
the bird's box, from the frozen pretrained trunk every shipped CUB model shares.

The head reads the trunk's block-5 outputs (the same tensors the models' training cache holds
and the app already computes for every photo), so a photo costs only this small head. Each
part is a heat map over the feature grid read out by its expectation (a soft-argmax, "integral
regression", Sun et al. 2018): sub-cell positions from an 18x18 grid. A part's visibility
is read from the features its own heat map pools; the box from the whole map.

Positions and boxes are in the unit square of the model's crop; :class:`PartPrediction` maps
them to any image's pixels through the crop's geometry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ..data.cub import MIRROR, PART_NAMES
from ..data.transforms import EvalTransform

__all__ = ["CUB_PARTS", "MIRROR", "PartLocator", "PartPrediction", "as_annotations", "crop_to_image"]

# CUB's 15 parts in parts.txt's order, and which each becomes in a mirror image (stated in mcviz.data.cub)
CUB_PARTS = PART_NAMES


def _block(cin: int, cout: int, k: int = 3, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PartLocator(nn.Module):
    """Trunk features ``(B, C, H, W)`` -> part heat-map logits ``(B, P, H, W)``, visibility
    logits ``(B, P)`` and a box ``(B, 4)`` as ``(x0, y0, x1, y1)`` in the unit square."""

    def __init__(self, in_channels: int, parts: int = len(CUB_PARTS), width: int = 64, window: int = 0) -> None:
        super().__init__()
        self.in_channels, self.parts, self.width = in_channels, parts, width
        self.window = window  # the read-out of a part's map (expected_xy); chosen on held-out photos
        self.stem = nn.Sequential(_block(in_channels, width, 1), _block(width, width), _block(width, width, dilation=2))
        self.heat = nn.Conv2d(width, parts, 1)
        self.vis_weight = nn.Parameter(torch.zeros(parts, width))
        self.vis_bias = nn.Parameter(torch.zeros(parts))
        self.box = nn.Sequential(nn.Linear(2 * width, width), nn.ReLU(inplace=True), nn.Linear(width, 4))

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.stem(feats)
        heat = self.heat(z)
        attn = heat.flatten(2).softmax(-1)  # (B, P, HW)
        pooled = attn @ z.flatten(2).transpose(1, 2)  # (B, P, width): the features under each part's map
        vis = (pooled * self.vis_weight).sum(-1) + self.vis_bias
        g = torch.cat([z.mean((2, 3)), z.amax((2, 3))], 1)
        c = self.box(g)
        centre, size = c[:, :2].sigmoid(), c[:, 2:].sigmoid()
        box = torch.cat([centre - size / 2, centre + size / 2], 1)
        return heat, vis, box

    @staticmethod
    def expected_xy(heat: torch.Tensor, window: int = 0) -> torch.Tensor:
        """``(B, P, H, W)`` logits -> ``(B, P, 2)`` expected positions in the unit square (cell centres).
        ``window`` > 0: the expectation over the (2 window + 1)^2 cells around the map's peak only, so
        a second mode (the other leg, the other wing) does not pull the point between the two."""
        b, p, h, w = heat.shape
        prob = heat.flatten(2).softmax(-1).view(b, p, h, w)
        if window > 0:
            peak = prob.flatten(2).argmax(-1)
            rows = torch.arange(h, device=heat.device)[None, None, :, None]
            cols = torch.arange(w, device=heat.device)[None, None, None, :]
            near = ((rows - (peak // w)[..., None, None]).abs() <= window) & (
                (cols - (peak % w)[..., None, None]).abs() <= window
            )
            prob = prob * near
            prob = prob / prob.sum((2, 3), keepdim=True)
        xs = (torch.arange(w, device=heat.device, dtype=prob.dtype) + 0.5) / w
        ys = (torch.arange(h, device=heat.device, dtype=prob.dtype) + 0.5) / h
        return torch.stack([(prob.sum(2) * xs).sum(-1), (prob.sum(3) * ys).sum(-1)], -1)

    @torch.no_grad()
    def predict(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(xy (B, P, 2), visibility probability (B, P), box (B, 4) x0 y0 x1 y1)``, unit square."""
        heat, vis, box = self(feats.float())
        return self.expected_xy(heat, self.window), vis.sigmoid(), box.clamp(0, 1)

    def config(self) -> dict[str, int]:
        return {"in_channels": self.in_channels, "parts": self.parts, "width": self.width, "window": self.window}


@dataclass
class PartPrediction:
    """One photo's predicted parts in the model crop's pixels (``crop`` x ``crop``)."""

    xy: torch.Tensor  # (P, 2)
    visible: torch.Tensor  # (P,) probability
    box: torch.Tensor  # (4,) x0 y0 x1 y1
    crop: int
    part_names: tuple[str, ...] = CUB_PARTS
    threshold: float = 0.5

    @classmethod
    def from_unit(cls, xy: torch.Tensor, visible: torch.Tensor, box: torch.Tensor, crop: int) -> "PartPrediction":
        return cls(xy.float().cpu() * crop, visible.float().cpu(), box.float().cpu() * crop, crop)

    def annotation(self) -> dict[str, Any]:
        """The CUB annotation this prediction stands in for (``box`` xywh, ``parts`` ``(P, 3)`` with
        visibility 0/1, ``part_names``), in the crop's pixels: what :func:`mcviz.evaluate.parts.peak_parts`
        and the overlays read; plus ``predicted``, each part's ``visibility`` probability and its
        position ``xy`` even where it is called hidden."""
        ann = as_annotations(self.xy, self.visible, self.box, threshold=self.threshold)
        return {
            "box": ann["box"].tolist(),
            "parts": ann["parts"].tolist(),
            "part_names": list(self.part_names),
            "predicted": True,
            "visibility": [round(float(v), 4) for v in self.visible],
            "xy": self.xy.tolist(),
        }

    def to_image(self, tf: EvalTransform, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(parts (P, 2), box (4,) x0 y0 x1 y1)`` in the pixels of the ``width`` x ``height`` photo
        the crop was cut from (the inverse of :meth:`EvalTransform.map_points`)."""
        return crop_to_image(self.xy, self.box, tf, torch.tensor([float(width), float(height)]))


def as_annotations(
    xy: torch.Tensor, visible: torch.Tensor, box: torch.Tensor, scale: float = 1.0, threshold: float = 0.5
) -> dict[str, torch.Tensor]:
    """A batch of predictions (``xy (..., P, 2)``, visibility probabilities ``(..., P)``, ``box (..., 4)``
    x0 y0 x1 y1, times ``scale`` into pixels) as CUB-style annotations: ``box`` xywh and ``parts``
    ``(..., P, 3)``, a part called hidden at (0, 0) with visibility 0, as CUB stores it."""
    on = (visible >= threshold).to(xy.dtype)
    b = box * scale
    return {
        "box": torch.cat([b[..., :2], b[..., 2:] - b[..., :2]], -1),
        "parts": torch.cat([xy * scale * on[..., None], on[..., None]], -1),
    }


def crop_to_image(
    xy: torch.Tensor, box: torch.Tensor, tf: EvalTransform, sizes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop pixels -> the pixels of the photos the crops were cut from (the inverse of
    :meth:`EvalTransform.map_points`): ``xy (..., P, 2)``, ``box (..., 4)`` x0 y0 x1 y1, ``sizes (..., 2)``
    width and height."""
    scale = sizes / tf.resize
    return (xy + tf.offset) * scale[..., None, :], (
        (box.unflatten(-1, (2, 2)) + tf.offset) * scale[..., None, :]
    ).flatten(-2)
