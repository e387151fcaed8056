"""Everything the pages compute or read, cached by Streamlit and keyed by the checkpoint's path:
each loader takes a :class:`~pathlib.Path` and adds the file's modification time to the cache key
itself, so a retrained checkpoint (or a regenerated side file) is picked up without a restart.
Model work goes through one queue shared by all sessions (:func:`work_queue`).

A photo's results are keyed by its digest (:class:`photo.Photo`), never by its bytes: Streamlit
would hash the bytes again on every call (megabytes for a large photo). They are cached as
resources, shared by every session without a copy: ``st.cache_data`` unpickles a copy on every
call, which cost an upload more CPU than drawing its maps (the part profiles of 600 channels,
all ranked classes, the maps). Shared results are read-only (:func:`_read_only`): nothing may
change them in place.
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Optional

import streamlit as st

import settings
import timing
from photo import Photo
from mcviz.data.images import ImageError, open_image
from mcviz.explain import CAM_CLASSES, Explainer, top_channels
from mcviz.explain.effect import HeadAblation
from mcviz.explain.rankings import available_rankings, load_effect_ranking, ranking_scores
from mcviz.io import ATLAS, PARTS, RANKING, CheckpointError, CheckpointMeta, read_metadata, side_path
from serial_work import SerialWork


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


# -- checkpoints -------------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the model...", max_entries=16)
def _explainer(path: str, mtime: float) -> Explainer:
    return Explainer.from_checkpoint(path)


def explainer(path: Path) -> Explainer:
    """The checkpoint's explainer (reloaded when the file changes)."""
    return _explainer(str(path), _mtime(path))


@st.cache_resource(show_spinner=False, max_entries=256)
def _metadata(path: str, mtime: float) -> CheckpointMeta:
    return read_metadata(path)


def metadata(path: Path) -> tuple[Optional[CheckpointMeta], Optional[str]]:
    """``(metadata, None)``, or ``(None, why it cannot be read)``; never raises."""
    try:
        return _metadata(str(path), _mtime(path)), None
    except CheckpointError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"{path}: {exc}"


def list_checkpoints(dirs: list[Path]) -> list[Path]:
    """Every ``.safetensors`` file of ``dirs`` once: the default model first, unreadable ones last."""
    # listed again when a folder changes (a file added, removed or renamed changes its mtime), not on
    # every run of every session
    return list(_listing(tuple(dirs), tuple(_mtime(d) for d in dirs)))


@st.cache_resource(show_spinner=False, max_entries=16)
def _listing(dirs: tuple[Path, ...], mtimes: tuple[float, ...]) -> tuple[Path, ...]:
    seen, out = set(), []
    for d in dirs:
        if d.is_dir():
            for p in sorted(d.glob("*.safetensors")):
                if p.resolve() not in seen:
                    seen.add(p.resolve())
                    out.append(p)
    out.sort(key=lambda p: (p.name != settings.DEFAULT_CHECKPOINT, metadata(p)[1] is not None, str(p)))
    return tuple(out)


# -- model work -------------------------------------------------------------------------------
@st.cache_resource
def work_queue():
    """The one queue of model work shared by all sessions of this server."""
    return SerialWork(slots=int(os.environ.get("MCVIZ_WORK_SLOTS", "2")))


def _read_only(value):
    """``value`` with its numpy arrays (and those of its maps) marked read-only: a cached result is
    shared by every session, and a write to it would show in all of them."""
    import numpy as np

    if isinstance(value, np.ndarray):
        value.setflags(write=False)
    for attr in ("image", "raw", "maps", "merged_raw", "merged"):
        if isinstance(getattr(value, attr, None), np.ndarray):
            getattr(value, attr).setflags(write=False)
    for part in getattr(value, "classes", ()):
        _read_only(part)
    return value


@st.cache_resource(show_spinner=False, max_entries=32)
def _decode(key: str, _photo: Photo):
    if len(_photo.data) > settings.MAX_UPLOAD_BYTES:
        return None, (
            f"{_photo.name}: the file is {len(_photo.data) / 1e6:.0f} MB; the limit is "
            f"{settings.MAX_UPLOAD_BYTES // 2**20} MB"
        )
    try:
        return open_image(_photo.data, name=_photo.name, min_side=settings.DECODE_SIDE), None
    except ImageError as exc:
        return None, str(exc)


