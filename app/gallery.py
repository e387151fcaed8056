"""The photos the app offers of each data set (the galleries) and CUB's annotations of them, cached
by Streamlit. Nothing here runs a model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import streamlit as st

from mcviz.data.images import open_image
from mcviz.io import CheckpointMeta

CARS_TEST = Path("stanford_cars") / "test"  # ImageFolder layout under the data folder


def gallery_kind(meta: Optional[CheckpointMeta]) -> str:
    """Which gallery suits the model: "cub" for a CUB model, "cars" for a Stanford Cars model (196
    classes read from a folder data set), "" otherwise."""
    if meta is None or meta.dataset == "cub":
        return "cub"
    if meta.dataset in ("cars", "folder") and meta.num_classes == 196:
        return "cars"
    return ""


def _gallery_set(root: str, kind: str):
    from mcviz.data import CUB
    from mcviz.data.folder import build_folder

    if kind == "cub" and (Path(root) / "CUB_200_2011" / "images.txt").exists():
        return CUB(Path(root) / "CUB_200_2011", "test")
    if kind == "cars" and (Path(root) / CARS_TEST).is_dir():
        return build_folder(Path(root) / CARS_TEST.parent, "test", None, False)
    return None


@st.cache_data(show_spinner=False)
def gallery(root: str, kind: str = "cub", limit: int = 40) -> list[tuple[str, str]]:
    """(label, path) of the test images of the model's data set (``kind``: "cub" or "cars"), one
    per class in order, when that data set's folder is there."""
    try:
        ds = _gallery_set(root, kind)
    except Exception:
        return []
    if ds is None:
        return []
    out, seen = [], set()
    for p, y in ds.samples:
        if y not in seen:
            seen.add(y)
            out.append((f"{ds.classes[y]} — {p.name}", str(p)))
        if len(out) >= limit:
            break
    return out


@st.cache_data(show_spinner=False)
def gallery_side(root: str, kind: str) -> Optional[int]:
    """The median shorter side of the gallery's photos (their headers only): how large the
    photos the model learned from are. None without a gallery."""
    from PIL import Image

    sides = []
    for _, p in gallery(root, kind):
        try:
            with Image.open(p) as im:
                sides.append(min(im.size))
        except OSError:
            continue
    return int(sorted(sides)[len(sides) // 2]) if sides else None


def class_images_available(meta: CheckpointMeta, root: Optional[Path]) -> bool:
    return bool(root and meta.dataset == "cub" and (root / "CUB_200_2011" / "images.txt").exists())


@st.cache_resource(show_spinner=False, max_entries=4)
def _cub_test_annotations(root: str, input_json: str):
    """CUB's test split with its annotations under the model's transform, and an index by path
    (read once: part_locs.txt is large); None when there is no readable CUB folder."""
    from mcviz.data import CUB, EvalTransform

    try:
        ds = CUB(
            Path(root) / "CUB_200_2011", "test", EvalTransform.from_config(json.loads(input_json)), annotations=True
        )
    except Exception:
        return None
    return ds, {str(p): i for i, (p, _) in enumerate(ds.samples)}


@st.cache_data(show_spinner=False, max_entries=64)
def gallery_annotation(image_path: str, root: str, input_cfg: dict):
    """Box and parts of a CUB test image, in the pixels of the model's crop, and the part names;
    None when the image is not one of the CUB test images under ``root``."""
    found = _cub_test_annotations(root, json.dumps(input_cfg, sort_keys=True))
    if found is None:
        return None
    ds, index = found
    i = index.get(image_path)
    if i is None:
        return None
    w, h = open_image(image_path).size
    ann = ds.annotation(i, w, h)
    return {"box": ann["box"].tolist(), "parts": ann["parts"].tolist(), "part_names": ds.part_names}
