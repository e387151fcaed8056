"""Which part of the bird does each channel look at? Part profiles from CUB's annotations.

For every MC channel, its peaks (the argmax cell of the raw channel) on CUB test images are
sorted into the 15 annotated parts (nearest visible part within ``radius`` x the bird box's
diagonal, the rule of ``mcviz localize``), *on the bird but near no part*, and *off the bird*.
Two populations per channel: the images of the class the channel belongs to (``own``), and
every image where the channel is among the ``strongest`` k channels by peak value. A profile
file ``NAME.parts.json`` beside the checkpoint stores the result with the checkpoint's
SHA-256, so a profile of other weights is detected and ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..io.files import PARTS, load_side_file, side_path
from ..data.transforms import cell_centre
from ..trunk.split_pass import SplitPass

__all__ = [
    "ChannelParts",
    "PartProfiles",
    "categorise_peaks",
    "compute_part_profiles",
    "load_part_profiles",
    "part_profile",
    "profile_path",
]

PROFILE_FORMAT = "mcviz-parts/1"
OFF_BIRD, NO_PART = "off the bird", "on the bird, near no part"


def categorise_peaks(peaks: torch.Tensor, box: torch.Tensor, parts: torch.Tensor, radius: float) -> torch.Tensor:
    """``peaks (B, K, 2)``, ``box (B, 4)`` xywh, ``parts (B, P, 3)`` -> ``(B, K)`` categories:
    ``0..P-1`` the nearest visible part within ``radius`` x the box diagonal (the rule of
    :func:`mcviz.evaluate.localization.match_parts`), ``P`` on the bird (in the box) near no part, ``P + 1``
    off the bird. A peak near a part counts as that part even just outside the box (parts sit
    on the box's edge)."""
    from .localization import match_parts

    n_parts = parts.shape[1]
    inside, part_id = match_parts(peaks, box, parts, radius)
    out = torch.where(inside, torch.full_like(part_id, n_parts), torch.full_like(part_id, n_parts + 1))
    return torch.where(part_id >= 0, part_id, out)


@dataclass
class ChannelParts:
    """One channel's profile over one population of images."""

    channel: int
    images: int  # peaks counted
    shares: dict[str, float]  # part name (and the two extra categories) -> share of the peaks
    top: Optional[str]  # the most frequent *part* (None when no peak hit one)
    confidence: float  # its share

    def label(self) -> str:
        """``"crown 46 %"``, or ``"no part"`` when none stands out."""
        return f"{self.top} {100 * self.confidence:.0f} %" if self.top else "no part"

    def usual(self) -> str:
        """What the channel's peaks usually land on over its class's images, said as an average
        (``"usually the throat, 30 %"``), led by the off-the-bird share where that is larger
        (``"most often off the bird, 61 %; else the nape, 3 %"``): a title that reads as a fact about
        one photo would mislead."""
        off = self.shares.get(OFF_BIRD, 0.0)
        part = f"the {self.top}, {100 * self.confidence:.0f} %" if self.top else "no one part"
        if off > self.confidence:
            return f"most often off the bird, {100 * off:.0f} %; else {part}"
        return f"usually {part}"


@dataclass
class PartProfiles:
    """Every channel's profile over its own class's images and where it is among the strongest."""

    checkpoint_sha256: str
    split: str
    images: int
    radius: float
    strongest_k: int
    categories: list[str]
    own: list[ChannelParts]
    strongest: list[ChannelParts]

    def to_json(self) -> str:
        def rows(items):
            return [
                {
                    "channel": c.channel,
                    "images": c.images,
                    "top": c.top,
                    "confidence": round(c.confidence, 4),
                    "counts": [round(c.shares[k] * c.images) for k in self.categories],
                }
                for c in items
            ]

        return json.dumps(
            {
                "format": PROFILE_FORMAT,
                "checkpoint_sha256": self.checkpoint_sha256,
                "split": self.split,
                "images": self.images,
                "radius": self.radius,
                "strongest_k": self.strongest_k,
                "categories": self.categories,
                "own": rows(self.own),
                "strongest": rows(self.strongest),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "PartProfiles":
        d = json.loads(text)
        if d.get("format") != PROFILE_FORMAT:
            raise ValueError(f"not a part-profile file ({d.get('format')!r})")
        cats = d["categories"]
        n_parts = len(cats) - 2
        return cls(
            d["checkpoint_sha256"],
            d["split"],
            d["images"],
            d["radius"],
            d["strongest_k"],
            cats,
            [_from_counts(r["channel"], r["counts"], cats, n_parts) for r in d["own"]],
            [_from_counts(r["channel"], r["counts"], cats, n_parts) for r in d["strongest"]],
        )

    def matrix(self, population: str = "own") -> torch.Tensor:
        """``(channels, categories)`` shares, for the channel x part matrix."""
        items = self.own if population == "own" else self.strongest
        return torch.tensor([[c.shares[k] for k in self.categories] for c in items])


def peak_parts(peaks: Sequence[Sequence[float]], annotation: dict, radius: float = 0.15) -> list[str]:
    """Which annotated part each peak ``(x, y)`` hits in one image (the rule of ``mcviz localize``);
    ``annotation``: ``{"box", "parts", "part_names"}`` in the crop's pixels."""
    cats = categorise_peaks(
        torch.tensor([list(map(float, p)) for p in peaks])[None],
        torch.tensor(annotation["box"])[None],
        torch.tensor(annotation["parts"])[None],
        radius,
    )[0]
    names = [*annotation["part_names"], NO_PART, OFF_BIRD]
    return [names[int(c)] for c in cats]


def _from_counts(channel: int, counts: Sequence[float], categories: Sequence[str], n_parts: int) -> ChannelParts:
    total = float(sum(counts))
    shares = {k: (float(v) / total if total else 0.0) for k, v in zip(categories, counts)}
    best = max(range(n_parts), key=lambda i: counts[i]) if n_parts else 0
    top = categories[best] if total and counts[best] > 0 else None
    return ChannelParts(channel, int(total), shares, top, shares[categories[best]] if top else 0.0)


def profile_path(checkpoint: str | Path) -> Path:
    """``NAME.parts.json`` beside ``NAME.safetensors``."""
    return side_path(checkpoint, PARTS)


@torch.no_grad()
def compute_part_profiles(run: SplitPass, radius: float = 0.15, strongest_k: int = 10) -> PartProfiles:
    """Part profiles of every MC channel of ``run``'s model over its split of a CUB-layout data set
    (``run.checkpoint`` names the file the profiles record the SHA-256 of)."""
    model = run.model
    loader, after, cub = run.annotated()
    crop = cub.transform.crop
    cats = [*cub.part_names, NO_PART, OFF_BIRD]
    n, n_cat = model.groups.num_channels, len(cats)
    own = torch.zeros(n, n_cat)
    strong = torch.zeros(n, n_cat)
    member = torch.zeros(model.num_classes, n, dtype=torch.bool)
    for c, chans in enumerate(model.groups.members):
        member[c, list(chans)] = True
    images = 0
    for x, y, ann in run.bar(loader, "part profiles"):
        f = run.features(x, after)
        b, _, h, w = f.shape
        flat = f.flatten(2)
        val, arg = flat.max(dim=2)  # (B, N)
        peaks = torch.stack(cell_centre(arg, w, h, crop, crop), dim=-1)
        cat = categorise_peaks(peaks, ann["box"], ann["parts"], radius)  # (B, N)
        onehot = torch.nn.functional.one_hot(cat, n_cat).float()  # (B, N, n_cat)
        own += (onehot * member[y][..., None]).sum(0)
        top = val.topk(min(strongest_k, n), dim=1).indices
        sel = torch.zeros(b, n, dtype=torch.bool).scatter_(1, top, True)
        strong += (onehot * sel[..., None]).sum(0)
        images += b
    n_parts = len(cub.part_names)
    return PartProfiles(
        run.sha256,
        run.split,
        images,
        radius,
        strongest_k,
        cats,
        [_from_counts(i, own[i].tolist(), cats, n_parts) for i in range(n)],
        [_from_counts(i, strong[i].tolist(), cats, n_parts) for i in range(n)],
    )


def load_part_profiles(checkpoint: str | Path) -> Optional[PartProfiles]:
    """The profile file beside ``checkpoint``, or None when there is none, it is unreadable, or it
    was made from other weights (stale: the checkpoint's SHA-256 differs)."""
    return load_side_file(checkpoint, profile_path(checkpoint), PartProfiles.from_json)


def part_profile(checkpoint: str | Path, channel: int, population: str = "own") -> Optional[ChannelParts]:
    """One channel's profile from the file beside ``checkpoint`` (None when it has none)."""
    prof = load_part_profiles(checkpoint)
    if prof is None:
        return None
    items = prof.own if population == "own" else prof.strongest
    return items[channel] if 0 <= channel < len(items) else None
