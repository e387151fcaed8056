"""Explore: one image, one model, every channel of a class."""

import json
from dataclasses import dataclass
from functools import partial
from typing import Optional

import streamlit as st

import loaders
import timing
import widgets
from mcviz.evaluate.parts import peak_parts
from mcviz.explain import CAM_CLASSES
from mcviz.explain.maps_image import class_maps_image
from mcviz.explain.render import SCALES, class_maps_figure, panel_png, photo_with_parts

st.title("mcviz — what do a class's channels look at?")
st.caption(
    "With the Mutual-Channel Loss each class owns ξ feature channels. A **channel map** shows where one of them "
    "fires on the photo; the **merged map** is their cross-channel max. **h** (paper Eq. 7) measures how little "
    "the class's maps overlap once each is softmaxed over the photo: 1 when they are identical, ξ when they do "
    "not overlap at all. Broad maps give a low h even when their peaks lie far apart: h measures overlap, not "
    "where the peaks are."
)
timing.begin("explore")
widgets.sidebar_settings()
path, meta = widgets.choose_checkpoint()
# Drawn in the Display popover (pickers): a closed popover costs a tab nothing when an upload redraws the
# page, where each widget outside one costs it 3-8 ms (docs/performance.md). Read before it is drawn.
TOP_K = 5
top_k = st.session_state.get("explore_topk", TOP_K)

# An upload draws the page again in the visitor's tab, and each element the upload changes costs
# the tab a redraw (docs/performance.md): what a photo changes is said in few elements (a table and
# its lines as one markdown), and what it does not change is drawn as the same element as before.
photo, img = widgets.require_image("explore", "Upload a photo of a bird or a car, or pick one from the gallery.", meta)
name = photo.name
timing.photo(photo.digest)
widgets.warn_if_small(img, meta)
ex = loaders.explainer(path)
names = ex.class_names
preds = loaders.predictions(path, photo, max(top_k, 2))
context = (photo.digest, str(path))  # what every choice below is made for
TOP = -1  # the class picker's first option: whichever class is the top prediction


def beside(class_index: int):
    """The prediction the evidence shows beside the class explained: the top one, or the runner-up
    when the class explained is the top one."""
    return preds[1] if preds[0].index == class_index else preds[0]


def _where_in_photo(cls, ann) -> list[str]:
    """The part under each channel's peak in this photo (gallery images: CUB's annotations)."""
    return [widgets.where(p) for p in peak_parts(cls.peaks, ann)] if ann is not None else []


def consistent_line(cls) -> list[str]:
    """Which of the class's channels hold one part across its photos (Huang et al.'s consistency)."""
    cons = loaders.consistency(path)
    if cons is None:
        return []
    found = [(ch, cons.of(ch)) for ch in cls.channels]
    held = [f"ch {ch} ({c.part}, {c.share:.0%})" for ch, c in found if c is not None and c.consistent]
    loose = [f"ch {ch}" for ch, c in found if c is not None and not c.consistent]
    return [
        "**Consistent channels** (one part hit in at least 80 % of its class's test photos, "
        f"Huang et al. 2023): {', '.join(held) or 'none'}"
        + (f"; not consistent: {', '.join(loose)}" if loose else "")
        + f". Over all classes: {cons.consistency:.1f} % consistent, {cons.stability:.1f} % stable under noise."
    ]


def part_lines(cls) -> list[str]:
    """The consistency line, then the part under each channel's peak in this photo: from the part
    locator's prediction (any bird photo) and, for a CUB gallery image, from its annotations."""
    lines = consistent_line(cls)
    ann, pred = annotated, predicted
    where = lambda a: "; ".join(f"ch {ch} peaks {w}" for ch, w in zip(cls.channels, _where_in_photo(cls, a)))
    if pred is not None:
        lines.append("**In this image** (parts predicted by the part locator): " + where(pred))
    if ann is not None:
        lines.append("**In this image** (CUB's annotated parts): " + where(ann))
    return lines


