"""Pictures of explanations, shared by the CLI and the app: overlays, PNG panels, plotly figures.

One colour scale everywhere: maps are in [0, 1] and drawn with the same colour map
(``jet``) from 0 to 1, so panels and figures can be compared at a glance.
"""

from __future__ import annotations

import io
import textwrap
from typing import Optional, Sequence

import numpy as np

COLORMAP = "jet"
PLOTLY_SCALE = "Jet"


def overlay(image: np.ndarray, heat: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """Blend a [0, 1] map over an ``(H, W, 3)`` uint8 image; returns uint8."""
    from matplotlib import colormaps

    rgb = colormaps[COLORMAP](np.clip(heat, 0, 1))[..., :3]
    out = (1 - opacity) * image.astype(np.float32) / 255.0 + opacity * rgb
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def panel_png(
    channel_maps,
    predictions: Optional[Sequence] = None,
    title: str = "",
    opacity: float = 0.5,
    dpi: int = 110,
    labels: Optional[dict] = None,
    banner: str = "",
) -> bytes:
    """A PNG: per class a row with the image, each channel's overlay and the merged map;
    ``labels`` (channel -> text, e.g. the part it usually looks at) go under the channel titles;
    ``banner`` (the out-of-distribution warning) is printed across the top in red."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = channel_maps.classes
    cols = 2 + max((len(c.channels) for c in rows), default=0)
    probs = {p.index: p.prob for p in (predictions or [])}
    tall = (
        (0.75 if any("\n" in str(v) for v in labels.values()) else 0.45) if labels else 0.0
    )  # room for the part lines
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.9 * cols, (2.15 + tall) * len(rows) + 0.4), squeeze=False)
    img = channel_maps.image
    for r, cm in enumerate(rows):
        ax = axes[r][0]
        ax.imshow(img)
        p = f" p={probs[cm.class_index]:.2f}" if cm.class_index in probs else ""
        ax.set_title(f"{cm.class_name}{p}\nh={cm.h:.2f}", fontsize=8)
        for j, ch in enumerate(cm.channels):
            a = axes[r][1 + j]
            a.imshow(overlay(img, cm.maps[j], opacity))
            px, py = cm.peaks[j]
            a.plot([px], [py], marker="+", color="white", markersize=8, mew=1.5)
            extra = (
                "\n" + "\n".join(textwrap.fill(line, 24) for line in labels[ch].split("\n"))
                if labels and labels.get(ch)
                else ""
            )
            a.set_title(f"channel {ch}\nmax {cm.raw[j].max():.3g}{extra}", fontsize=7 if extra else 8)
        a = axes[r][1 + len(cm.channels)]
        a.imshow(overlay(img, cm.merged, opacity))
        a.set_title("merged (max)", fontsize=8)
        for a in axes[r]:
            a.axis("off")
    head = title or f"{channel_maps.method} maps" + (f" at {channel_maps.layer}" if channel_maps.layer else "")
    fig.suptitle(head, fontsize=9)
    if banner:
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.55 / fig.get_figheight()))
        fig.text(
            0.5,
            1 - 0.08 / fig.get_figheight(),
            textwrap.fill("WARNING: " + banner, 30 * cols),
            ha="center",
            va="top",
            fontsize=7,
            color="white",
            bbox=dict(facecolor="#b00020", edgecolor="none", pad=3),
        )
    else:
        fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


# Heat maps go to the browser at most this many cells on the long side and are smoothed
# there (zsmooth): the MC features are 8x8 to 28x28, so nothing is lost, and the figure's
# JSON, which the browser parses on every upload, shrinks several times.
MAX_GRID = 32


def coarse(a: np.ndarray, max_side: int = MAX_GRID) -> np.ndarray:
    """Block-average a 2-D map so that its long side is at most ``max_side`` cells."""
    h, w = a.shape
    f = -(-max(h, w) // max_side)  # ceil
    if f <= 1:
        return a
    ph, pw = -h % f, -w % f
    a = np.pad(a, ((0, ph), (0, pw)), mode="edge") if ph or pw else a
    return a.reshape(a.shape[0] // f, f, a.shape[1] // f, f).mean(axis=(1, 3))


def _panel_titles(channels: Sequence[int], compact: bool, labels: Optional[Sequence[str]]) -> list[str]:
    titles = [f"{'ch' if compact else 'channel'} {ch}" for ch in channels]
    if labels:
        # the label on lines of its own under the channel: beside it, four titles run into each other
        titles = [
            f"{t}<br>" + "<br>".join(textwrap.wrap(lbl, 26 if compact else 30)) if lbl else t
            for t, lbl in zip(titles, labels)
        ]
    return titles + ["merged" if compact else "merged (max)"]


def _value_range(maps: Sequence[np.ndarray]) -> tuple[float, float]:
    """One colour scale for several maps: from the smaller of 0 and their lowest value to their highest."""
    lo, hi = min(0.0, min(float(m.min()) for m in maps)), max(float(m.max()) for m in maps)
    return lo, (hi if hi > lo else lo + 1.0)


SCALES = {
    "class": "one colour scale for the class's maps, in the method's own units",
    "map": "each map scaled to its own 0-1 (shows the shape of a weak map, hides its weakness)",
}


def _panel_axes(layout: dict, n: str, xs: tuple[float, float], ys: tuple[float, float], iw: int, ih: int) -> None:
    """The axes of one panel of a maps figure, in the paper coordinates ``xs``, ``ys``."""
    xd = [round(max(0.0, xs[0]), 6), round(min(1.0, xs[1]), 6)]
    yd = [round(max(0.0, ys[0]), 6), round(min(1.0, ys[1]), 6)]
    layout[f"xaxis{n}"] = dict(domain=xd, anchor=f"y{n}", visible=False, range=[-0.5, iw - 0.5], constrain="domain")
    # scaleanchor keeps the photo's aspect ratio in any column width
    layout[f"yaxis{n}"] = dict(
        domain=yd,
        anchor=f"x{n}",
        visible=False,
        scaleanchor=f"x{n}",
        scaleratio=1,
        range=[ih - 0.5, -0.5],
        constrain="domain",
    )


def class_maps_figure(
    cm,
    image: np.ndarray,
    opacity: float = 0.5,
    height: int = 260,
    per_row: Optional[int] = None,
    labels: Optional[Sequence[str]] = None,
    scale: str = "class",
    units: str = "value",
):
    """Plotly figure: one overlay per channel of the class, then the merged map; ``labels`` (one per
    channel, e.g. its part: "crown 46 %") are added to the channel titles.

    ``scale`` (:data:`SCALES`): ``"class"`` (default) draws the raw values of every map of the class
    on one colour scale, from the smaller of 0 and the lowest value to the highest, with a colour bar
    in ``units``: a channel that barely fires looks faint beside one that fires hard. ``"map"``
    scales each map to its own 0-1. Hover shows the raw value either way. The photo lies under each
    map as one small JPEG. A plain specification: ``make_subplots`` and per-trace validation cost
    more than everything else of an upload's script run."""
    import plotly.graph_objects as go

    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    shared, k = scale == "class", len(cm.channels)
    compact = per_row is not None
    per_row = per_row or k + 1
    rows = -(-(k + 1) // per_row)
    ih, iw = image.shape[:2]
    titles = _panel_titles(cm.channels, compact, labels)
    stacks = [(cm.maps[j], cm.raw[j]) for j in range(k)] + [(cm.merged, cm.merged_raw)]
    drawn = [coarse(raw) for _, raw in stacks]  # what the browser gets: the scale spans these values
    lo, hi = _value_range(drawn) if shared else (0.0, 1.0)
    bar = units if shared else "map (own 0-1)"
    photo = _image_data_uri(image)
    hgap, vgap = 0.02, (0.08 if rows > 1 else 0.0)
    cw = (1 - hgap * (per_row - 1)) / per_row
    rh = (1 - vgap * (rows - 1)) / rows
    lines = max(t.count("<br>") + 1 for t in titles)
    data, layout = (
        [],
        {
            "height": height * rows + 16 * (lines - 1),
            "margin": dict(l=5, r=5, t=14 + 17 * lines, b=5),
            "showlegend": False,
            "annotations": [],
            "images": [],
        },
    )
    for j, ((norm, _), cd) in enumerate(zip(stacks, drawn)):
        r, c = divmod(j, per_row)
        n = "" if j == 0 else str(j + 1)
        x0, y1 = c * (cw + hgap), 1 - r * (rh + vgap)
        _panel_axes(layout, n, (x0, x0 + cw), (y1 - rh, y1), iw, ih)
        layout["annotations"].append(
            dict(
                text=titles[j],
                x=x0 + cw / 2,
                y=y1,
                xref="paper",
                yref="paper",
                xanchor="center",
                yanchor="bottom",
                showarrow=False,
                font=dict(size=13 if lines > 1 else 14),
            )
        )
        layout["images"].append(
            dict(
                source=photo,
                xref=f"x{n}",
                yref=f"y{n}",
                x=-0.5,
                y=-0.5,
                sizex=iw,
                sizey=ih,
                sizing="stretch",
                layer="below",
            )
        )
        z = cd if shared else coarse(norm)
        dy, dx = ih / z.shape[0], iw / z.shape[1]
        data.append(
            dict(
                type="heatmap",
                xaxis=f"x{n}",
                yaxis=f"y{n}",
                z=_round_sig(z).astype(np.float32),
                customdata=_round_sig(cd).astype(np.float32),
                x0=dx / 2 - 0.5,
                dx=dx,
                y0=dy / 2 - 0.5,
                dy=dy,
                zsmooth="fast",
                zmin=lo,
                zmax=hi,
                colorscale=PLOTLY_SCALE,
                opacity=opacity,
                showscale=j == k,
                colorbar=dict(title=dict(text=bar, side="right"), len=0.9, thickness=12),
                hovertemplate=(
                    "x %{x:.0f}, y %{y:.0f}<br>"
                    + (f"{units} %{{customdata:.3g}}" if shared else f"map %{{z:.2f}}<br>{units} %{{customdata:.3g}}")
                    + "<extra></extra>"
                ),
            )
        )
        if j < k:
            px, py = cm.peaks[j]
            data.append(
                dict(
                    type="scatter",
                    xaxis=f"x{n}",
                    yaxis=f"y{n}",
                    x=[px],
                    y=[py],
                    mode="markers",
                    marker=dict(symbol="cross-thin", size=12, line=dict(width=2, color="white")),
                    hovertemplate="peak<extra></extra>",
                    showlegend=False,
                )
            )
    return go.Figure(dict(data=data, layout=layout), _validate=False)


def _image_data_uri(image: np.ndarray) -> str:
    """The photo as a JPEG data URI (a quarter of a PNG's bytes; it is repeated under every map)."""
    import base64

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _round_sig(a: np.ndarray, digits: int = 4) -> np.ndarray:
    """Round to ``digits`` significant digits (hover text needs no more)."""
    scale = np.max(np.abs(a)) if a.size else 0.0
    if not np.isfinite(scale) or scale == 0:
        return np.round(a, digits)
    decimals = max(0, digits - 1 - int(np.floor(np.log10(scale))))
    return np.round(a, decimals)


def ranking_figure(ranking, owner_names: Sequence[str]):
    """Bar chart of a class's top channels (paper Table IX view)."""
    import plotly.graph_objects as go

    labels = [f"ch {c}" for c in ranking.channels]
    colors = ["#d62728" if o == ranking.class_index else "#7f7f7f" for o in ranking.owners]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=ranking.scores,
            marker_color=colors,
            customdata=[owner_names[o] if o >= 0 else "no class" for o in ranking.owners],
            hovertemplate="%{x}<br>score %{y:.3g}<br>group of %{customdata}<extra></extra>",
        )
    )
    fig.update_layout(height=300, margin=dict(l=5, r=5, t=30, b=5), title="top channels (red: the class's own group)")
    return fig


