"""Channels: a class's most important channels (paper Table IX) and the class x channel matrix."""

from pathlib import Path

import streamlit as st

import loaders
import widgets
from mcviz.explain import RANKINGS
from mcviz.explain.render import score_matrix_figure, class_parts_figure, part_bars_figure, ranking_figure

st.title("Channels of a class")
widgets.sidebar_settings()
path, meta = widgets.choose_checkpoint("channels_model")
ex = loaders.explainer(path)
names = ex.class_names
choice = st.selectbox("Class", range(len(names)), format_func=lambda i: names[i], key="channels_class")
# The default is what the model uses: each channel's measured effect on the class's logit
# (`mcviz rank` ships it beside the checkpoint); the other views stay one click away.
LABELS = {"effect": "effect on the class's logit (measured)", "soft-labels": "soft channel labels (paper Table IX)",
          "linearised-head": "linearised head weights", "activation": "mean activation over the class's CUB test images"}
root = widgets.data_dir()
offered = [r for r in loaders.rankings(path) if r != "activation" or loaders.class_images_available(meta, root)]
by = st.radio("Rank channels by", offered, format_func=LABELS.get, key="channels_source", horizontal=True)
if by == "activation":
    r = loaders.activation_ranking(path, root, int(choice), 10)
else:
    r = loaders.ranking(path, int(choice), 10, by=by)
st.caption(f"**Score:** {RANKINGS[by]}. "
           f"★ and red bars: channels of the class's own group ({len(ex.groups.channels(int(choice)))} channels).")
if "effect" not in offered:
    st.info(f"No effect ranking for this checkpoint: `mcviz rank {path} --dataset ... --root ...` measures what "
            "each channel does to each class's score, and this page then ranks by it.")
owner_names = names
own = r.own()
st.dataframe({"rank": list(range(1, len(r.channels) + 1)), "channel": r.channels,
              "own": ["★" if o else "" for o in own], "score": [round(s, 4) for s in r.scores],
              "group of": [owner_names[o] if o >= 0 else "-" for o in r.owners]}, hide_index=True, width="stretch")
st.caption(f"{sum(own)} of the top {len(own)} are the class's own channels.")
st.plotly_chart(ranking_figure(r, owner_names), width="stretch", key="channels_bar")
prof = loaders.part_profiles(path)
if prof is not None:
    st.subheader("Which parts do these channels look at?")
    st.plotly_chart(part_bars_figure(prof, r.channels), width="stretch", key="channels_parts")
    own = list(ex.groups.channels(int(choice)))
    st.plotly_chart(class_parts_figure(prof, own, names[int(choice)]), width="stretch", key="channels_class_parts")
else:
    st.info(f"No part profiles for this checkpoint: `mcviz parts {path} --root CUB_ROOT` makes them "
            "(CUB models), and every channel is then named by the part it looks at.")
scores, source = loaders.scores_matrix(path)
st.plotly_chart(score_matrix_figure(scores, names, source), width="stretch", key="channels_heat")
labels = loaders.channel_labels(path, r.channels)
atlas = loaders.atlas(path)
if atlas is None:
    st.info(f"No atlas for this checkpoint: make one with `mcviz atlas {path} --dataset ... --root ...` "
            "to see the test images that activate each of these channels most.")
else:
    st.subheader("Test images that activate each channel most")
    st.caption("The region around the channel's peak in each of its strongest test images (`mcviz atlas`).")
    unreadable = True
    for rank, ch in enumerate(r.channels):
        entries = atlas["channels"].get(str(ch), [])
        crops = loaders.atlas_crops(tuple((e["path"], tuple(e["box"])) for e in entries))
        shown = [(c, f"{Path(e['path']).parent.name.split('.', 1)[-1]}: {e['score']:.3g}")
                 for c, e in zip(crops, entries) if c is not None]
        if not shown:
            continue
        unreadable = False
        st.markdown(f"**{rank + 1}. ch {ch}**" + (f" · {labels[rank]}" if labels else ""))
        cols = st.columns(max(len(shown), 6))
        for col, (crop, cap) in zip(cols, shown):
            col.image(crop, caption=cap, width="stretch")
    if unreadable:
        st.warning(f"The atlas names images under {atlas['root']}, which are not readable here.")
