"""Models: every checkpoint found, with its metadata."""

import streamlit as st

import state

st.title("Models")
st.caption("Checkpoints from " + ", ".join(f"`{d}`" for d in state.checkpoint_dirs()))
state.sidebar_settings()
rows, errors = [], []
for path in state.list_checkpoints():
    meta, err = state.safe_metadata(path)
    if err:
        errors.append(err)
        continue
    m = meta.get("metrics") or {}
    h = meta.get("hparams") or {}
    rows.append({
        "file": path.name, "data set": meta.get("dataset"), "backbone": meta.get("backbone"),
        "variant": meta.get("variant"), "input": (meta.get("input") or {}).get("crop"),
        "epochs": m.get("epoch"), "top-1 %": m.get("top1"), "MC-branch top-1 %": m.get("top1_mc"),
        "mean h": m.get("mean_h"), "ξ": max((meta.get("groups") or {}).get("sizes") or [0]) or None,
        "size MB": round(path.stat().st_size / 1e6, 1), "command": meta.get("command", ""),
        "lr": h.get("lr"),
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
for path in state.list_checkpoints():
    png = path.parent / f"{path.name.removesuffix('.safetensors')}.parts.png"
    if png.exists() and state.part_profiles(path) is not None:
        st.image(str(png), caption=path.stem)
        shown += 1
if not shown:
    st.info("No part maps yet.")
