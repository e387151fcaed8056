"""A class's channel maps as one server-rendered image: each channel's overlay, then the merged map,
side by side at the size they are shown, with their titles, each peak's "+" and one colour bar.

The browser only decodes a picture: an interactive plotly figure of the same maps costs a tab
several times the main-thread time per upload (:func:`mcviz.explain.render.class_maps_figure`, a
click away in the app for hover values and zoom). Same colours, scales and titles as that figure.
"""

from __future__ import annotations

import io
import textwrap
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .render import COLORMAP, SCALES, _value_range, coarse

__all__ = ["class_maps_image"]

_PAD, _BAR = 8, 14


@lru_cache(maxsize=1)
def _lut() -> np.ndarray:
    """``(256, 3)`` uint8: the colour map of every picture of the package."""
    from matplotlib import colormaps

    return (colormaps[COLORMAP](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    """A float map resized to ``(h, w)`` by bilinear interpolation (what the figure's fast smoothing shows)."""
    return np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR))


def _titles(channels: Sequence[int], labels: Optional[Sequence[str]], width: int) -> list[list[str]]:
    out = []
    for j, ch in enumerate(channels):
        lines = [f"ch {ch}"]
        if labels and labels[j]:
            lines += textwrap.wrap(labels[j], max(12, width // 8))
        out.append(lines)
    return out + [["merged (max)"]]


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def class_maps_image(
    cm,
    image: np.ndarray,
    opacity: float = 0.5,
    labels: Optional[Sequence[str]] = None,
    scale: str = "class",
    units: str = "value",
    panel: int = 220,
    per_row: int = 5,
) -> bytes:
    """One JPEG of the class's maps over the photo.

    Args:
        cm: the class's :class:`~mcviz.explain.explainer.ClassMaps`.
        image: ``(H, W, 3)`` uint8, the crop the model saw.
        opacity: of the maps over the photo.
        labels: one per channel (e.g. the part it usually looks at), under its title.
        scale: ``"class"``: the raw values of every map on one scale, from the smaller of 0 and the
            lowest value to the highest, with a colour bar in ``units``; ``"map"``: each map's own 0-1.
        units: the method's units, for the colour bar.
        panel: the width of one panel in pixels.
        per_row: panels in a row (more channels wrap onto further rows).

    Returns:
        JPEG bytes.

    Raises:
        ValueError: an unknown scale.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    ih, iw = image.shape[:2]
    pw, ph = panel, max(1, round(panel * ih / iw))
    photo = np.asarray(Image.fromarray(image).resize((pw, ph), Image.BILINEAR), dtype=np.float32)
    k = len(cm.channels)
    stacks = [(cm.maps[j], cm.raw[j]) for j in range(k)] + [(cm.merged, cm.merged_raw)]
    shared = scale == "class"
    drawn = [coarse(raw) for _, raw in stacks]
    lo, hi = _value_range(drawn)  # the figure's scale, from the same coarse grids
    titles = _titles(cm.channels, labels, pw)
    font = _font(13)
    line = 16
    head = line * max(len(t) for t in titles) + _PAD  # the titles above each row of panels
    cols, rows = min(per_row, k + 1), -(-(k + 1) // per_row)
    row_h = head + ph + _PAD
    bar_w = 70 if shared else 0
    canvas = Image.new("RGB", ((pw + _PAD) * cols + bar_w + _PAD, row_h * rows + _PAD), "white")
    draw = ImageDraw.Draw(canvas)
    lut = _lut()
    for j, ((norm, _), d) in enumerate(zip(stacks, drawn)):
        z = (d - lo) / (hi - lo) if shared else coarse(norm)
        heat = lut[np.clip(_resize(z, pw, ph) * 255, 0, 255).astype(np.uint8)].astype(np.float32)
        over = ((1 - opacity) * photo + opacity * heat).round().clip(0, 255).astype(np.uint8)
        r, c = divmod(j, cols)
        x0, y0 = _PAD + c * (pw + _PAD), r * row_h
        canvas.paste(Image.fromarray(over), (x0, y0 + head))
        for i, text in enumerate(titles[j]):
            tw = draw.textlength(text, font=font)
            draw.text((x0 + (pw - tw) / 2, y0 + _PAD // 2 + i * line), text, fill="black", font=font)
        if j < k:
            px, py = cm.peaks[j]
            cx, cy = x0 + px * pw / iw, y0 + head + py * ph / ih
            for dx, dy in ((7, 0), (0, 7)):
                draw.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill="white", width=2)
    if shared:
        _colour_bar(draw, canvas, (pw + _PAD) * cols + _PAD, head, ph, lo, hi, units, font)
    out = io.BytesIO()
    # JPEG, full chroma: a fifth of a PNG's encoding time and bytes, and the titles stay sharp
    canvas.save(out, format="JPEG", quality=90, subsampling=0)
    return out.getvalue()


def _colour_bar(draw, canvas, x: int, top: int, height: int, lo: float, hi: float, units: str, font) -> None:
    """A vertical bar from ``lo`` (bottom) to ``hi`` (top), with three ticks and the units."""
    ramp = _lut()[np.linspace(255, 0, height).astype(np.uint8)]
    canvas.paste(Image.fromarray(np.repeat(ramp[:, None, :], _BAR, axis=1)), (x, top))
    for frac, y in ((1.0, top), (0.5, top + height / 2 - 7), (0.0, top + height - 14)):
        draw.text((x + _BAR + 3, y), _fmt(lo + frac * (hi - lo)), fill="black", font=font)
    draw.text((x, top - 16), units[:10], fill="black", font=font)
