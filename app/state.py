"""Where the app finds checkpoints, images and cached computations. Pages stay thin."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Optional

import streamlit as st

APP_DIR = Path(__file__).resolve().parent
REPO = APP_DIR.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mcviz.checkpoint import CheckpointError, read_metadata  # noqa: E402
from mcviz.data.images import ImageError, open_image  # noqa: E402
from mcviz.explain import Explainer, top_channels  # noqa: E402
from mcviz.explain.effect import HeadAblation  # noqa: E402
from mcviz.explain.rankings import (RANKINGS, available_rankings, class_channel_scores,  # noqa: E402
                                    load_effect_ranking, ranking_path)
from mcviz.serving import SerialWork, serving_threads  # noqa: E402
from mcviz.training import diversity_options  # noqa: E402

# Streamlit runs a full gc.collect() after every script run (runner.postScriptGC); with
# torch, plotly and scipy loaded that scan takes ~0.7 s on this machine, and an upload makes
# two runs. Freezing what the imports created moves it out of the collector's reach, so
# the collection scans only what the runs allocate (~0.1 ms). .streamlit/config.toml also
# turns the per-run collection off when the app is started from the repository.
gc.freeze()

# Model work of every session goes through one queue (work_queue), a few jobs at a time with
# all cores: concurrent sessions then share the machine instead of oversubscribing it.
import torch  # noqa: E402

torch.set_num_threads(serving_threads())

# MC-Loss with the anchored diversity term on the pretrained EfficientNet-Lite0: the most
# accurate MC-Loss model, and the one whose channels peak on the most different parts of the
# bird (docs/results.md, docs/diversity.md), which is what the app is for.
DEFAULT_CHECKPOINT = "cub-mc-anchor.safetensors"
ACCEPTED = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
# Photos are decoded no larger than this on their shorter side: enough for a 448 px model
# (squashed to 512) and for display; a 48-megapixel JPEG then decodes at 1/8 scale.
# MCVIZ_FULL_DECODE=1 decodes every photo whole (benchmarks/app_load.py --compare measures the difference).
DECODE_SIDE = None if os.environ.get("MCVIZ_FULL_DECODE") == "1" else 512


# Which folders of the server's disk visitors may name: by default none (only checkpoints/,
# $MCVIZ_CHECKPOINTS and $MCVIZ_DATA, which the operator chose). The operator opens the sidebar's
# "Folders" inputs by starting the app with MCVIZ_APP_FOLDERS=1.
FOLDERS_ENV = "MCVIZ_APP_FOLDERS"


def folders_allowed() -> bool:
    """Whether visitors may point the app at folders of the server (the operator's choice)."""
    return os.environ.get(FOLDERS_ENV) == "1"


def _visitor_folder(key: str) -> str:
    return st.session_state.get(key, "").strip() if folders_allowed() else ""


def checkpoint_dirs() -> list[Path]:
    """checkpoints/ of the repo, then $MCVIZ_CHECKPOINTS (os.pathsep-separated), then the sidebar's
    (when the operator allows it)."""
    dirs = [] if os.environ.get("MCVIZ_APP_NO_REPO_CHECKPOINTS") == "1" else [REPO / "checkpoints"]
    for d in os.environ.get("MCVIZ_CHECKPOINTS", "").split(os.pathsep):
        if d.strip():
            dirs.append(Path(d.strip()))
    extra = _visitor_folder("extra_checkpoint_dir")
    if extra:
        dirs.append(Path(extra))
    return dirs


def list_checkpoints() -> list[Path]:
    seen, out = set(), []
    for d in checkpoint_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.safetensors")):
                if p.resolve() not in seen:
                    seen.add(p.resolve())
                    out.append(p)
    # the default first, unreadable files last
    out.sort(key=lambda p: (p.name != DEFAULT_CHECKPOINT, safe_metadata(p)[1] is not None, str(p)))
    return out


# The paper's Fig. 7 line-up first: MC-Loss, cross-entropy, then the ablations.
COMPARE_ORDER = ("mc", "ce", "mc-no-div", "mc-no-cwa", "mc-v2")


def compare_defaults(readable: list[Path], dataset: Optional[str], k: int = 6) -> list[Path]:
    """The Compare page's default models: the app's default model, then the seed-0 models
    of ``dataset`` in Fig. 7 order."""
    def key(p: Path):
        meta = safe_metadata(p)[0] or {}
        variant = meta.get("variant", "")
        hparams = meta.get("hparams") or {}
        extra = bool(diversity_options(hparams))
        rank = COMPARE_ORDER.index(variant) if variant in COMPARE_ORDER and not extra else len(COMPARE_ORDER)
        seed = hparams.get("seed", 0)
        return (seed != 0, p.name != DEFAULT_CHECKPOINT, rank, str(p))

    same = [p for p in readable if (safe_metadata(p)[0] or {}).get("dataset") == dataset]
    return sorted(same, key=key)[:k]


def data_dir() -> Optional[Path]:
    d = _visitor_folder("data_dir") or os.environ.get("MCVIZ_DATA", "")
    if not d:
        default = REPO.parent / "shared" / "data"
        return default if default.is_dir() else None
    p = Path(d)
    return p if p.is_dir() else None


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


@st.cache_resource(show_spinner="Loading the model...", max_entries=16)
def _explainer(path: str, mtime: float) -> Explainer:
    return Explainer.from_checkpoint(path)


def explainer(path: Path) -> Explainer:
    """The cached explainer of a checkpoint (reloaded when the file changes)."""
    return _explainer(str(path), _mtime(path))


@st.cache_data(show_spinner=False, max_entries=256)
def metadata(path: str, mtime: float) -> dict:
    meta = read_metadata(path)
    meta.pop("extra", None)
    return meta


def safe_metadata(path: Path) -> tuple[Optional[dict], Optional[str]]:
    try:
        return metadata(str(path), _mtime(path)), None
    except CheckpointError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"{path}: {exc}"


def label(path: Path) -> str:
    meta, _ = safe_metadata(path)
    if not meta:
        return f"{path.stem} (unreadable)"
    acc = (meta.get("metrics") or {}).get("top1")
    acc_s = f", top-1 {acc:.1f}%" if isinstance(acc, (int, float)) else ""
    return f"{path.stem} — {meta.get('dataset', '?')} {meta.get('variant', '?')}{acc_s}"


class _NoQueue:
    """Each session runs its own model work at once (MCVIZ_NO_QUEUE=1: the app before the queue,
    for benchmarks/app_load.py --compare)."""

    def run(self, key, fn):
        return fn()


@st.cache_resource
def work_queue():
    """The one queue of model work shared by all sessions of this server."""
    if os.environ.get("MCVIZ_NO_QUEUE") == "1":
        return _NoQueue()
    return SerialWork(slots=int(os.environ.get("MCVIZ_WORK_SLOTS", "2")))


@st.cache_data(show_spinner=False, max_entries=64)
def decode(data: bytes, name: str):
    """Decoded RGB image (no larger than needed) or an error message, never an exception."""
    if len(data) > MAX_UPLOAD_BYTES:
        return None, f"{name}: the file is {len(data) / 1e6:.0f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB"
    try:
        return open_image(data, name=name, min_side=DECODE_SIDE), None
    except ImageError as exc:
        return None, str(exc)


def _digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@st.cache_data(show_spinner="Computing channel maps...", max_entries=128)
def channel_maps(path: str, mtime: float, data: bytes, name: str, classes: tuple[int, ...], method: str,
                 layer: Optional[str]):
    img, err = decode(data, name)
    if err:
        raise ValueError(err)
    ex = _explainer(path, mtime)
    key = ("maps", path, mtime, _digest(data), classes, method, layer)
    return work_queue().run(key, lambda: ex.channel_maps(img, list(classes), method=method, layer=layer))


@st.cache_data(show_spinner=False, max_entries=128)
def predictions(path: str, mtime: float, data: bytes, name: str, k: int):
    img, err = decode(data, name)
    if err:
        raise ValueError(err)
    ex = _explainer(path, mtime)
    return work_queue().run(("predict", path, mtime, _digest(data), k), lambda: ex.predict(img, k))


@st.cache_data(show_spinner=False, max_entries=64)
def _side_file(kind: str, path: str, mtime: float, side_mtime: float):
    from mcviz.explain import load_part_profiles

    return {"parts": load_part_profiles, "ranking": load_effect_ranking}[kind](path)


def side_file(kind: str, path: Path, side: Path):
    """A checkpoint's side file loaded (``kind``: "parts" or "ranking"), reloaded when either file
    changes; None when it is missing or stale (made from other weights)."""
    return _side_file(kind, str(path), _mtime(path), _mtime(side)) if side.exists() else None


def effect_ranking(path: Path):
    """The checkpoint's effect ranking (``mcviz rank``), or None when it has none or a stale one."""
    return side_file("ranking", path, ranking_path(path))


def rankings(path: Path) -> list[str]:
    """The rankings this model offers, the default first (see :data:`RANKINGS`)."""
    ex = explainer(path)
    return available_rankings(ex.model, ex.meta, effect_ranking(path))


@st.cache_data(show_spinner="Ranking channels...", max_entries=32)
def scores_matrix(path: str, mtime: float):
    """The class x channel matrix of the default ranking that needs no images."""
    found = effect_ranking(Path(path))
    if found is not None:
        return found.effects.numpy(), "effect on the class's logit"
    ex = _explainer(path, mtime)
    scores, source = work_queue().run(("scores", path, mtime), lambda: class_channel_scores(ex.model, ex.meta))
    return scores.numpy(), source


def ranking(path: Path, class_index: int, k: int = 10, by: Optional[str] = None):
    ex = explainer(path)
    return top_channels((ex.model, ex.meta), class_index, k, by=by, effect=effect_ranking(path))


@st.cache_resource(show_spinner=False, max_entries=16)
def _ablation(path: str, mtime: float, ranking_mtime: float) -> Optional[HeadAblation]:
    ex = _explainer(path, mtime)
    found = effect_ranking(Path(path))
    try:
        return HeadAblation.of(ex.model, means=found.means if found is not None else None)
    except ValueError:  # a GAP head without a ranking file: no means to switch channels to
        return None


def ablation(path: Path) -> Optional[HeadAblation]:
    """The head of the checkpoint, ready to switch channels off (None when it cannot)."""
    rp = ranking_path(path)
    return _ablation(str(path), _mtime(path), _mtime(rp) if rp.exists() else 0.0)


def switched_off(ab: HeadAblation, pooled_input, channels) -> tuple:
    """Class probabilities ``(before, after)`` of one image when ``channels`` are switched off;
    only the head runs."""
    import torch

    x = torch.as_tensor(pooled_input)[None]
    off = torch.zeros(x.shape[1], dtype=torch.bool)
    off[list(channels)] = True
    before, after = (torch.softmax(ab.logits(x, m), dim=1)[0].numpy() for m in (None, off))
    return before, after


@st.cache_data(show_spinner=False, max_entries=128)
def pooled(path: str, mtime: float, data: bytes, name: str):
    """The head's pooled input for this image, from the features its maps were computed from
    (the explainer keeps them), shared by every switch-off that follows."""
    img, err = decode(data, name)
    if err:
        raise ValueError(err)
    ex = _explainer(path, mtime)
    return work_queue().run(("pooled", path, mtime, _digest(data)), lambda: ex.pooled(img)).numpy()


def class_images_available(meta: dict) -> bool:
    root = data_dir()
    return bool(root and meta.get("dataset") == "cub" and (root / "CUB_200_2011" / "images.txt").exists())


@st.cache_data(show_spinner="Running the class's test images through the model...", max_entries=64)
def activation_ranking(path: str, mtime: float, root: str, class_index: int, k: int = 10):
    """Top channels by mean activation over the class's CUB test images."""
    from mcviz.data import CUB, EvalTransform

    ex = _explainer(path, mtime)
    ds = CUB(Path(root) / "CUB_200_2011", "test", EvalTransform.from_config(ex.meta["input"]))
    return work_queue().run(("ranking", path, mtime, root, class_index, k),
                            lambda: top_channels((ex.model, ex.meta), class_index, k, dataset=ds, by="activation"))


@st.cache_data(show_spinner=False)
def gallery(root: str, limit: int = 40) -> list[tuple[str, str]]:
    """(label, path) of CUB test images, one per class in order, when a CUB folder is there."""
    cub = Path(root) / "CUB_200_2011"
    if not (cub / "images.txt").exists():
        return []
    from mcviz.data import CUB

    try:
        ds = CUB(cub, "test")
    except Exception:
        return []
    out, seen = [], set()
    for (p, y) in ds.samples:
        if y not in seen:
            seen.add(y)
            out.append((f"{ds.classes[y]} — {p.name}", str(p)))
        if len(out) >= limit:
            break
    return out


def image_source(key: str) -> tuple[Optional[bytes], str]:
    """Upload or gallery pick; the choice is kept across pages in session state (a gallery
    pick also keeps its file path in ``image_path``, for its part annotations)."""
    up = st.file_uploader("Upload a photo (PNG, JPEG, WebP, BMP)", type=ACCEPTED, key=f"upload_{key}")
    if up is not None:
        data = up.getvalue()
        if st.session_state.get("image_sig") != (up.name, len(data), hash(data)):
            st.session_state["image_sig"] = (up.name, len(data), hash(data))
            st.session_state["image"] = (data, up.name)
            st.session_state["image_path"] = None  # an upload: no annotations
    root = data_dir()
    items = gallery(str(root)) if root else []
    if items:
        labels = ["—"] + [lbl for lbl, _ in items]
        pick = st.selectbox("...or pick a CUB test image", labels, key=f"gallery_{key}")
        if pick != "—":
            path = dict(items)[pick]
            if st.session_state.get("gallery_pick") != path:
                st.session_state["gallery_pick"] = path
                st.session_state["image"] = (Path(path).read_bytes(), Path(path).name)
                st.session_state["image_path"] = path
    data, name = st.session_state.get("image", (None, ""))
    return data, name


def require_image(key: str, prompt: str):
    """``(bytes, name, RGB image)`` of the chosen image; otherwise a message and the page stops."""
    data, name = image_source(key)
    if data is None:
        st.info(prompt)
        st.stop()
    img, err = decode(data, name)
    if err:
        st.error(f"Cannot use this file: {err}")
        st.stop()
    return data, name, img


def sidebar_settings() -> None:
    """The "Folders" inputs, only where the operator started the app with MCVIZ_APP_FOLDERS=1."""
    if not folders_allowed():
        return
    with st.sidebar.expander("Folders", expanded=False):
        st.text_input("Extra checkpoint folder", key="extra_checkpoint_dir",
                      help="Checkpoints are read from checkpoints/, $MCVIZ_CHECKPOINTS and this folder.")
        st.text_input("Data folder (for the gallery)", key="data_dir",
                      help="A folder holding CUB_200_2011/; default $MCVIZ_DATA or ../shared/data.")


def choose_checkpoint(key: str) -> tuple[Path, dict]:
    """Sidebar model picker; stops the page with a message when nothing usable is there."""
    ckpts = list_checkpoints()
    if not ckpts:
        st.warning("No checkpoint found. Put `.safetensors` checkpoints in `checkpoints/` or name a folder "
                   "in the sidebar.")
        st.stop()
    path = st.sidebar.selectbox("Model", ckpts, format_func=label, key=key)
    meta, err = safe_metadata(path)
    if err:
        st.error(f"This checkpoint cannot be loaded: {err}")
        st.stop()
    return path, meta


def numbers_json(meta_name: str, preds, cm) -> str:
    return json.dumps({
        "checkpoint": meta_name,
        "method": cm.method, "layer": cm.layer,
        "predictions": [{"class": p.name, "index": p.index, "prob": round(p.prob, 5)} for p in preds],
        "classes": [{"class": c.class_name, "index": c.class_index, "h": round(c.h, 4), "channels": c.channels,
                     "peaks_xy": [list(map(int, pk)) for pk in c.peaks],
                     "raw_max": [float(r.max()) for r in c.raw]} for c in cm.classes],
    }, indent=2)


@st.cache_data(show_spinner=False, max_entries=16)
def atlas(path: str, mtime: float) -> Optional[dict]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


@st.cache_data(show_spinner=False, max_entries=256)
def atlas_crops(entries: tuple) -> list:
    out = []
    for p, box in entries:
        try:
            out.append(open_image(p).crop(box))
        except (ImageError, OSError):
            out.append(None)
    return out


def part_profiles(path: Path):
    """The checkpoint's part profiles (``mcviz parts``), or None when it has none or a stale one."""
    from mcviz.explain.parts import profile_path

    return side_file("parts", path, profile_path(path))


def channel_labels(path: Path, channels) -> Optional[list[str]]:
    """Each channel's part over its own class's images ("crown 46 %"), when a profile exists."""
    prof = part_profiles(path)
    return [prof.own[c].label() for c in channels] if prof else None


@st.cache_resource(show_spinner=False, max_entries=4)
def _cub_test_annotations(root: str, input_json: str):
    """CUB's test split with its annotations under the model's transform, and an index by path
    (read once: part_locs.txt is large); None when there is no readable CUB folder."""
    from mcviz.data import CUB, EvalTransform

    try:
        ds = CUB(Path(root) / "CUB_200_2011", "test", EvalTransform.from_config(json.loads(input_json)),
                 annotations=True)
    except Exception:
        return None
    return ds, {str(p): i for i, (p, _) in enumerate(ds.samples)}


@st.cache_data(show_spinner=False, max_entries=64)
def gallery_annotation(image_path: str, root: str, input_cfg: dict):
    """Box and parts of a CUB test image, in the pixels of the model's crop, and the part names;
    None when the image is not one of the CUB test images under ``root``."""
    from mcviz.data.images import open_image

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


def current_annotation(meta: dict):
    """The annotation of the current image when it is a CUB gallery pick and the model is a CUB model."""
    image_path, root = st.session_state.get("image_path"), data_dir()
    if not image_path or root is None or meta.get("dataset") != "cub":
        return None
    return gallery_annotation(image_path, str(root), meta["input"])


def peak_parts(peaks, ann: dict, radius: float = 0.15) -> list[str]:
    """Which annotated part each peak ``(x, y)`` hits in this image (the rule of ``mcviz localize``)."""
    import torch

    from mcviz.explain.parts import NO_PART, OFF_BIRD, categorise_peaks

    cats = categorise_peaks(torch.tensor([list(map(float, p)) for p in peaks])[None],
                            torch.tensor(ann["box"])[None], torch.tensor(ann["parts"])[None], radius)[0]
    names = [*ann["part_names"], NO_PART, OFF_BIRD]
    return [names[int(c)] for c in cats]


def where(part: str) -> str:
    """``"on the **crown**"``, ``"**off the bird**"``, ``"**on the bird, near no part**"`` (markdown)."""
    from mcviz.explain.parts import NO_PART, OFF_BIRD

    return f"**{part}**" if part in (NO_PART, OFF_BIRD) else f"on the **{part}**"


def photo_with_parts(image, ann: dict, peaks=()):
    """The crop with the annotated parts (dots and names), the box, and the channels' peaks (+)."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(image).convert("RGB")
    scale = max(1, 448 // max(img.size))
    img = img.resize((img.width * scale, img.height * scale))
    d = ImageDraw.Draw(img)
    x, y, w, h = [v * scale for v in ann["box"]]
    d.rectangle([x, y, x + w, y + h], outline=(255, 255, 0), width=2)
    for (px, py, vis), name in zip(ann["parts"], ann["part_names"]):
        if vis > 0:
            px, py = px * scale, py * scale
            d.ellipse([px - 4, py - 4, px + 4, py + 4], fill=(0, 200, 255), outline=(0, 0, 0))
            d.text((px + 6, py - 6), name, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    for k, (px, py) in enumerate(peaks):
        px, py = px * scale, py * scale
        d.line([px - 7, py, px + 7, py], fill=(255, 60, 60), width=3)
        d.line([px, py - 7, px, py + 7], fill=(255, 60, 60), width=3)
        d.text((px + 8, py + 2), str(k + 1), fill=(255, 60, 60), stroke_width=2, stroke_fill=(0, 0, 0))
    return img