def decode(photo: Photo):
    """Decoded RGB image (no larger than needed) or an error message, never an exception. The image
    is shared: nothing may change it in place."""
    with timing.stage("decode"):
        return _decode(photo.digest + photo.name, photo)  # the name is in the messages


def _decoded(photo: Photo):
    img, err = decode(photo)
    if err:
        raise ValueError(err)
    return img


# about 2.7 MB an entry (the maps at the crop's size): 48 hold the two classes an upload shows for 24 photos
@st.cache_resource(show_spinner=False, max_entries=48)
def _channel_maps(
    path: str, mtime: float, key: str, classes: tuple[int, ...], method: str, layer: Optional[str], _photo: Photo
):
    img, ex = _decoded(_photo), _explainer(path, mtime)
    job = ("maps", path, mtime, key, classes, method, layer)
    return _read_only(work_queue().run(job, lambda: ex.channel_maps(img, list(classes), method=method, layer=layer)))


def channel_maps(path: Path, photo: Photo, classes: tuple[int, ...], method: str, layer: Optional[str]):
    """The maps of ``classes``' channels on ``photo``, by ``method`` at ``layer``."""
    # a spinner for the gradient methods only (a backward pass per channel): the others take milliseconds,
    # and a spinner is two more redraws of the page in every tab
    slow = st.spinner("Computing channel maps...") if method in CAM_CLASSES else nullcontext()
    with timing.stage("maps"), slow:
        return _channel_maps(str(path), _mtime(path), photo.digest, classes, method, layer, photo)


@st.cache_resource(show_spinner=False, max_entries=128)
def _ranked(path: str, mtime: float, key: str, _photo: Photo):
    img, ex = _decoded(_photo), _explainer(path, mtime)
    return work_queue().run(("predict", path, mtime, key), lambda: ex.predict(img, len(ex.class_names)))


def predictions(path: Path, photo: Photo, k: int):
    """The model's ``k`` most probable classes for ``photo``, with the out-of-distribution verdict
    (``.ood``, ``.flagged``) when the checkpoint is calibrated. Every class is ranked once per photo;
    each ``k`` is a slice of that."""
    from mcviz.explain.explainer import Predictions

    with timing.stage("network"):
        ranked = _ranked(str(path), _mtime(path), photo.digest, photo)
    return Predictions(ranked[:k], ood=ranked.ood)


def verdict(path: Path, meta: CheckpointMeta, photo: Photo):
    """The out-of-distribution verdict on the photo for this model (None without a calibration): its
    own check's when that flags the photo, else the check of its data set's referee model
    (``settings.OOD_REFEREES``) when that one does: a portrait is not a bird for any bird model."""
    import gallery

    own = predictions(path, photo, 1).ood
    if own is not None and own.flagged:
        return own
    found = [d / settings.OOD_REFEREES.get(gallery.gallery_kind(meta), "") for d in settings.checkpoint_dirs()]
    referee = next((p for p in found if p.is_file() and p.suffix == ".safetensors"), None)
    if referee is not None and referee.resolve() != path.resolve():
        ref = predictions(referee, photo, 1).ood
        if ref is not None and ref.flagged:
            return ref
    return own


def flagged(path: Path, meta: CheckpointMeta, photo: Photo) -> bool:
    """Whether the photo is not of what the model knows (:func:`verdict`)."""
    v = verdict(path, meta, photo)
    return v is not None and v.flagged


@st.cache_resource(show_spinner=False, max_entries=128)
def _pooled(path: str, mtime: float, key: str, _photo: Photo):
    img, ex = _decoded(_photo), _explainer(path, mtime)
    return _read_only(work_queue().run(("pooled", path, mtime, key), lambda: ex.pooled(img)).numpy())


def pooled(path: Path, photo: Photo):
    """The head's pooled input for this image, from the features its maps were computed from
    (the explainer keeps them), shared by every switch-off that follows."""
    with timing.stage("pooled"):
        return _pooled(str(path), _mtime(path), photo.digest, photo)


