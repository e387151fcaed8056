"""The app's shared widgets: the sidebar's settings, the model pickers, the image source.
Widgets that cannot go on (no checkpoint, no image) say why and stop the page."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import streamlit as st
from PIL import Image

import gallery
import loaders
import photo
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
        st.text_input(
            "Extra checkpoint folder",
            key="extra_checkpoint_dir",
            help="Checkpoints are read from checkpoints/, $MCVIZ_CHECKPOINTS and this folder.",
        )
        st.text_input(
            "Data folder (for the gallery)",
            key="data_dir",
            help="A folder holding CUB_200_2011/; default $MCVIZ_DATA or ../shared/data.",
        )


def label(path: Path) -> str:
    """``"name · 69.85 %"`` for the pickers (the two decimals the results tables give): short enough
    for the sidebar (the variant in words is the picker's caption, :func:`describe`)."""
    meta, _ = loaders.metadata(path)
    if not meta:
        return f"{path.stem} (unreadable)"
    acc = meta.metrics.top1
    return f"{path.stem} · {acc:.2f} %" if isinstance(acc, (int, float)) else path.stem


def describe(meta: CheckpointMeta) -> str:
    """The model in words: data set, loss (the anchored L_div told from plain MC-Loss), head."""
    from mcviz.io.describe import dataset_name, head_name, variant_name

    return f"{dataset_name(meta)} · {variant_name(meta)} · {head_name(meta)}"


def _require_checkpoints() -> list[Path]:
    ckpts = checkpoints()
    if not ckpts:
        st.warning(
            "No checkpoint found. Put `.safetensors` checkpoints in `checkpoints/` or name a folder in the sidebar."
        )
        st.stop()
    return ckpts


MODEL_KEY = "model"  # the one model choice of Explore, Compare, Channels and Models
_KEPT = "_model"  # survives pages that do not draw the picker (Streamlit drops a widget's state there)


def _keep_model() -> None:
    st.session_state[_KEPT] = st.session_state[MODEL_KEY]


def choose_checkpoint() -> tuple[Path, CheckpointMeta]:
    """The sidebar's model picker, one choice shared by every page; stops the page with a message
    when nothing usable is there."""
    ckpts = _require_checkpoints()
    kept = st.session_state.get(_KEPT)
    if kept in ckpts:
        st.session_state[MODEL_KEY] = kept
    path = st.sidebar.selectbox("Model", ckpts, format_func=label, key=MODEL_KEY, on_change=_keep_model)
    st.session_state[_KEPT] = path
    meta, err = loaders.metadata(path)
    if err:
        st.error(f"This checkpoint cannot be loaded: {err}")
        st.stop()
    st.sidebar.caption(describe(meta))
    return path, meta


def follow(key: str, context, value) -> None:
    """Set widget ``key`` to ``value`` whenever ``context`` (the photo, the model...) differs
    from the last run's, so that a widget never shows a choice made for another photo or model;
    within one context the visitor's pick stands. Call it before drawing the widget."""
    if st.session_state.get(_context_key(key)) != context:
        st.session_state[_context_key(key)] = context
        # set only when it differs: a value set through the state is sent to the browser again, and
        # the widget is drawn again in every tab
        if st.session_state.get(key, _UNSET) != value:
            st.session_state[key] = value


_UNSET = object()


def _context_key(key: str) -> str:
    """Where :func:`follow` keeps the context widget ``key``'s value was set for."""
    return f"_{key}_context"


def followed(key: str, context, value):
    """What widget ``key`` will hold once :func:`follow` has run for ``context`` with ``value``: the
    visitor's pick where it was made for this context, else ``value``. For work done before the widget
    is drawn."""
    if st.session_state.get(_context_key(key)) == context:
        return st.session_state.get(key, value)
    return value


def markdown_table(columns: dict[str, list]) -> str:
    """A static table as markdown: one element of the page, which a browser tab draws several times
    faster than ``st.table`` (a component per cell) when an upload changes it. Cells are text; a ``|``
    in one is escaped."""
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")
    head = list(columns)
    rows = zip(*columns.values())
    lines = ["| " + " | ".join(map(cell, head)) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(map(cell, r)) + " |" for r in rows])


def image_id() -> Optional[str]:
    """The current photo's identity (None before there is one)."""
    found = photo.current()
    return None if found is None else found.digest


def current_photo(where=None) -> None:
    """The photo the page works on, as a thumbnail with its name and where it came from."""
    found = photo.current()
    if found is None:
        return
    img, err = loaders.decode(found)
    if err:
        return
    (where or st).image(img, caption=f"current photo: {found.name} ({found.origin})", width=160)


def compare_defaults(
    readable: list[Path], dataset: Optional[str], k: int = 6, first: Optional[Path] = None
) -> list[Path]:
    """The Compare page's default models: ``first`` (the sidebar's model), the app's default
    model, then the seed-0 models of ``dataset`` in the paper's Fig. 7 order."""

    def key(p: Path):
        meta = loaders.metadata(p)[0]
        extra = bool(meta.diversity_options())
        rank = len(FIGURE_ORDER) if extra else order_key(meta.variant, FIGURE_ORDER)
        return (p != first, meta.seed != 0, p.name != settings.DEFAULT_CHECKPOINT, rank, str(p))

    same = [p for p in readable if loaders.metadata(p)[0] is not None and loaders.metadata(p)[0].dataset == dataset]
    return sorted(same, key=key)[:k]


