"""Is this photo of what the model knows? An out-of-distribution check from the class scores.

A fine-grained model always names one of its classes, even for a portrait or a page of text.
The check reads a score the forward pass already has (no extra network, microseconds a photo)
and compares it with a threshold calibrated on photos of the model's own data set that it did
not train on. The threshold and the score's name are stored beside the checkpoint as
``NAME.ood.json`` (keyed by the checkpoint's SHA-256, like the ranking and parts files).

Scores (higher = more like the training data; ``energy`` is the default, picked on the shipped
models by the targets of ``docs/ood.md``: it flagged more of the other photos than ``max_logit`` at
the same false-alarm rate, and ``max_prob`` far fewer):

- ``max_logit``: the largest class score (Hendrycks et al., 2022, "Scaling OOD detection").
  For a class-connected head it is the winning class's total evidence.
- ``energy``: ``logsumexp`` of the class scores (Liu et al., 2020, energy-based OOD detection).
- ``max_prob``: the largest softmax probability (Hendrycks & Gimpel, 2017), the baseline.

What it catches: photos far from the data set (people, other animals, objects, scenes,
documents, a car under a bird model). What it does not: a bird of a species outside CUB is
still a bird, and usually scores as one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import torch

from ..io.describe import dataset_name
from ..io.files import OOD, atomic_write_bytes, load_side_file, side_path
from ..io.meta import CheckpointMeta

__all__ = [
    "OOD_FORMAT",
    "SCORES",
    "OODCalibration",
    "OODVerdict",
    "domain_of",
    "load_ood_calibration",
    "ood_path",
    "ood_scores",
    "save_ood_calibration",
]

OOD_FORMAT = "mcviz-ood/1"

SCORES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "max_logit": lambda z: z.max(dim=-1).values,
    "energy": lambda z: torch.logsumexp(z, dim=-1),
    "max_prob": lambda z: torch.softmax(z, dim=-1).max(dim=-1).values,
}

# What the classes of each data set are (by the name mcviz.io.describe gives it), in the warning's words.
_KINDS = {
    "CUB-200-2011": "bird species",
    "Stanford Cars": "car models",
    "Flowers-102": "flower species",
    "FGVC-Aircraft": "aircraft variants",
}


def domain_of(meta: CheckpointMeta) -> str:
    """What a model knows, for a warning: "the 200 bird species of CUB-200-2011" (the data set it was
    trained on, named as everywhere else by :func:`mcviz.io.describe.dataset_name`)."""
    name = dataset_name(meta)
    kind = _KINDS.get(name)
    return (
        f"the {meta.num_classes} {kind} of {name}" if kind else f"the {meta.num_classes} classes of its training data"
    )


def ood_scores(logits: torch.Tensor, score: str = "energy") -> torch.Tensor:
    """``(B,)`` scores of ``(B, classes)`` class scores (higher: more like the training data).

    Raises:
        ValueError: ``score`` is not one of :data:`SCORES`.
    """
    if score not in SCORES:
        raise ValueError(f"unknown OOD score {score!r}; choose one of {', '.join(SCORES)}")
    return SCORES[score](logits.float())


@dataclass(frozen=True)
class OODVerdict:
    """The check's answer for one photo."""

    score: float
    threshold: float
    score_name: str
    domain: str  # what the model knows ("the 200 bird species of CUB-200-2011")

    @property
    def in_distribution(self) -> bool:
        """True when the photo scores at least the threshold: like the model's own photos."""
        return self.score >= self.threshold

    @property
    def flagged(self) -> bool:
        return not self.in_distribution

    def as_dict(self) -> dict:
        return {
            "score": round(self.score, 4),
            "threshold": round(self.threshold, 4),
            "score_name": self.score_name,
            "in_distribution": self.in_distribution,
            "domain": self.domain,
        }

    def message(self) -> str:
        """The warning shown on a flagged photo (empty when the photo looks like the model's data)."""
        if self.in_distribution:
            return ""
        return (
            f"This photo does not look like anything this model knows ({self.domain}): its score "
            f"{self.score:.1f} is below the {self.threshold:.1f} that {self.score_name.replace('_', ' ')} "
            "reaches on nearly all of its own test photos. The predictions, maps and part names below "
            "are not reliable."
        )


@dataclass(frozen=True)
class OODCalibration:
    """A threshold on one score, calibrated on held-out photos of the model's own data set.

    ``threshold`` is the ``quantile`` of the calibration half's scores; ``false_alarm`` is the
    share of the other half that falls below it (the rate to expect on new in-distribution photos).
    """

    checkpoint_sha256: str
    score: str
    threshold: float
    quantile: float
    dataset: str
    split: str
    calibration_images: int
    held_out_images: int
    false_alarm: float
    domain: str
    format: str = OOD_FORMAT

    def verdict(self, logits: torch.Tensor) -> OODVerdict:
        """The verdict on one photo's ``(classes,)`` or ``(1, classes)`` class scores."""
        s = float(ood_scores(logits.reshape(1, -1), self.score)[0])
        return OODVerdict(score=s, threshold=self.threshold, score_name=self.score, domain=self.domain)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "OODCalibration":
        d = json.loads(text)
        if d.get("format") != OOD_FORMAT:
            raise ValueError(f"not an {OOD_FORMAT} file")
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def ood_path(checkpoint: Union[str, Path]) -> Path:
    """``NAME.ood.json`` beside ``NAME.safetensors``."""
    return side_path(checkpoint, OOD)


def save_ood_calibration(calibration: OODCalibration, checkpoint: Union[str, Path]) -> Path:
    """Write the calibration beside its checkpoint (atomically); returns the path."""
    out = ood_path(checkpoint)
    atomic_write_bytes(out, calibration.to_json().encode())
    return out


def load_ood_calibration(checkpoint: Union[str, Path]) -> Optional[OODCalibration]:
    """The checkpoint's calibration, or None when it has none (or one made for other weights)."""
    return load_side_file(checkpoint, ood_path(checkpoint), OODCalibration.from_json)