def parts_in_photo(cls, cm, lines: list[str]) -> None:
    """The part lines (:func:`part_lines`) as one element, and the parts on the photo when asked for."""
    ann, pred = annotated, predicted
    if lines:
        st.markdown("\n\n".join(lines))
    if meta.dataset != "cub":
        st.caption(
            "Part names per photo exist for bird models only: the part locator learned from CUB's part "
            "annotations, and Stanford Cars has none, so a car model's peaks are not named."
        )
    elif flagged and ann is None:
        st.markdown(
            "**In this image**: no parts named. The photo does not look like a bird of CUB (the warning "
            "above), so the part locator would invent a bird's parts on whatever is there."
        )
    if (ann or pred) and st.toggle("Show the parts on the photo", key="explore_show_parts"):
        shown = [
            (a, c)
            for a, c in (
                (ann, "CUB's annotated parts (blue)"),
                (
                    pred,
                    "parts predicted by the part locator (green, with each one's visibility; grey rings: parts it "
                    "calls hidden)",
                ),
            )
            if a is not None
        ]
        for col, (a, c) in zip(st.columns(len(shown)), shown):
            # at its own size (the crop enlarged 2x at most), never blown up to the column's width
            col.image(
                photo_with_parts(cm.image, a, cls.peaks, [f"ch {ch}" for ch in cls.channels]),
                width="content",
                caption=f"{c}, the bird's box (yellow) and each channel's peak (red +, named by its channel), "
                "on the model's crop",
            )


def evidence_tables(cls) -> list[str]:
    """A class-connected model: the class picked above as its channels' evidence, beside the top
    prediction (or, when the pick is the top prediction, the runner-up); one markdown each."""
    from mcviz.explain.evidence import class_evidence

    pooled = loaders.pooled(path, photo)
    prof = loaders.part_profiles(path)
    # the part under each channel's activation peak in this photo: annotated (gallery) or predicted
    ann = annotated or predicted
    probs = loaders.predictions(path, photo, len(names))
    prob = {p.index: p.prob for p in probs}
    other = beside(cls.class_index)
    shown = [
        (cls.class_index, "picked" if cls.class_index != preds[0].index else "picked (the top prediction)"),
        (other.index, "top prediction" if other.index == preds[0].index else "runner-up"),
    ]
    out = []
    for index, title in shown:
        ev = class_evidence(ex.model, pooled, index)
        table = {"channel": [f"ch {ch}" for ch in ev.channels]}
        if ann is not None:
            c = loaders.channel_maps(path, photo, (index,), "activation", None).classes[0]
            here = dict(zip(c.channels, peak_parts(c.peaks, ann)))
            table["in this photo"] = [here.get(ch, "–") for ch in ev.channels]
        if prof is not None:  # a model without part profiles (a car model) has no usual part to show
            # a narrow column: the tables stand two side by side
            table["usually (class's test photos)"] = [
                prof.own[ch].usual().removeprefix("usually ").removeprefix("the ") for ch in ev.channels
            ]
        table |= {
            "pooled": [f"{v:+.3f}" for v in ev.pooled],
            "weight": [f"{w:+.3f}" for w in ev.weights],
            "evidence": [f"{v:+.3f}" for v in ev.values],
        }
        # the class, its channels' terms and their sum: one element
        out.append(
            f"**{title}: {names[index]}** ({prob.get(index, 0.0):.1%})\n\n"
            + widgets.markdown_table(table)
            + f"\n\n:small[:gray[bias {ev.bias:+.3f} + evidence {sum(ev.values):+.3f} = **{ev.total:.4f}**; "
            f"the model's score is {ev.score:.4f} (they differ by {abs(ev.total - ev.score):.1e}).]]"
        )
    return out


def evidence_section(tables: list[str]) -> None:
    """The evidence tables (:func:`evidence_tables`) side by side."""
    st.subheader("Why this prediction: each channel's evidence")
    st.caption(
        "This model is **class-connected**: a class's score is its bias plus the evidence of its own channels "
        "alone (each channel's pooled value, normalised, times its weight). So these terms *are* the "
        "decision, not an estimate of it."
    )
    for col, table in zip(st.columns(2), tables):
        col.markdown(table)


