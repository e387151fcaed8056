"""Explore: one image, one model, every channel of a class."""

import json
from functools import partial

import streamlit as st

import loaders
import widgets
from mcviz.evaluate.parts import peak_parts
from mcviz.explain import CAM_CLASSES
from mcviz.explain.render import class_maps_figure, panel_png, photo_with_parts

st.title("mcviz — what do a class's channels look at?")
st.caption(
    "With the Mutual-Channel Loss each class owns ξ feature channels. A **channel map** shows where one of them "
    "fires on the photo; the **merged map** is their cross-channel max. **h** (paper Eq. 7) measures how "
    "differently they fire: 1 when all channels of the class peak in the same place, ξ when they peak in ξ "
    "different places."
)
widgets.sidebar_settings()
path, meta = widgets.choose_checkpoint("explore_model")
methods = ["activation", "contribution", *CAM_CLASSES]
method = st.sidebar.selectbox("Map method", methods, key="explore_method",
                              help="activation: the raw channel (paper Fig. 5/7). contribution: the channel's share "
                                   "of the class score. Grad-CAM family: target = the channel's mean, at a layer "
                                   "before the MC features.")
ex = loaders.explainer(path)
layer = None
if method in CAM_CLASSES:
    layers = ex.layers()
    layer = st.sidebar.selectbox("Layer", layers, index=layers.index(ex.model.default_cam_layer()), key="explore_layer")
opacity = st.sidebar.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="explore_opacity")
top_k = st.sidebar.slider("Top-k predictions", 1, 10, 5, key="explore_topk")

data, name, img = widgets.require_image("explore", "Upload a photo of a bird or a car, or pick one from the gallery.")

preds = loaders.predictions(path, data, name, top_k)
left, right = st.columns([1, 2])
with left:
    st.image(img, caption=name, width="stretch")
with right:
    st.subheader("Predictions")
    # a static table: lighter in the browser than an interactive data grid
    st.table({"class": [p.name for p in preds], "probability": [f"{p.prob:.1%}" for p in preds]})

names = ex.class_names
choice = st.selectbox("Class to explain", range(len(names)), index=preds[0].index, format_func=lambda i: names[i],
                      key="explore_class")
cm = loaders.channel_maps(path, data, name, (int(choice),), method, layer)
cls = cm.classes[0]
st.subheader(f"{cls.class_name}: {len(cls.channels)} channels")
c1, c2 = st.columns(2)
c1.metric("h (channel diversity)", f"{cls.h:.2f}", help=f"between 1 and ξ = {len(cls.channels)}")
c2.metric("method", cm.method + (f" @ {cm.layer}" if cm.layer else ""))
if cm.note:
    st.warning(cm.note)
labels = loaders.channel_labels(path, cls.channels)
fig = class_maps_figure(cls, cm.image, opacity, labels=labels)
fig.layout.meta = name  # which upload the figure shows (the browser test waits on it)
st.plotly_chart(fig, width="stretch", key="explore_fig")
st.caption(f"Maps computed for {name}. Hover a map for its value; drag to zoom, double-click to reset. "
           "The + marks each channel's peak."
           + (" Each channel's title names the CUB part its peaks land on most often over its class's test "
              "images, with that share (`mcviz parts`)." if labels else ""))
ann = widgets.current_annotation(meta)
if ann is not None:
    hits = peak_parts(cls.peaks, ann)
    st.markdown("**In this image:** " + "; ".join(f"ch {ch} peaks {widgets.where(part)}"
                                                  for ch, part in zip(cls.channels, hits)))
    if st.toggle("Show the annotated parts on the photo", key="explore_show_parts"):
        st.image(photo_with_parts(cm.image, ann, cls.peaks),
                 caption="CUB's annotated parts (blue), the bird's box (yellow) and each channel's peak "
                         "(red +, numbered in channel order), on the model's crop")
st.subheader("Switch channels off")
ab = loaders.ablation(path)
if ab is None:
    st.info("This model's head keeps no channel means; `mcviz rank` stores them beside the checkpoint.")
else:
    effect = loaders.effect_ranking(path)
    top10 = loaders.ranking(path, cls.class_index, 10, by="effect").channels if effect is not None else []
    off_labels = dict(zip(cls.channels, labels or [""] * len(cls.channels)))
    o1, o2 = st.columns([2, 1])
    picked = o1.multiselect(f"Channels of {cls.class_name} to switch off", cls.channels, key="explore_off",
                            format_func=lambda ch: f"ch {ch}" + (f" · {off_labels[ch]}" if off_labels[ch] else ""))
    with_top = o2.toggle("and its top 10 channels by effect", key="explore_off_top", disabled=not top10,
                         help=None if top10 else "needs the checkpoint's effect ranking (`mcviz rank`)")
    off = sorted(set(picked) | (set(top10) if with_top else set()))
    st.caption("Off means the channel's pooled value is set to its mean (the head's BatchNorm running mean, its "
               "average over the training images), as in the effect ranking; only the head runs again.")
    if off:
        before, after = (p.numpy() for p in ab.probabilities(loaders.pooled(path, data, name), off))
        c = cls.class_index
        m1, m2 = st.columns(2)
        m1.metric(f"P({cls.class_name})", f"{after[c]:.1%}", delta=f"{100 * (after[c] - before[c]):+.1f} points",
                  help=f"{before[c]:.1%} with every channel on")
        now, was = int(after.argmax()), int(before.argmax())
        m2.metric("prediction", names[now], delta="unchanged" if now == was else f"was {names[was]}",
                  delta_color="off" if now == was else "inverse", delta_arrow="off")
        st.caption(f"{len(off)} channel(s) off: " + ", ".join(f"ch {ch}" for ch in off))
d1, d2 = st.columns(2)
# The PNG is drawn only when asked for (a callable): matplotlib would slow every rerun.
d1.download_button("Download panel (PNG)", partial(panel_png, cm, preds, opacity=opacity),
                   file_name=f"{path.stem}-maps.png", mime="image/png", on_click="ignore")
d2.download_button("Download numbers (JSON)", json.dumps(cm.record(preds, checkpoint=path.name), indent=2),
                   file_name=f"{path.stem}-maps.json", mime="application/json", on_click="ignore")
