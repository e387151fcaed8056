"""Shared fixtures. Tests that need ``../shared/data`` skip when it is absent, except when
``MCVIZ_REQUIRE_DATA=1`` (set by .ci/run), where a missing folder is a failure."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# The app's pages import its modules by name (Streamlit puts app/ on the path), and scripts and
# benchmarks are run as files: the tests import them the same way (the benchmarks last).
for _folder in (REPO / "app", REPO / "scripts"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
if str(REPO / "benchmarks") not in sys.path:
    sys.path.append(str(REPO / "benchmarks"))
SHARED_DATA = Path(os.environ.get("MCVIZ_SHARED_DATA", REPO.parent / "shared" / "data"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def need_data(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.exists():
        if os.environ.get("MCVIZ_REQUIRE_DATA") == "1":
            pytest.fail(f"{path} is required (MCVIZ_REQUIRE_DATA=1) but missing")
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture
def cub_root() -> Path:
    return need_data("CUB_200_2011")


@pytest.fixture
def cars_folder_root() -> Path:
    return need_data("stanford_cars")


def write_image(path: Path, size=(40, 30), seed: int = 0, fmt: str | None = None) -> None:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)


def make_folder_dataset(root: Path, classes: int = 3, per_class: int = 6, size: int = 36) -> Path:
    """A learnable ImageFolder: each class has its own colour blob position."""
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", max(2, per_class // 2))):
        for c in range(classes):
            for i in range(n):
                arr = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
                x0 = c * size // classes
                arr[x0 : x0 + size // classes, :, c % 3] = 230
                p = root / split / f"{c + 1:03d}.Class_{c}" / f"img_{i}.jpg"
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(p)
    return root


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    return make_folder_dataset(tmp_path / "tiny")


def interactive(at):
    """An AppTest whose Explore and Compare pages draw the interactive plotly maps (the tests that read
    the maps' values and titles) instead of the default pictures."""
    at.session_state["explore_interactive"] = True
    at.session_state["compare_interactive"] = True
    return at


def markdown_tables(at) -> list:
    """The static tables of a page (Explore draws its predictions and evidence as markdown tables, one
    element each), as DataFrames of text, in page order."""
    import pandas as pd

    out = []
    for m in at.markdown:
        rows = [line for line in m.value.splitlines() if line.startswith("|")]
        if len(rows) >= 2 and set(rows[1]) <= set("|-: "):
            cells = [[c.strip().replace("\\|", "|") for c in r.strip("|").split(" | ")] for r in rows]
            out.append(pd.DataFrame(cells[2:], columns=cells[0]))
    return out


def paragraphs(at) -> list[str]:
    """The paragraphs of a page's markdown elements (Explore says a photo's part lines in one element)."""
    return [p for m in at.markdown for p in m.value.split("\n\n")]
