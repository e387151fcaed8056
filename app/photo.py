"""The photo the app works on: one value in the session state, with one identity (the SHA-1 of its
bytes) that every cache key, widget context and model job uses."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import streamlit as st

KEY = "photo"


def digest(data: bytes) -> str:
    """The photo's identity: the SHA-1 of its bytes."""
    return hashlib.sha1(data).hexdigest()


@dataclass(frozen=True)
class Photo:
    """An uploaded photo, or a gallery photo with its file (for its annotations)."""

    data: bytes
    name: str
    digest: str
    path: Optional[str] = None

    @classmethod
    def uploaded(cls, data: bytes, name: str) -> "Photo":
        return cls(data, name, digest(data))

    @classmethod
    def from_gallery(cls, path: str) -> "Photo":
        data = Path(path).read_bytes()
        return cls(data, Path(path).name, digest(data), path)

    @property
    def origin(self) -> str:
        return "from the gallery" if self.path else "uploaded"


def current() -> Optional[Photo]:
    """This session's photo, or None before there is one."""
    return st.session_state.get(KEY)


def use(photo: Photo) -> bool:
    """Make ``photo`` the session's photo; returns whether it is a new choice (another photo, or the
    same bytes from another source)."""
    now = current()
    if now is not None and (now.digest, now.name, now.path) == (photo.digest, photo.name, photo.path):
        return False
    st.session_state[KEY] = photo
    return True