def choose_checkpoints(key: str, model: Path, meta: CheckpointMeta) -> list[Path]:
    """The Compare page's multi-model picker (readable checkpoints), preset to the defaults of the
    sidebar's ``model`` and its data set whenever that model changes; stops the page when there
    is nothing to compare."""
    readable = [p for p in _require_checkpoints() if loaders.metadata(p)[1] is None]
    follow(key, str(model), compare_defaults(readable, meta.dataset, first=model))
    chosen = st.multiselect("Models", readable, format_func=label, key=key)
    if not chosen:
        st.info("Pick at least one model.")
        st.stop()
    return chosen


def gallery_items(meta: Optional[CheckpointMeta]) -> tuple[list[tuple[str, str]], str]:
    """``(the gallery's (label, path) items, what they are)`` for the model: CUB test images for a
    bird model, Stanford Cars test images for a car model (one per class), none for other data."""
    root = data_dir()
    if root is None:
        return [], ""
    kind = gallery.gallery_kind(meta)
    return gallery.gallery(str(root), kind), {"cub": "CUB test image", "cars": "Stanford Cars test image"}.get(kind, "")


def image_source(key: str, meta: Optional[CheckpointMeta] = None) -> Optional[photo.Photo]:
    """Upload or gallery pick (the gallery of ``meta``'s data set); the choice is kept across pages
    as the session's :class:`photo.Photo` (a gallery pick with its file, for its part annotations)."""
    # The uploader is emptied once its file is taken: a new key each time (its file is read from the
    # state before it is drawn). Streamlit's single-file uploader reruns the page twice when a file
    # replaces another (once with the old file removed, then with the new one), once when it was empty.
    gen = st.session_state.get("upload_gen", 0)
    up = st.session_state.get(f"upload_{key}_{gen}")
    if up is not None:
        photo.use(photo.Photo.uploaded(up.getvalue(), up.name))
        gen = st.session_state["upload_gen"] = gen + 1
    # Streamlit's uploader itself lists the formats and the limit (server.maxUploadSize, which
    # .streamlit/config.toml and scripts/start.sh set to settings.MAX_UPLOAD_MB)
    st.file_uploader("Upload a photo", type=settings.ACCEPTED, key=f"upload_{key}_{gen}")
    items, what = gallery_items(meta)
    if items:
        labels = ["—"] + [lbl for lbl, _ in items]
        # the picker shows the current gallery photo, whichever page picked it, and "—" otherwise
        by_path = {p: lbl for lbl, p in items}
        now = photo.current()
        follow(f"gallery_{key}", image_id(), by_path.get((now.path if now else None) or "", "—"))
        pick = st.selectbox(f"...or pick a {what}", labels, key=f"gallery_{key}")
        if pick != "—":
            path = dict(items)[pick]
            if (now.path if now else None) != path:
                photo.use(photo.Photo.from_gallery(path))
    return photo.current()


def require_image(key: str, prompt: str, meta: Optional[CheckpointMeta] = None) -> tuple[photo.Photo, Image.Image]:
    """``(the photo, its decoded RGB image)``; otherwise a message and the page stops."""
    found = image_source(key, meta)
    if found is None:
        st.info(prompt)
        st.stop()
    img, err = loaders.decode(found)
    if err:
        st.error(f"Cannot use this file: {err}")
        st.stop()
    return found, img


def warn_if_small(img, meta: CheckpointMeta) -> None:
    """A photo much smaller than the model's crop is blown up: its maps show less than they seem to.
    The bar is half the crop, or the shorter side of the model's own data set's photos where that is
    less (the shipped car models learned from Stanford Cars photos 128 px on their shorter side:
    a photo that size is what they know, not a blown-up one)."""
    crop = int(meta.input.get("crop") or 0)
    root = data_dir()
    own = gallery.gallery_side(str(root), gallery.gallery_kind(meta)) if root else None
    if min(img.size) < min(crop / 2, own or crop):
        st.warning(
            f"This photo is {img.width} x {img.height} px, less than half the {crop} px the model looks at: "
            "it is blown up, so the prediction and the maps rest on little detail."
        )


def current_annotation(meta: CheckpointMeta):
    """The annotation of the current image when it is a CUB gallery pick and the model is a CUB model."""
    found, root = photo.current(), data_dir()
    image_path = found.path if found else None
    if not image_path or root is None or meta.dataset != "cub":
        return None
    return gallery.gallery_annotation(image_path, str(root), meta.input)


def ood_warning(path: Path, meta: CheckpointMeta, found: photo.Photo) -> bool:
    """The out-of-distribution check's warning, when it flags the photo (see mcviz.explain.ood and
    loaders.verdict); returns whether it did."""
    v = loaders.verdict(path, meta, found)
    if v is not None and v.flagged:
        st.error(v.message(), icon="⚠️")
        return True
    return False


def short_part(label: Optional[str]) -> str:
    """ "usually the throat, 30 %" -> "throat": what fits a chip."""
    if not label:
        return ""
    return label.removeprefix("usually ").removeprefix("the ").split(",")[0].strip()


UNITS = {"activation": "activation", "contribution": "share of the class score"}


def units(method: str) -> str:
    """What a map's values are, for its colour bar."""
    return UNITS.get(method, f"{method} value")


def where(part: str) -> str:
    """``"on the **crown**"``, ``"**off the bird**"``, ``"**on the bird, near no part**"`` (markdown)."""
    from mcviz.evaluate.parts import NO_PART, OFF_BIRD

    return f"**{part}**" if part in (NO_PART, OFF_BIRD) else f"on the **{part}**"
