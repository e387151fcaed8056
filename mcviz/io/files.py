"""Files on disk: atomic writes, and the side files that sit beside a checkpoint.

A side file is ``NAME.<suffix>`` next to ``NAME.safetensors`` and records the SHA-256 of the
checkpoint it was made from, so a file left over from other weights is detected and ignored.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Optional, TypeVar, Union

PathLike = Union[str, os.PathLike]
T = TypeVar("T")

# The side files of a checkpoint, by what they hold (suffix after NAME.).
PARTS = "parts.json"  # mcviz parts: the part each channel looks at
PARTS_PLOT = "parts.png"  # mcviz parts --plot: the channel x part matrix as an image
RANKING = "ranking.json"  # mcviz rank: every channel's effect on every class
ATLAS = "atlas.json"  # mcviz atlas: the images that activate each channel most
OOD = "ood.json"  # mcviz calibrate-ood: the out-of-distribution threshold


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide shared checkpoints from other users
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def side_path(checkpoint: PathLike, suffix: str) -> Path:
    """A file that belongs to a checkpoint: ``NAME.<suffix>`` beside ``NAME.safetensors``
    (:data:`PARTS`, :data:`RANKING`, :data:`ATLAS`...)."""
    p = Path(checkpoint)
    return p.parent / f"{p.name.removesuffix('.safetensors')}.{suffix}"


def file_sha256(path: PathLike) -> str:
    """The SHA-256 of a file: side files record their checkpoint's, so stale ones are detected."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_side_file(checkpoint: PathLike, path: PathLike, parse: Callable[[str], T]) -> Optional[T]:
    """``parse`` of the side file ``path`` of ``checkpoint``, or None when it is missing,
    unreadable, or was made from other weights (its ``checkpoint_sha256`` differs: stale)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        found = parse(path.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found if found.checkpoint_sha256 == file_sha256(checkpoint) else None
