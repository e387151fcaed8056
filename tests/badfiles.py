"""Awkward and broken image files, made on the fly (nothing is stored in the repo)."""

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def photo(w=120, h=90, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def bomb_png(w=30000, h=30000) -> bytes:
    """A valid PNG header that claims 30000 x 30000 pixels (a decompression bomb)."""
    data = bytearray(_png(Image.new("L", (1, 1))))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", w, h)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def gif_animated() -> bytes:
    frames = [photo(40, 30, s).convert("P") for s in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def exif_rotated() -> bytes:
    """A 60 x 20 JPEG whose EXIF says 'rotate 90': it should be read as 20 x 60."""
    img = photo(60, 20)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


def bad_files() -> dict[str, tuple[str, bytes, bool]]:
    """name -> (filename, bytes, should_be_refused)."""
    good = _jpeg(photo())
    pal = photo().convert("P")
    return {
        "not an image": ("notes.png", b"hello, I am a text file, not a picture", True),
        "truncated": ("cut.jpg", good[: len(good) // 2], True),
        "empty": ("empty.png", b"", True),
        "bomb": ("huge.png", bomb_png(), True),
        "cmyk": ("cmyk.jpg", _jpeg(photo().convert("CMYK")), False),
        "16-bit": (
            "deep.png",
            _png(Image.fromarray((np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20))),
            False,
        ),
        "palette+transparency": ("pal.png", _png(pal, transparency=0), False),
        "animated gif": ("anim.gif", gif_animated(), False),
        "1x1": ("dot.png", _png(Image.new("RGB", (1, 1), (255, 0, 0))), False),
        "extreme aspect": ("strip.png", _png(photo(4000, 10)), False),
        "exif rotated": ("rotated.jpg", exif_rotated(), False),
    }
