"""The app's shared widgets: the sidebar's settings, the model pickers, the image source.
Widgets that cannot go on (no checkpoint, no image) say why and stop the page."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import streamlit as st

import loaders
import settings
from mcviz.core.variants import FIGURE_ORDER, order_key
from mcviz.io import CheckpointMeta


def _visitor_folder(key: str) -> str:
    # values smuggled into the session count only where the operator allows folders
    return st.session_state.get(key, "").strip() if settings.folders_allowed() else ""


def checkpoint_dirs() -> list[Path]:
    """Where this session's checkpoints come from (the operator's folders, then the visitor's)."""
    return settings.checkpoint_dirs(_visitor_folder("extra_checkpoint_dir"))


def data_dir() -> Optional[Path]:
    """This session's data folder (for the gallery and the annotations), or None."""
    return settings.data_dir(_visitor_folder("data_dir"))


def checkpoints() -> list[Path]:
    return loaders.list_checkpoints(checkpoint_dirs())


def sidebar_settings() -> None:
    """The "Folders" inputs, only where the operator started the app with MCVIZ_APP_FOLDERS=1."""
    if not settings.folders_allowed():
        return
    with st.sidebar.expander("Folders", expanded=False):
        st.text_input("Extra checkpoint folder", key="extra_checkpoint_dir",
                      help="Checkpoints are read from checkpoints/, $MCVIZ_CHECKPOINTS and this folder.")
        st.text_input("Data folder (for the gallery)", key="data_dir",
                      help="A folder holding CUB_200_2011/; default $MCVIZ_DATA or ../shared/data.")


def label(path: Path) -> str:
    """``"name — data set variant, top-1 x%"`` for the pickers."""
    meta, _ = loaders.metadata(path)
    if not meta:
        return f"{path.stem} (unreadable)"
    acc = meta.metrics.top1
    acc_s = f", top-1 {acc:.1f}%" if isinstance(acc, (int, float)) else ""
    return f"{path.stem} — {meta.dataset or '?'} {meta.variant or '?'}{acc_s}"


def _require_checkpoints() -> list[Path]:
    ckpts = checkpoints()
    if not ckpts:
        st.warning("No checkpoint found. Put `.safetensors` checkpoints in `checkpoints/` or name a folder "
                   "in the sidebar.")
        st.stop()
    return ckpts


def choose_checkpoint(key: str) -> tuple[Path, CheckpointMeta]:
    """Sidebar model picker; stops the page with a message when nothing usable is there."""
    path = st.sidebar.selectbox("Model", _require_checkpoints(), format_func=label, key=key)
    meta, err = loaders.metadata(path)
    if err:
        st.error(f"This checkpoint cannot be loaded: {err}")
        st.stop()
    return path, meta


def compare_defaults(readable: list[Path], dataset: Optional[str], k: int = 6) -> list[Path]:
    """The Compare page's default models: the app's default model, then the seed-0 models
    of ``dataset`` in the paper's Fig. 7 order."""
    def key(p: Path):
        meta = loaders.metadata(p)[0]
        extra = bool(meta.diversity_options())
        rank = len(FIGURE_ORDER) if extra else order_key(meta.variant, FIGURE_ORDER)
        return (meta.seed != 0, p.name != settings.DEFAULT_CHECKPOINT, rank, str(p))

    same = [p for p in readable if loaders.metadata(p)[0] is not None and loaders.metadata(p)[0].dataset == dataset]
    return sorted(same, key=key)[:k]


def choose_checkpoints(key: str) -> list[Path]:
    """The Compare page's multi-model picker (readable checkpoints; the defaults preselected);
    stops the page when there is nothing to compare."""
    readable = [p for p in _require_checkpoints() if loaders.metadata(p)[1] is None]
    default_ds = loaders.metadata(readable[0])[0].dataset if readable else None
    chosen = st.multiselect("Models", readable, default=compare_defaults(readable, default_ds), format_func=label,
                            key=key)
    if not chosen:
        st.info("Pick at least one model.")
        st.stop()
    return chosen


def image_source(key: str) -> tuple[Optional[bytes], str]:
    """Upload or gallery pick; the choice is kept across pages in session state (a gallery
    pick also keeps its file path in ``image_path``, for its part annotations)."""
    up = st.file_uploader("Upload a photo (PNG, JPEG, WebP, BMP)", type=settings.ACCEPTED, key=f"upload_{key}")
    if up is not None:
        data = up.getvalue()
        if st.session_state.get("image_sig") != (up.name, len(data), hash(data)):
            st.session_state["image_sig"] = (up.name, len(data), hash(data))
            st.session_state["image"] = (data, up.name)
            st.session_state["image_path"] = None  # an upload: no annotations
    root = data_dir()
    items = loaders.gallery(str(root)) if root else []
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
    img, err = loaders.decode(data, name)
    if err:
        st.error(f"Cannot use this file: {err}")
        st.stop()
    return data, name, img


def current_annotation(meta: CheckpointMeta):
    """The annotation of the current image when it is a CUB gallery pick and the model is a CUB model."""
    image_path, root = st.session_state.get("image_path"), data_dir()
    if not image_path or root is None or meta.dataset != "cub":
        return None
    return loaders.gallery_annotation(image_path, str(root), meta.input)


def where(part: str) -> str:
    """``"on the **crown**"``, ``"**off the bird**"``, ``"**on the bird, near no part**"`` (markdown)."""
    from mcviz.evaluate.parts import NO_PART, OFF_BIRD

    return f"**{part}**" if part in (NO_PART, OFF_BIRD) else f"on the **{part}**"
