"""Models: every checkpoint found, with its metadata."""

import streamlit as st

import loaders
import widgets
from mcviz.io import PARTS_PLOT, side_path

st.title("Models")
st.caption("Checkpoints from " + ", ".join(f"`{d}`" for d in widgets.checkpoint_dirs()))
widgets.sidebar_settings()
rows, errors = [], []
for path in widgets.checkpoints():
    meta, err = loaders.metadata(path)
    if err:
        errors.append(err)
        continue
    m = meta.metrics
    rows.append({
        "file": path.name, "data set": meta.dataset, "backbone": meta.backbone, "variant": meta.variant,
        "input": meta.input.get("crop"), "epochs": m.epoch, "top-1 %": m.top1, "MC-branch top-1 %": m.top1_mc,
        "mean h": m.mean_h, "ξ": meta.xi, "size MB": round(path.stat().st_size / 1e6, 1), "command": meta.command,
        "lr": meta.hparam("lr"),
    })
if rows:
    st.dataframe(rows, hide_index=True, width="stretch")
else:
    st.info("No loadable checkpoint.")
for err in errors:
    st.error(f"Failed to load: {err}")

st.subheader("Channel x part maps")
st.caption("For each model with part profiles (`mcviz parts CHECKPOINT --root CUB_ROOT --plot`): the share of "
           "each channel's peaks on each CUB part, near no part, and off the bird, over its class's test images. "
           "Many bright rows: the channels cover many parts; one bright row: they collapse on one.")
shown = 0
for path in widgets.checkpoints():
    png = side_path(path, PARTS_PLOT)
    if png.exists() and loaders.part_profiles(path) is not None:
        st.image(str(png), caption=path.stem)
        shown += 1
if not shown:
    st.info("No part maps yet.")
