"""Channels: a class's most important channels (paper Table IX) and the class x channel matrix."""

from pathlib import Path

import streamlit as st

import gallery
import loaders
import widgets
from photo import current as current_photo
from mcviz.explain.render import score_matrix_figure, class_parts_figure, part_bars_figure, ranking_figure
from mcviz.io.describe import dataset_name

st.title("Channels of a class")
widgets.sidebar_settings()
path, meta = widgets.choose_checkpoint()
widgets.current_photo(st.sidebar)
ex = loaders.explainer(path)
names = ex.class_names
# the class is the current photo's prediction by this model (class 0 without a photo) until picked
photo = current_photo()
default = 0
if photo is not None and loaders.decode(photo)[1] is None:
    default = loaders.predictions(path, photo, 1)[0].index
widgets.follow("channels_class", (widgets.image_id(), str(path)), default)
choice = st.selectbox(
    "Class",
    range(len(names)),
    format_func=lambda i: names[i],
    key="channels_class",
    help="preset to the model's prediction for the current photo" if photo is not None else None,
)
# The default is what the model uses: each channel's measured effect on the class's logit
# (`mcviz rank` ships it beside the checkpoint); the other views stay one click away.
LABELS = {
    "evidence": "evidence for the class (exact: a term of its score)",
    "effect": "effect on the class's logit (measured)",
    "soft-labels": "soft channel labels (paper Table IX)",
    "linearised-head": "linearised head weights",
    "activation": "mean activation over the class's CUB test images",
}
root = widgets.data_dir()
offered = [r for r in loaders.rankings(path) if r != "activation" or gallery.class_images_available(meta, root)]
widgets.follow("channels_source", str(path), offered[0])
by = st.radio("Rank channels by", offered, format_func=LABELS.get, key="channels_source", horizontal=True)
# a class-connected model's class reads its own channels only: every other channel scores exactly 0
connected = ex.model.class_connected and by != "activation"
k = len(ex.groups.channels(int(choice))) if connected else 10
if by == "activation":
    r = loaders.activation_ranking(path, root, int(choice), k)
else:
    r = loaders.ranking(path, int(choice), k, by=by)
st.caption(
    f"**Score:** {r.source}. "
    f"★ and red bars: channels of the class's own group ({len(ex.groups.channels(int(choice)))} channels)."
    + (
        " This model is **class-connected**: a class's score reads its own channels only, so they are all "
        "its channels that matter, ranked."
        if connected
        else ""
    )
)
if "effect" not in offered:
    st.info(
        f"No effect ranking ships with {path.name}. `mcviz rank` on this checkpoint, with its data set "
        f"({dataset_name(meta)}: `--dataset {meta.dataset or 'NAME'} --root` and the data set's folder), measures "
        "what each channel does to each class's score, and this page then ranks by it."
    )
own = r.own()
unowned = any(o < 0 for o in r.owners)
table = {
    "rank": list(range(1, len(r.channels) + 1)),
    "channel": r.channels,
    "own": ["★" if o else "" for o in own],
    "score": [float(f"{s:.3g}") for s in r.scores],
    "group of": [names[o] if o >= 0 else "no class" for o in r.owners],
}
cons = loaders.consistency(path)
if cons is not None:  # Huang et al.'s protocol, measured for each channel over its own class's photos
    found = [cons.of(ch) for ch in r.channels]
    table["consistency (its class's photos)"] = [
        loaders.consistency_text(c).split(" · ")[0] if c else "–" for c in found
    ]
    table["stability"] = [f"{c.stability:.0%}" if c else "–" for c in found]
st.dataframe(table, hide_index=True, width="stretch")
st.caption(
    f"{sum(own)} of the top {len(own)} are the class's own channels."
    + (
        " **no class**: a channel that the soft labels' regrouping gave to no class's group; the head still "
        "reads it for every class, so it can matter without belonging to any."
        if unowned
        else ""
    )
)
st.plotly_chart(ranking_figure(r, names), width="stretch", key="channels_bar")
prof = loaders.part_profiles(path)
if prof is not None:
    st.subheader("Which parts do these channels look at?")
    st.plotly_chart(part_bars_figure(prof, r.channels), width="stretch", key="channels_parts")
    own_channels = list(ex.groups.channels(int(choice)))
    st.plotly_chart(
        class_parts_figure(prof, own_channels, names[int(choice)]), width="stretch", key="channels_class_parts"
    )
elif meta.dataset == "cub":
    st.info(
        "No part profiles ship with this checkpoint. `mcviz parts` on it (`--root` the CUB-200-2011 folder) "
        "makes them, and every channel is then named by the part it looks at."
    )
else:
    st.info(f"{dataset_name(meta)} has no part annotations, so its channels are not named by parts.")
matrix = loaders.scores_matrix(path, by)
if connected:
    # every class reads only its own channels: the matrix would be a bare diagonal of what the table says
    st.caption(
        "No class x channel matrix: this class-connected model's classes read only their own channels, so "
        "it would be a diagonal of the scores in the table above."
    )
elif matrix is None:
    st.caption(
        "The mean activation is measured one class at a time: pick another ranking for the class x channel matrix."
    )
else:
    scores, source = matrix
    st.plotly_chart(score_matrix_figure(scores, names, source, ex.groups), width="stretch", key="channels_heat")
labels = loaders.channel_labels(path, r.channels)
atlas = loaders.atlas(path)
if atlas is None:
    st.info(
        "No atlas ships with this checkpoint: `mcviz atlas` on it, with its data set, shows the test images "
        "that activate each of these channels most."
    )
else:
    st.subheader("Test images that activate each channel most")
    st.caption("The region around the channel's peak in each of its strongest test images (`mcviz atlas`).")

    def class_of(image_path: str) -> str:
        folder = Path(image_path).parent.name  # NNN.Folder_Name: class NNN
        number = folder.split(".", 1)[0]
        if number.isdigit() and 0 < int(number) <= len(names):
            return names[int(number) - 1]
        return folder.split(".", 1)[-1].replace("_", " ")

    unreadable = True
    for rank, ch in enumerate(r.channels):
        entries = atlas["channels"].get(str(ch), [])
        crops = loaders.atlas_crops(tuple((e["path"], tuple(e["box"])) for e in entries))
        shown = [(c, f"{class_of(e['path'])}: {e['score']:.3g}") for c, e in zip(crops, entries) if c is not None]
        if not shown:
            continue
        unreadable = False
        st.markdown(f"**{rank + 1}. ch {ch}**" + (f" · {labels[rank]}" if labels else ""))
        cols = st.columns(max(len(shown), 6))
        for col, (crop, cap) in zip(cols, shown):
            col.image(crop, caption=cap, width="stretch")
    if unreadable:
        st.warning(
            "The atlas's images are not readable on this server: it was made from a copy of the data set "
            "that is not here."
        )