def switch_off_inputs(class_index: int):
    """``(the head's ablation or None, the class's top 10 channels by effect)``."""
    ab = loaders.ablation(path)
    effect = loaders.effect_ranking(path) if ab is not None else None
    return ab, loaders.ranking(path, class_index, 10, by="effect").channels if effect is not None else []


@st.fragment
def switch_off_section(cls, labels) -> None:
    """Switching channels off reruns only the head, and only this section."""
    ab, top10 = switch_off_inputs(cls.class_index)
    st.subheader("Switch channels off")
    if ab is None:
        st.info(
            "This model's head keeps no channel means, so a channel cannot be switched off to its mean; "
            "`mcviz rank` measures and stores them beside the checkpoint."
        )
        return
    # a chip holds a few words: "ch 417 · throat", not the whole "usually the throat, 30 %"
    off_labels = {ch: widgets.short_part(lbl) for ch, lbl in zip(cls.channels, labels or [""] * len(cls.channels))}
    # in a popover: a closed one costs a tab nothing when an upload redraws the page
    box = st.popover("Choose channels", icon=":material/toggle_off:")
    # a choice made for one class, photo or model is never shown for another
    widgets.follow("explore_off", (*context, cls.class_index), [])
    widgets.follow("explore_off_top", (*context, cls.class_index), False)
    picked = box.multiselect(
        f"Channels of {cls.class_name} to switch off",
        cls.channels,
        key="explore_off",
        format_func=lambda ch: f"ch {ch}" + (f" · {off_labels[ch]}" if off_labels[ch] else ""),
    )
    with_top = box.toggle(
        f"and its top {len(top10) or 10} channels by effect",
        key="explore_off_top",
        disabled=not top10,
        help=(
            "the channels whose measured effect on the class's score is not zero, at most 10"
            + (": for this class-connected model, the class's own channels" if ex.model.class_connected else "")
            if top10
            else "needs the checkpoint's effect ranking (`mcviz rank`)"
        ),
    )
    off = sorted(set(picked) | (set(top10) if with_top else set()))
    st.caption(
        "Off means the channel's pooled value is set to its mean (the head's BatchNorm running mean, its "
        "average over the training images), as in the effect ranking; only the head runs again."
    )
    if not off:
        return
    pooled = loaders.pooled(path, photo)
    before, after = (p.numpy() for p in ab.probabilities(pooled, off))
    c = cls.class_index
    change = round(100 * (after[c] - before[c]), 1)
    m1, m2, m3 = st.columns(3)
    # no arrow for no change: a green up-arrow on "+0.0" reads as a gain
    m1.metric(
        f"P({cls.class_name})",
        f"{after[c]:.1%}",
        delta=f"{change:+.1f} points" if change else None,
        help=f"{before[c]:.1%} with every channel on",
    )
    import torch

    p = torch.tensor(pooled)[None]
    mask = torch.zeros(p.shape[1], dtype=torch.bool)
    mask[off] = True
    s_before, s_after = float(ab.logits(p)[0, c]), float(ab.logits(p, mask)[0, c])
    m2.metric(
        f"score of {cls.class_name}",
        f"{s_after:.4f}",
        delta=f"{s_after - s_before:+.4f}" if round(s_after - s_before, 4) else None,
        help=f"{s_before:.4f} with every channel on"
        + (" (exact: the head is class-connected)" if ex.model.class_connected else ""),
    )
    now, was = int(after.argmax()), int(before.argmax())
    m3.metric(
        "prediction",
        names[now],
        delta="unchanged" if now == was else f"was {names[was]}",
        delta_color="off" if now == was else "inverse",
        delta_arrow="off",
    )
    st.caption(f"{len(off)} channel(s) off: " + ", ".join(f"ch {ch}" for ch in off))


@dataclass(frozen=True)
class View:
    """What the pickers ask for: the class (its index), the map method and its layer, the overlay's
    opacity, the colour scale and whether the maps are interactive."""

    choice: int
    method: str
    layer: Optional[str]
    opacity: float
    scale: str
    interactive: bool


OPACITY, SCALE = 0.5, next(iter(SCALES))  # the Display popover's defaults


