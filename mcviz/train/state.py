"""What a run leaves on disk between epochs besides its checkpoint: ``state.pt`` (weights,
optimiser, schedule, every rank's RNG; loaded with ``weights_only=True``) and ``metrics.jsonl``."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import torch

from ..io.files import atomic_write_bytes


def rng_state() -> dict[str, Any]:
    st = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]), "python_pos": random.getstate()[2]}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate((3, tuple(st["python"]), st["python_pos"]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def save_state(path: Path, obj: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(out: str | Path) -> dict[str, Any]:
    path = Path(out) / "state.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: nothing to resume in {out}")
    # weights_only: a training state is tensors, numbers and strings; nothing is executed.
    return torch.load(path, map_location="cpu", weights_only=True)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a kill: drop it and what follows
    return rows