def same_as_activation(path: Path, photo: Photo, class_index: int, cm) -> bool:
    """Whether the maps ``cm`` (a CAM method's) are the class's activation maps again (every map
    correlates >= 0.98 with its activation map), as Grad-CAM's are at a layer followed only by a
    1x1 convolution up to the MC features. A model whose MC features end in a blur (``map_blur``)
    shows blurred activation maps, and the CAM there gives them before the blur: it is compared
    blurred the same way."""
    import numpy as np
    import torch

    from mcviz.core.models import MapBlur

    act = channel_maps(path, photo, (class_index,), "activation", None).classes[0]
    cams = cm.classes[0].maps
    ex = explainer(path)
    if ex.model.map_blur and all(c.shape == a.shape for a, c in zip(act.maps, cams)):
        # the blur is of feature cells; the maps here are at the crop's pixels
        cells = ex.features(ex.prepare(_decoded(photo))[0]).shape[-1]
        sigma = ex.model.map_blur * cams[0].shape[-1] / cells
        with torch.no_grad():
            cams = MapBlur(sigma)(torch.as_tensor(np.stack(cams), dtype=torch.float32)[None])[0].numpy()
    # the same up to where the ReLU after the 1x1 layer clips: correlation, not equality
    for a, b in zip(act.maps, cams):
        if a.std() < 1e-6 or b.std() < 1e-6:
            if abs(a.std() - b.std()) > 1e-6:
                return False
        elif np.corrcoef(a.ravel(), b.ravel())[0, 1] < 0.98:
            return False
    return True


# -- the part locator ----------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=2)
def _part_locator(path: str, mtime: float):
    from mcviz.io.locator_file import load_locator

    try:
        return load_locator(path)
    except (CheckpointError, OSError):
        return None


def part_locator():
    """``(locator, its metadata)`` of the shipped CUB part locator, or None when it is missing or unreadable."""
    path = settings.PART_LOCATOR
    return _part_locator(str(path), _mtime(path)) if path.exists() else None


@st.cache_resource(show_spinner=False, max_entries=128)
def _predicted_parts(path: str, mtime: float, key: str, loc_mtime: float, _photo: Photo):
    img, ex = _decoded(_photo), _explainer(path, mtime)
    locator, meta = _part_locator(str(settings.PART_LOCATOR), loc_mtime)
    job = ("parts", path, mtime, key)
    return MappingProxyType(work_queue().run(job, lambda: ex.locate_parts(img, locator, meta).annotation()))


def predicted_parts(path: Path, meta: CheckpointMeta, photo: Photo) -> Optional[Mapping]:
    """This photo's parts and bird box as the part locator predicts them, in the pixels of the model's
    crop (an annotation like CUB's, marked ``predicted``); None for a model that is not a CUB model
    (Stanford Cars has no part annotations to learn from), without the locator, or for a photo the
    model's out-of-distribution check flags (bird parts on a face would be invented)."""
    if meta.dataset != "cub" or part_locator() is None or flagged(path, meta, photo):
        return None
    with timing.stage("locator"):
        return _predicted_parts(str(path), _mtime(path), photo.digest, _mtime(settings.PART_LOCATOR), photo)


# -- side files ---------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=64)
def _side_file(kind: str, path: str, mtime: float, side_mtime: float):
    from mcviz.evaluate.consistency import CONSISTENCY, load_consistency
    from mcviz.evaluate.parts import load_part_profiles

    return {PARTS: load_part_profiles, RANKING: load_effect_ranking, CONSISTENCY: load_consistency}[kind](path)


def effect_ranking(path: Path):
    """The checkpoint's effect ranking (``mcviz rank``), or None when it has none or a stale one."""
    side = side_path(path, RANKING)
    return _side_file(RANKING, str(path), _mtime(path), _mtime(side)) if side.exists() else None


def part_profiles(path: Path):
    """The checkpoint's part profiles (``mcviz parts``), or None when it has none or a stale one."""
    side = side_path(path, PARTS)
    return _side_file(PARTS, str(path), _mtime(path), _mtime(side)) if side.exists() else None


def consistency(path: Path):
    """The checkpoint's part consistency and stability (``mcviz consistency``), or None."""
    from mcviz.evaluate.consistency import CONSISTENCY

    side = side_path(path, CONSISTENCY)
    return _side_file(CONSISTENCY, str(path), _mtime(path), _mtime(side)) if side.exists() else None


