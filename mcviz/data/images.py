"""Reading images safely: every failure becomes a :class:`ImageError` that names the file."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

# 8,000 x 8,000: larger photos are refused rather than decoded (decompression bombs).
MAX_PIXELS = 64_000_000
# The file types taken from a folder of images (mcviz explain, sanity) and by the app's upload.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class ImageError(ValueError):
    """An image cannot be used; the message says which one and why."""


def to_rgb(img: Image.Image, name: str = "image") -> Image.Image:
    """Any PIL image (CMYK, 16-bit, palette with transparency, animated, EXIF-rotated) to RGB."""
    if getattr(img, "is_animated", False):
        img = next(ImageSequence.Iterator(img))  # the first frame
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not make the picture unreadable
        pass
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / 32-bit greyscale: stretch to 8 bits instead of clipping at 255.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8), mode="L")
    if img.mode in ("P", "PA") or img.mode == "LA" or (img.mode == "RGBA"):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    return img.convert("RGB")


# Modes Image.reduce handles; others (palette, 16-bit) are converted by to_rgb at full size.
_REDUCIBLE = {"RGB", "RGBA", "L", "LA", "CMYK", "YCbCr", "I", "F"}


def _shrink(img: Image.Image, min_side: int) -> Image.Image:
    """Decode ``img`` no larger than needed for both sides to stay >= ``min_side``.

    A JPEG is decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself (``draft``): a 48-megapixel
    photo costs what a 3-megapixel one does, in time and memory. Other formats are decoded
    whole and reduced by an integer factor before any colour conversion.
    """
    w, h = img.size
    if img.format == "JPEG" and min(w, h) >= 2 * min_side:
        # the requested size is a lower bound: libjpeg picks the smallest scale above it
        img.draft(img.mode if img.mode in ("RGB", "L", "CMYK") else "RGB", (min_side, min_side))
    img.load()
    k = min(img.size) // min_side
    if k >= 2 and img.mode in _REDUCIBLE and not getattr(img, "is_animated", False):
        img = img.reduce(k)
    return img


def open_image(
    source: Union[str, Path, bytes, io.IOBase],
    name: str | None = None,
    max_pixels: int = MAX_PIXELS,
    min_side: int | None = None,
) -> Image.Image:
    """Open a file, bytes or file object as an RGB PIL image.

    With ``min_side`` the image may come back smaller than stored, but never with a side
    below ``min_side`` (or its own size): pass what the consumer resizes to (a model's input
    resize, a display size), and a huge photo decodes in a fraction of the time and memory.
    EXIF orientation is applied after decoding, so the right side stays up.

    Raises :class:`ImageError` for an empty, truncated, non-image or oversized input.
    """
    if isinstance(source, (str, Path)):
        name = name or str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ImageError(f"{name}: cannot read the file ({exc.strerror or exc})") from None
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        data = source.read()
    name = name or "image"
    if not data:
        raise ImageError(f"{name}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError(
                    f"{name}: the image is {w}x{h} pixels, larger than the {max_pixels:,}-pixel limit; resize it first"
                )
            if w < 1 or h < 1:
                raise ImageError(f"{name}: the image has no pixels")
            if min_side:
                img = _shrink(img, int(min_side))
            else:
                img.load()
            return to_rgb(img, name)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file mcviz can read (PNG, JPEG, WebP, BMP, GIF, TIFF)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: the image is too large to decode safely (decompression bomb?)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{name}: the image is truncated or corrupt ({exc})") from None