def planned() -> View:
    """What the pickers will hold once drawn (:func:`pickers`, with follow's rules): the maps and the
    tables are computed from it before anything of the section is drawn, so that they reach the tab in
    one burst (see the end of this page)."""
    pick = widgets.followed("explore_class", context, TOP)
    method = st.session_state.get("explore_method", "activation")
    layer = None
    if method in CAM_CLASSES:
        layer = widgets.followed("explore_layer", str(path), ex.model.default_cam_layer())
    return View(
        preds[0].index if pick == TOP else int(pick),
        method,
        layer,
        st.session_state.get("explore_opacity", OPACITY),
        st.session_state.get("explore_scale", SCALE),
        st.session_state.get("explore_interactive", False),
    )


def pickers() -> View:
    """The class, the map method and its layer, and the Display popover."""
    # a column for the layer only where the method has one: each column is one more element per upload
    cam = st.session_state.get("explore_method") in CAM_CLASSES
    m1, m2, *m3, m4 = st.columns([2, 1, 1, 1] if cam else [2, 1, 2], vertical_alignment="bottom")
    # the class to explain is the top prediction of each new photo and model, unless picked for this one;
    # "the top prediction" rather than its name, so that a new photo leaves the picker as it was
    widgets.follow("explore_class", context, TOP)
    pick = m1.selectbox(
        "Class to explain",
        [TOP, *range(len(names))],
        format_func=lambda i: "the top prediction" if i == TOP else names[i],
        key="explore_class",
    )
    choice = preds[0].index if pick == TOP else pick
    # Compare opens on this class for this photo (a widget's own state is dropped on other pages)
    st.session_state["class_pick"] = (photo.digest, meta.dataset, int(choice))
    methods = ["activation", "contribution", *CAM_CLASSES]
    method = m2.selectbox(
        "Map method",
        methods,
        key="explore_method",
        help="activation: the raw channel (paper Fig. 5/7). contribution: the channel's share "
        "of the class score. Grad-CAM family: target = the channel's mean, at a layer "
        "before the MC features.",
    )
    layer = None
    if method in CAM_CLASSES:
        layers = ex.layers()
        widgets.follow("explore_layer", str(path), ex.model.default_cam_layer())
        layer = (m3[0] if m3 else m4).selectbox("Layer", layers, key="explore_layer")
    with m4.popover("Display", icon=":material/tune:"):
        opacity = st.slider("Overlay opacity", 0.0, 1.0, OPACITY, 0.05, key="explore_opacity")
        if st.slider("Top-k predictions", 1, 10, TOP_K, key="explore_topk") != top_k:
            st.rerun()  # the predictions table lies outside this fragment: the page is drawn again
        scale = st.radio("Colour scale", list(SCALES), format_func=SCALES.get, key="explore_scale")
        # a picture by default: an interactive figure costs the browser several times more per upload
        interactive = st.toggle(
            "Interactive maps", key="explore_interactive", help="hover a map for its values, drag to zoom"
        )
    return View(int(choice), method, layer, opacity, scale, interactive)


@dataclass
class Shown:
    """What the section shows for a :class:`View`, computed before any of it is drawn."""

    view: View
    cm: object  # the ClassMaps of the class
    labels: Optional[list[str]]
    maps: object  # the plotly figure or the picture
    lines: list[str]
    evidence: Optional[list[str]]
    same_as_activation: bool


_prepared: dict[View, Shown] = {}  # this run's (a fragment rerun reuses its page run's namespace)


def prepare(view: View) -> Shown:
    """The maps, their figure or picture, the part lines and the evidence tables for ``view``."""
    if view not in _prepared:
        _prepared[view] = _prepare(view)
    return _prepared[view]


def _prepare(view: View) -> Shown:
    cm = loaders.channel_maps(path, photo, (view.choice,), view.method, view.layer)
    cls = cm.classes[0]
    labels = loaders.channel_labels(path, cls.channels)
    units = widgets.units(cm.method)
    draw = class_maps_figure if view.interactive else class_maps_image
    with timing.stage("figure"):
        maps = draw(cls, cm.image, view.opacity, labels=labels, scale=view.scale, units=units)
    if view.interactive:
        maps.layout.meta = name  # which upload the figure shows (the browser test waits on it)
    same = (
        view.method in CAM_CLASSES
        and view.method != "eigencam"
        and loaders.same_as_activation(path, photo, view.choice, cm)
    )
    evidence = evidence_tables(cls) if ex.model.class_connected else None
    switch_off_inputs(cls.class_index)
    return Shown(view, cm, labels, maps, part_lines(cls), evidence, same)