def consistency_text(c) -> str:
    """``"consistent: throat in 86 % · stable 31 %"`` (Huang et al.'s protocol, one channel)."""
    held = (
        f"consistent: {c.part} in {c.share:.0%}" if c.consistent else f"not consistent (best: {c.part}, {c.share:.0%})"
    )
    return f"{held} · stable {c.stability:.0%}"


def channel_labels(path: Path, channels) -> Optional[list[str]]:
    """The part each channel usually looks at over its own class's images, said as an average
    ("usually the crown, 46 %"; "most often off the bird, ..." where that dominates), when a profile exists,
    and its consistency and stability when measured ("consistent: crown in 86 % · stable 31 %")."""
    prof, cons = part_profiles(path), consistency(path)
    if prof is None and cons is None:
        return None
    out = []
    for ch in channels:
        words = [prof.own[ch].usual()] if prof else []
        found = cons.of(ch) if cons else None
        if found is not None:
            words.append(consistency_text(found))
        out.append("; ".join(words))
    return out


@st.cache_data(show_spinner=False, max_entries=16)
def _atlas(path: str, mtime: float) -> Optional[dict]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def atlas(path: Path) -> Optional[dict]:
    """The checkpoint's channel atlas (``mcviz atlas``), or None."""
    side = side_path(path, ATLAS)
    return _atlas(str(side), _mtime(side)) if side.exists() else None


@st.cache_data(show_spinner=False, max_entries=256)
def atlas_crops(entries: tuple) -> list:
    out = []
    for p, box in entries:
        try:
            out.append(open_image(p).crop(box))
        except (ImageError, OSError):
            out.append(None)
    return out


# -- rankings -----------------------------------------------------------------------------------
def rankings(path: Path) -> list[str]:
    """The rankings this model offers, the default first (see :data:`mcviz.explain.RANKINGS`)."""
    ex = explainer(path)
    return available_rankings(ex.model, ex.meta, effect_ranking(path))


@st.cache_data(show_spinner="Ranking channels...", max_entries=32)
def _scores_matrix(path: str, mtime: float, by: str):
    ex = _explainer(path, mtime)
    effect = effect_ranking(Path(path))
    scores, source = work_queue().run(
        ("scores", path, mtime, by), lambda: ranking_scores(by, ex.model, ex.meta, effect)
    )
    return scores.numpy(), source


def scores_matrix(path: Path, by: str):
    """The class x channel matrix of ranking ``by`` and its name; None for the activation ranking,
    which is measured one class at a time."""
    if by == "activation":
        return None
    return _scores_matrix(str(path), _mtime(path), by)


@st.cache_resource(show_spinner=False, max_entries=512)
def _ranking(path: str, mtime: float, ranking_mtime: float, class_index: int, k: int, by: Optional[str]):
    ex = _explainer(path, mtime)
    return top_channels((ex.model, ex.meta), class_index, k, by=by, effect=effect_ranking(Path(path)))


def ranking(path: Path, class_index: int, k: int = 10, by: Optional[str] = None):
    """The ``k`` top channels of the class by ranking ``by`` (the checkpoint's default ranking when None)."""
    return _ranking(str(path), _mtime(path), _mtime(side_path(path, RANKING)), class_index, k, by)


@st.cache_data(show_spinner="Running the class's test images through the model...", max_entries=64)
def _activation_ranking(path: str, mtime: float, root: str, class_index: int, k: int = 10):
    from mcviz.data import CUB, EvalTransform

    ex = _explainer(path, mtime)
    ds = CUB(Path(root) / "CUB_200_2011", "test", EvalTransform.from_config(ex.meta.input))
    return work_queue().run(
        ("ranking", path, mtime, root, class_index, k),
        lambda: top_channels((ex.model, ex.meta), class_index, k, dataset=ds, by="activation"),
    )


def activation_ranking(path: Path, root: Path, class_index: int, k: int = 10):
    """Top channels by mean activation over the class's CUB test images."""
    return _activation_ranking(str(path), _mtime(path), str(root), class_index, k)


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
    return _ablation(str(path), _mtime(path), _mtime(side_path(path, RANKING)))
