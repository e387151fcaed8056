"""Models: every checkpoint found, with its metadata."""

import streamlit as st

import loaders
import widgets
from mcviz.io import PARTS_PLOT, side_path
from mcviz.io.describe import dataset_name, head_name, plain_command, training_name, variant_name, xi_text

st.title("Models")
st.caption(
    "Every checkpoint this app finds: the shipped ones, and those of the folders the operator added. "
    "Accuracy is the final epoch's on the full test split."
)
widgets.sidebar_settings()
current, _ = widgets.choose_checkpoint()


def _round(v, digits: int):
    return round(v, digits) if isinstance(v, (int, float)) else None


rows, errors, commands = [], [], []
for path in widgets.checkpoints():
    meta, err = loaders.metadata(path)
    if err:
        errors.append(err)
        continue
    m = meta.metrics
    # what a reader compares first (name, data, accuracy, head) leads; the rest may scroll
    rows.append(
        {
            "": "▶" if path == current else "",
            "model": path.stem,
            "data set": dataset_name(meta),
            # test accuracies over a few thousand images carry two decimals; h and the size one or two
            "top-1 %": _round(m.top1, 2),
            "head": head_name(meta),
            "loss": variant_name(meta),
            "training": training_name(meta),
            "ξ": xi_text(meta),
            "mean h": _round(m.mean_h, 2),
            "MC-branch top-1 %": _round(m.top1_mc, 2),
            "backbone": meta.backbone,
            "input px": meta.input.get("crop"),
            "epochs": m.epoch,
            "size MB": round(path.stat().st_size / 1e6, 1),
        }
    )
    commands.append((path.name, plain_command(meta.command)))
if rows:
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption("▶ the model chosen in the sidebar (shared by every page).")
    with st.expander("The command that trained each model (a repeated option said once, at the value that counted)"):
        for file, command in commands:
            st.markdown(f"**{file}**")
            st.code(command or "(not recorded)", language="bash", wrap_lines=True)
else:
    st.info("No loadable checkpoint.")
for err in errors:
    st.error(f"Failed to load: {err}")

st.subheader("Channel x part maps")
st.caption(
    "For each model with part profiles (`mcviz parts CHECKPOINT --root CUB_ROOT --plot`): the share of "
    "each channel's peaks on each CUB part, near no part, and off the bird, over its class's test images. "
    "Many bright rows: the channels cover many parts; one bright row: they collapse on one."
)
shown = 0
for path in widgets.checkpoints():
    png = side_path(path, PARTS_PLOT)
    if png.exists() and loaders.part_profiles(path) is not None:
        st.image(str(png), caption=path.stem)
        shown += 1
if not shown:
    st.info("No part maps yet.")