@st.fragment
def class_section() -> None:
    """The maps of one class by one method: a class or method change reruns this section only."""
    shown = prepare(planned())
    view = pickers()
    if view != shown.view:  # a picker did not hold what was planned (an option gone): show what it holds
        shown = prepare(view)
    cm, labels = shown.cm, shown.labels
    cls = cm.classes[0]
    if shown.same_as_activation:
        st.info(
            f"At {view.layer} this method gives the activation maps themselves: between it and the MC features "
            "lies only the 1x1 MC layer (with its BatchNorm and ReLU"
            + (", then the model's blur of the maps" if ex.model.map_blur else "")
            + "), so the gradient weights every position alike. Pick an earlier layer (block5, block6) to see "
            "something else."
        )
    st.subheader(f"{cls.class_name}: {len(cls.channels)} channels")
    # one line, not two metrics in a row: three elements fewer for each tab to draw per upload
    st.markdown(
        f"**h** (channel diversity) **{cls.h:.2f}**, between 1 and ξ = {len(cls.channels)} · maps by "
        f"**{cm.method}**" + (f" at **{cm.layer}**" if cm.layer else "")
    )
    if cm.note:
        st.warning(cm.note)
    with timing.stage("send"):
        if view.interactive:
            st.plotly_chart(shown.maps, width="stretch", key="explore_fig")
        else:
            st.image(shown.maps, width="content", caption=f"Maps computed for {name}")
    st.caption(
        (
            f"Maps computed for {name}. Hover a map for its value; drag to zoom, double-click to reset. "
            if view.interactive
            else "Switch on **Interactive maps** (Display) for each position's value and zoom. "
        )
        + "The + marks each channel's peak."
        + (
            " A channel's title is an **average, not this photo**: the CUB part its peaks usually land on over "
            "its class's test images, with that share (`mcviz parts`)."
            if labels
            else ""
        )
    )
    parts_in_photo(cls, cm, shown.lines)
    if shown.evidence:
        evidence_section(shown.evidence)
    switch_off_section(cls, labels)
    row = st.container(horizontal=True)
    by_channel = dict(zip(cls.channels, labels)) if labels else None
    # The PNG is drawn only when asked for (a callable): matplotlib would slow every rerun.
    row.download_button(
        "Download panel (PNG)",
        partial(panel_png, cm, preds, opacity=view.opacity, labels=by_channel),
        file_name=f"{path.stem}-maps.png",
        mime="image/png",
        on_click="ignore",
    )
    row.download_button(
        "Download numbers (JSON)",
        # a callable, as the PNG: bytes in the page would be a new element in every tab after each upload
        lambda: json.dumps(cm.record(preds, by_channel, checkpoint=path.name), indent=2),
        file_name=f"{path.stem}-maps.json",
        mime="application/json",
        on_click="ignore",
    )


# What the photo needs from the model is computed before the page draws anything the photo changes: the
# tab redraws the page each time a batch of elements arrives, so elements that arrive together cost it one
# redraw, elements with a computation between them one each.
loaders.verdict(path, meta, photo)
annotated, predicted = widgets.current_annotation(meta), loaders.predicted_parts(path, meta, photo)
prepare(planned())  # the class section's maps, their picture, the part lines and the evidence
left, right = st.columns([1, 2])
with left:
    st.image(img, caption=name, width="stretch")
with right:
    st.subheader("Predictions")
    st.markdown(
        widgets.markdown_table(
            {"class": [p.name for p in preds[:top_k]], "probability": [f"{p.prob:.1%}" for p in preds[:top_k]]}
        )
    )
flagged = widgets.ood_warning(path, meta, photo)
class_section()
timing.end()
