"""Compare: the same image through several checkpoints, side by side (paper Fig. 7)."""

import streamlit as st

import state
from mcviz.render import class_maps_figure

st.title("Compare models on one image")
st.caption("One row per model: its prediction and h, then the channel maps of the same class and their merged "
           "map, each titled with the part its peaks land on most often (when the model has part profiles). "
           "Compare MC-Loss with cross-entropy and the ablations to see what L_div and CWA change. "
           "All maps share one colour scale, from 0 (blue) to 1 (red).")
state.sidebar_settings()
ckpts = state.list_checkpoints()
if not ckpts:
    st.warning("No checkpoint found.")
    st.stop()
readable = [p for p in ckpts if state.safe_metadata(p)[1] is None]
default_ds = (state.safe_metadata(readable[0])[0] or {}).get("dataset") if readable else None
defaults = state.compare_defaults(readable, default_ds)
chosen = st.multiselect("Models", readable, default=defaults, format_func=state.label, key="compare_models")
opacity = st.sidebar.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="compare_opacity")
if not chosen:
    st.info("Pick at least one model.")
    st.stop()
data, name, img = state.require_image("compare", "Upload a photo, or pick one from the gallery.")

first = state.explainer(chosen[0])
names = first.class_names
mtime0 = chosen[0].stat().st_mtime
top = state.predictions(str(chosen[0]), mtime0, data, name, 1)[0]
choice = st.selectbox("Class", range(len(names)), index=top.index, format_func=lambda i: names[i], key="compare_class")
ann = state.current_annotation(state.safe_metadata(chosen[0])[0] or {})
for path in chosen:
    meta, _ = state.safe_metadata(path)
    info, maps = st.columns([1, 4], vertical_alignment="center")
    info.markdown(f"**{path.stem}**  \n{meta.get('variant', '?')} · {meta.get('backbone', '?')}")
    ex = state.explainer(path)
    if ex.class_names != names:
        info.warning("This model has other classes; it is left out.")
        continue
    mt = path.stat().st_mtime
    pred = state.predictions(str(path), mt, data, name, 1)[0]
    cm = state.channel_maps(str(path), mt, data, name, (int(choice),), "activation", None)
    cls = cm.classes[0]
    info.write(f"predicts **{pred.name}** ({pred.prob:.0%})")
    info.metric("h", f"{cls.h:.2f}")
    # every map of a row in one line: at 4 maps a row each stays >= 150 px wide in the main column
    fig = class_maps_figure(cls, cm.image, opacity, height=230, labels=state.channel_labels(path, cls.channels))
    fig.layout.meta = f"{path.stem}|{name}"
    maps.plotly_chart(fig, width="stretch", key=f"compare_fig_{path.stem}")
    if ann is not None:
        hits = state.peak_parts(cls.peaks, ann)
        maps.caption("In this image: " + ", ".join(f"ch {ch} → {part}" for ch, part in zip(cls.channels, hits)))
    st.divider()
