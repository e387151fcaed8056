"""Compare: the same image through several checkpoints, side by side (paper Fig. 7)."""

import streamlit as st

import loaders
import widgets
from mcviz.evaluate.parts import peak_parts
from mcviz.explain.maps_image import class_maps_image
from mcviz.explain.render import SCALES, class_maps_figure
from mcviz.io.describe import head_name, variant_name

st.title("Compare models on one image")
st.caption(
    "One row per model: its prediction and h, then the channel maps of the same class and their merged "
    "map, each titled with the part its peaks usually land on over its class's test images (when the model "
    "has part profiles: an average, not this photo). Compare MC-Loss with cross-entropy and the ablations to "
    "see what L_div and CWA change. By default each row's maps share one colour scale in the model's own "
    "activation units (its colour bar at the row's end); models differ in scale, so compare shapes across rows "
    "and strengths within one."
)
widgets.sidebar_settings()
model, meta0 = widgets.choose_checkpoint()
chosen = widgets.choose_checkpoints("compare_models", model, meta0)
opacity = st.sidebar.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="compare_opacity")
photo, img = widgets.require_image("compare", "Upload a photo, or pick one from the gallery.", meta0)
widgets.current_photo()
widgets.warn_if_small(img, meta0)

# the class comes from the sidebar's model where it is compared, else from the first model
lead = model if model in chosen else chosen[0]
names = loaders.explainer(lead).class_names
lead_preds = loaders.predictions(lead, photo, 1)
lead_meta = loaders.metadata(lead)[0]
widgets.ood_warning(lead, lead_meta, photo)
# the class picked on Explore for this photo, else the lead model's prediction
picked = st.session_state.get("class_pick")
from_explore = picked is not None and picked[:2] == (widgets.image_id(), lead_meta.dataset)
start = picked[2] if from_explore else lead_preds[0].index
widgets.follow("compare_class", (widgets.image_id(), str(lead), start), start)
choice = st.selectbox(
    "Class",
    range(len(names)),
    format_func=lambda i: names[i],
    key="compare_class",
    help="preset to the class picked on Explore for this photo"
    if from_explore
    else f"preset to {lead.stem}'s prediction for this photo",
)
s1, s2 = st.columns([3, 1])
scale = s1.radio("Colour scale", list(SCALES), format_func=SCALES.get, key="compare_scale", horizontal=True)
# pictures by default: an interactive figure per model costs the browser several times more
interactive = s2.toggle("Interactive maps", key="compare_interactive", help="hover a map for its values, drag to zoom")
if lead_meta.dataset != "cub":
    st.caption("No part names for a car model: Stanford Cars has no part annotations to learn them from.")
ann = widgets.current_annotation(loaders.metadata(lead)[0])
for path in chosen:
    meta, _ = loaders.metadata(path)
    info, maps = st.columns([1, 4], vertical_alignment="center")
    cc = " · **class-connected**" if meta.head.startswith("class-connected") else ""
    info.markdown(f"**{path.stem}**  \n{variant_name(meta)} · {head_name(meta)}{cc}")
    ex = loaders.explainer(path)
    if ex.class_names != names:
        info.warning("This model has other classes; it is left out.")
        continue
    preds = loaders.predictions(path, photo, 1)
    pred = preds[0]
    cm = loaders.channel_maps(path, photo, (int(choice),), "activation", None)
    cls = cm.classes[0]
    info.write(f"predicts **{pred.name}** ({pred.prob:.0%})")
    row_verdict = loaders.verdict(path, meta, photo)
    if row_verdict is not None and row_verdict.flagged:
        info.warning(f"Not like {row_verdict.domain}: not reliable.")
    info.metric("h", f"{cls.h:.2f}")
    labels, units = loaders.channel_labels(path, cls.channels), widgets.units(cm.method)
    if interactive:
        # every map of a row in one line: at 4 maps a row each stays >= 150 px wide in the main column
        fig = class_maps_figure(cls, cm.image, opacity, height=230, labels=labels, scale=scale, units=units)
        fig.layout.meta = f"{path.stem}|{photo.name}"
        maps.plotly_chart(fig, width="stretch", key=f"compare_fig_{path.stem}")
    else:
        picture = class_maps_image(cls, cm.image, opacity, labels=labels, scale=scale, units=units, panel=180)
        maps.image(picture, width="content", caption=f"{path.stem}: maps computed for {photo.name}")
    said = []
    guessed = loaders.predicted_parts(path, meta, photo)
    for a, whose in ((guessed, "predicted parts"), (ann, "CUB's annotated parts")):
        if a is not None:
            hits = peak_parts(cls.peaks, a)
            said.append(f"In this image ({whose}): " + ", ".join(f"ch {ch} → {p}" for ch, p in zip(cls.channels, hits)))
    if meta.dataset == "cub" and guessed is None and row_verdict is not None and row_verdict.flagged:
        said.append("No predicted parts: the photo does not look like a bird of CUB.")
    if said:
        maps.caption("  \n".join(said))
    st.divider()