def score_matrix_figure(scores: np.ndarray, class_names: Sequence[str], what: str = "importance", groups=None):
    """Class x channel matrix of a ranking's scores (``what`` names them in the title). With
    ``groups`` the channels are ordered by the class that owns them (unowned ones last), so a
    model that uses its classes' own channels shows a bright diagonal."""
    import plotly.graph_objects as go

    scores = np.asarray(scores)
    order = np.arange(scores.shape[1])
    if groups is not None:
        owner = np.asarray(groups.owner())
        order = np.argsort(np.where(owner < 0, len(class_names), owner), kind="stable")
    z = _round_sig(scores[:, order].astype(np.float32), 3)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"ch {c}" for c in order],
            y=list(class_names),
            colorscale="Viridis",
            colorbar=dict(title=dict(text="score")),
            hovertemplate="%{y}<br>%{x}<br>score %{z:.3g}<extra></extra>",
        )
    )
    xtitle = "channel, grouped by the class that owns it" if groups is not None else "channel"
    # the score's name on a line of its own: beside "class x channel" a long one is cut off
    fig.update_layout(
        height=540,
        margin=dict(l=5, r=5, t=64, b=40),
        title=f"class x channel<br><sub>{what}</sub>",
        xaxis=dict(title=xtitle, showticklabels=False),
        yaxis=dict(title="class", showticklabels=len(class_names) <= 40, autorange="reversed"),
    )
    return fig


