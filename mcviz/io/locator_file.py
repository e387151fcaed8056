"""The part locator's file: safetensors with the head's weights (float16: a few hundred KB) and
JSON metadata, written atomically and read without executing code; :class:`LocatorMeta` is the
only code that reads that metadata by key. Also the locator's default path and loading it with
the trunk it reads (:func:`load_locator`, :func:`trunk_for`, :func:`locator_fits`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch

import torch.nn as nn

from ..core.part_locator import PartLocator
from ..data.transforms import EvalTransform
from .checkpoint import CheckpointError, body_digest
from .files import atomic_write_bytes

__all__ = [
    "LOCATOR_FORMAT",
    "LocatorMeta",
    "default_locator_path",
    "load_locator",
    "locator_fits",
    "read_locator",
    "save_locator",
    "trunk_for",
    "write_locator",
]

LOCATOR_FORMAT = "mcviz-part-locator/1"


@dataclass(frozen=True)
class LocatorMeta:
    """What a locator file says about itself: the trunk it reads (backbone, the body step, the
    input transform, the trunk's digest), the head's shape, and how it was trained."""

    backbone: str
    layer: str
    input: dict[str, Any]
    trunk_sha256: str
    config: dict[str, int]
    epochs: int = 0
    epoch: int = 0
    command: str = ""
    train: dict[str, Any] = field(default_factory=dict)

    @property
    def transform(self) -> EvalTransform:
        return EvalTransform.from_config(self.input)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LocatorMeta":
        return cls(
            backbone=d["backbone"],
            layer=d["layer"],
            input=dict(d["input"]),
            trunk_sha256=d["trunk_sha256"],
            config=dict(d["config"]),
            epochs=int(d.get("epochs", 0)),
            epoch=int(d.get("epoch", 0)),
            command=str(d.get("command", "")),
            train=dict(d.get("train", {})),
        )


def write_locator(path: Union[str, Path], state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    from safetensors.torch import save

    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    atomic_write_bytes(path, save(half, metadata={"mcviz": json.dumps({"format": LOCATOR_FORMAT, **meta})}))


def read_locator(path: Union[str, Path]) -> tuple[dict[str, torch.Tensor], LocatorMeta]:
    """``(weights, metadata)``; :class:`~mcviz.io.checkpoint.CheckpointError` for anything else."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("mcviz")
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises several types for a damaged file
        raise CheckpointError(f"{path}: not a readable part locator ({exc})") from None
    d = json.loads(raw) if raw else {}
    if d.get("format") != LOCATOR_FORMAT:
        raise CheckpointError(f"{path}: not an mcviz part locator (format {d.get('format')!r})")
    try:
        return state, LocatorMeta.from_dict(d)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the part locator's metadata is incomplete ({exc})") from None


def default_locator_path() -> Path:
    """The operator's part locator: ``$MCVIZ_PART_LOCATOR``, else the one shipped in the repository's
    ``checkpoints/locator/`` (the CLI and the app both ask here)."""
    env = os.environ.get("MCVIZ_PART_LOCATOR")
    return (
        Path(env) if env else Path(__file__).resolve().parents[2] / "checkpoints" / "locator" / "cub-parts.safetensors"
    )


def load_locator(path: Union[str, Path]) -> tuple[PartLocator, LocatorMeta]:
    """A saved locator and its metadata; loading runs no code."""
    state, meta = read_locator(path)
    locator = PartLocator(**meta.config)
    locator.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return locator.eval(), meta


def save_locator(path: Union[str, Path], locator: PartLocator, meta: dict[str, Any]) -> None:
    """The head's weights and ``meta`` (trunk, layer, input transform, the trunk's digest, training)."""
    write_locator(path, locator.state_dict(), {"config": locator.config(), **meta})


def trunk_for(meta: LocatorMeta) -> nn.Module:
    """The frozen pretrained trunk a locator reads (rebuilt from the weights package and checked
    against the digest recorded at training)."""
    from ..core.models import build_model

    model = build_model(meta.backbone, 2, pretrained=True)
    if body_digest(model, meta.layer) != meta.trunk_sha256:
        raise CheckpointError("the part locator was trained on another trunk than the installed weights package")
    return model.split_at(meta.layer)[0].eval()


def locator_fits(meta: LocatorMeta, model: nn.Module) -> bool:
    """Whether ``model``'s body up to the locator's layer is the trunk it was trained on (then the
    model's own block outputs feed it, and a photo costs only the head)."""
    try:
        return body_digest(model, meta.layer) == meta.trunk_sha256
    except (ValueError, AttributeError):
        return False