def part_matrix_png(profiles, population: str = "own") -> bytes:
    """The channel x part heat map of :class:`~mcviz.evaluate.parts.PartProfiles`: does a model's
    channels cover many parts, or collapse on one (or off the bird)?"""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = profiles.matrix(population).numpy().T  # (categories, channels)
    fig, ax = plt.subplots(figsize=(12, 4.2))
    im = ax.imshow(m, aspect="auto", cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(profiles.categories)), profiles.categories, fontsize=7)
    ax.set_xlabel("MC channel")
    who = (
        "own class's test images"
        if population == "own"
        else f"images where it is among the {profiles.strongest_k} strongest"
    )
    ax.set_title(f"share of each channel's peaks per part ({who}, {profiles.images} images)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


# One colour per category of a part profile: 15 parts, then "near no part" (light grey) and "off
# the bird" (black). The 15 were picked greedily from plotly's and ColorBrewer's qualitative sets so
# that the closest two of all 17 lie >= 20 apart in CIEDE2000 (Kelly's colours: 10, with beak and
# right leg, belly and right wing nearly alike).
_PART_COLOURS = [
    "#AA0DFE",
    "#FB0D0D",
    "#008856",
    "#B68E00",
    "#1F77B4",
    "#16FF32",
    "#B2828D",
    "#17BECF",
    "#620042",
    "#6C4516",
    "#DEA0FD",
    "#FBE426",
    "#1616A7",
    "#FF7F0E",
    "#AF0038",
    "#DCDCDC",
    "#222222",
]


def part_bars_figure(profiles, channels: Sequence[int], population: str = "own"):
    """Stacked bars: for each channel, the share of its peaks on each part, near no part, off the bird."""
    import plotly.graph_objects as go

    items = profiles.own if population == "own" else profiles.strongest
    ys = [f"ch {c}" for c in channels]
    data = []
    for k, cat in enumerate(profiles.categories):
        data.append(
            dict(
                type="bar",
                orientation="h",
                name=cat,
                y=ys,
                x=[round(items[c].shares[cat], 3) for c in channels],
                marker=dict(color=_PART_COLOURS[k % len(_PART_COLOURS)]),
                hovertemplate=f"{cat}: %{{x:.0%}}<extra>%{{y}}</extra>",
            )
        )
    # the whole legend under the bars, in rows (beside them it is cut off and scrolls); the axis goes on
    # top, so that the legend never covers its tick labels
    layout = dict(
        barmode="stack",
        height=190 + 28 * len(channels),
        margin=dict(l=5, r=5, t=70, b=5),
        xaxis=dict(range=[0, 1], tickformat=".0%", side="top"),
        yaxis=dict(autorange="reversed"),
        legend=dict(font=dict(size=10), orientation="h", yanchor="top", y=-0.02, x=0, traceorder="normal"),
        title=dict(text="where each channel's peaks land (its class's test images)", y=0.98, yanchor="top"),
    )
    return go.Figure(dict(data=data, layout=layout), _validate=False)


def class_parts_figure(profiles, channels: Sequence[int], class_name: str):
    """Heat map of a class's own channels x parts (shares of the peaks)."""
    import plotly.graph_objects as go

    z = [[round(profiles.own[c].shares[cat], 3) for cat in profiles.categories] for c in channels]
    fig = dict(
        data=[
            dict(
                type="heatmap",
                z=z,
                x=profiles.categories,
                y=[f"ch {c}" for c in channels],
                zmin=0,
                zmax=1,
                colorscale="Magma",
                hovertemplate="%{y} · %{x}: %{z:.0%}<extra></extra>",
            )
        ],
        layout=dict(
            height=120 + 30 * len(channels),
            margin=dict(l=5, r=5, t=30, b=5),
            title=f"{class_name}: its own channels x parts",
            xaxis=dict(tickangle=-40),
        ),
    )
    return go.Figure(fig, _validate=False)


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(draw, points, avoid, size) -> list[tuple[float, float, tuple]]:
    """``(x, y, box)`` for each ``(px, py, text)`` label: the first of a ring of spots around its
    point, ever farther out, where it overlaps no label placed before, none of ``avoid`` (the dots)
    and stays inside ``size``. Greedy, in the order given: CUB's 15 parts crowd the head, and
    labels at one fixed offset land on each other ("beak" under "throat")."""
    width, height = size
    placed: list[tuple] = []
    out = []
    for px, py, text in points:
        l, t, r, b = draw.textbbox((0, 0), text, stroke_width=2)
        w, h = r - l, b - t
        best = None
        for reach in (6, 14, 24, 36, 50):
            for dx, dy in (
                (reach, -h / 2),
                (-reach - w, -h / 2),
                (-w / 2, -reach - h),
                (-w / 2, reach),
                (reach, -reach - h),
                (-reach - w, -reach - h),
                (reach, reach),
                (-reach - w, reach),
            ):
                x, y = px + dx, py + dy
                box = (x - 1, y - 1, x + w + 1, y + h + 1)
                if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
                    continue
                if any(_overlaps(box, o) for o in placed) or any(_overlaps(box, o) for o in avoid):
                    continue
                best = (x - l, y - t, box)
                break
            if best:
                break
        if best is None:  # nowhere free: the first spot, clamped into the picture
            x = min(max(px + 6, 0), max(width - w, 0))
            y = min(max(py - h / 2, 0), max(height - h, 0))
            best = (x - l, y - t, (x, y, x + w, y + h))
        placed.append(best[2])
        out.append(best)
    return out


def photo_with_parts(
    image: np.ndarray,
    ann: dict,
    peaks: Sequence[Sequence[float]] = (),
    peak_names: Optional[Sequence[str]] = None,
    side: int = 576,
):
    """The crop (PIL) with the parts (dots and names), the box, and the channels' peaks (red +,
    named by ``peak_names``, e.g. "ch 417", else numbered); ``ann``: ``{"box", "parts", "part_names"}``
    in the crop's pixels. CUB's annotated parts are blue; a part locator's prediction
    (``ann["predicted"]``) is green, each visible part named with its visibility probability and each
    part it calls hidden drawn as a grey ring where it would be. The crop is enlarged by a whole
    factor to at most ``side`` px, so that the labels find room without blurring the photo more."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(image).convert("RGB")
    scale = max(1, side // max(img.size))
    img = img.resize((img.width * scale, img.height * scale))
    d = ImageDraw.Draw(img)
    predicted = bool(ann.get("predicted"))
    colour = (60, 220, 90) if predicted else (0, 200, 255)
    x, y, w, h = [v * scale for v in ann["box"]]
    d.rectangle([x, y, x + w, y + h], outline=(255, 255, 0), width=2)
    probs = ann.get("visibility") or [None] * len(ann["part_names"])
    if predicted and "xy" in ann:
        for (px, py), p in zip(ann["xy"], probs):
            if p is not None and p < 0.5:
                px, py = px * scale, py * scale
                d.ellipse([px - 4, py - 4, px + 4, py + 4], outline=(160, 160, 160), width=1)
    visible = [
        (px * scale, py * scale, name if p is None else f"{name} {100 * p:.0f} %")
        for (px, py, vis), name, p in zip(ann["parts"], ann["part_names"], probs)
        if vis > 0
    ]
    for px, py, _ in visible:
        d.ellipse([px - 4, py - 4, px + 4, py + 4], fill=colour, outline=(0, 0, 0))
    crosses = [
        (px * scale, py * scale, (peak_names[k] if peak_names else str(k + 1))) for k, (px, py) in enumerate(peaks)
    ]
    # every dot and cross is kept clear, and the peaks' names are placed first, among the parts' labels
    avoid = [(px - 4, py - 4, px + 4, py + 4) for px, py, _ in visible] + [
        (px - 7, py - 7, px + 7, py + 7) for px, py, _ in crosses
    ]
    spots = place_labels(d, crosses + visible, avoid, img.size)
    for px, py, _ in crosses:
        d.line([px - 7, py, px + 7, py], fill=(255, 60, 60), width=3)
        d.line([px, py - 7, px, py + 7], fill=(255, 60, 60), width=3)
    for k, ((px, py, name), (tx, ty, box)) in enumerate(zip(crosses + visible, spots)):
        peak = k < len(crosses)
        ink = (255, 60, 60) if peak else colour
        if abs(tx - px) > 14 or abs(ty - py) > 14:  # moved away from its mark: a leader line says whose it is
            d.line([px, py, (box[0] + box[2]) / 2, (box[1] + box[3]) / 2], fill=ink, width=1)
        d.text((tx, ty), name, fill=(255, 90, 90) if peak else (255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    return img
