"""Writes a varied set of photos that are neither birds nor cars, for the out-of-distribution check.

People, another animal, objects, textures, scenes, documents and a few synthetic images, from
the sample images that scikit-image and matplotlib ship (no download), plus crops of the larger
ones. Nothing here is of CUB or Stanford Cars.

Usage: python scripts/other_photos.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# (scikit-image sample, kind): what each photo is of, so a failure names the kind it missed
SKIMAGE = {
    "astronaut": "person",
    "camera": "person",
    "chelsea": "animal",
    "coffee": "object",
    "rocket": "scene",
    "hubble_deep_field": "scene",
    "moon": "scene",
    "brick": "texture",
    "grass": "texture",
    "gravel": "texture",
    "page": "document",
    "text": "document",
    "coins": "object",
    "clock": "object",
    "stereo_motorcycle": "object",
    "immunohistochemistry": "texture",
    "retina": "object",
    "logo": "object",
    "cell": "texture",
    "colorwheel": "object",
}


def _skimage(name: str) -> Image.Image:
    from skimage import data

    arr = getattr(data, name)()
    if isinstance(arr, tuple):  # stereo_motorcycle: (left, right, disparity)
        arr = arr[0]
    img = Image.fromarray(np.asarray(arr))
    return img.convert("RGB")


def _synthetic(rng: np.random.Generator) -> dict[str, Image.Image]:
    out = {}
    out["synthetic-noise"] = Image.fromarray(rng.integers(0, 256, (320, 320, 3), dtype=np.uint8))
    g = np.linspace(0, 255, 320, dtype=np.uint8)
    out["synthetic-gradient"] = Image.fromarray(
        np.stack([np.tile(g, (320, 1)), np.tile(g[:, None], (1, 320)), np.full((320, 320), 128, np.uint8)], -1)
    )
    doc = Image.new("RGB", (360, 480), "white")
    d = ImageDraw.Draw(doc)
    for i in range(22):
        d.text((24, 20 + 20 * i), "Lorem ipsum dolor sit amet, consectetur adipiscing elit %d." % i, fill="black")
    out["document-rendered"] = doc
    shapes = Image.new("RGB", (320, 320), (230, 230, 240))
    d = ImageDraw.Draw(shapes)
    for _ in range(12):
        x, y = rng.integers(0, 280, 2)
        d.rectangle([int(x), int(y), int(x) + 40, int(y) + 30], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    out["object-shapes"] = shapes
    return out


def write(out: str | Path) -> list[Path]:
    """Write the set into ``out`` (PNG files named ``kind-name[-crop].png``); returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    photos: dict[str, Image.Image] = {}
    for name, kind in SKIMAGE.items():
        photos[f"{kind}-{name}"] = _skimage(name)
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photos["person-grace_hopper"] = Image.open(f).convert("RGB")
    from skimage import data

    faces = data.lfw_subset()
    for i in (0, 50, 120):
        face = Image.fromarray((faces[i] * 255).astype(np.uint8)).convert("RGB").resize((200, 200), Image.BICUBIC)
        photos[f"person-lfw{i}"] = face
    # crops of the larger photos: other framings of the same kinds
    for key in list(photos):
        img = photos[key]
        w, h = img.size
        if min(w, h) >= 400:
            photos[f"{key}-centre"] = img.crop((w // 4, h // 4, 3 * w // 4, 3 * h // 4))
            photos[f"{key}-corner"] = img.crop((0, 0, w // 2, h // 2))
    photos.update(_synthetic(rng))
    paths = []
    for key, img in sorted(photos.items()):
        p = out / f"{key}.png"
        img.save(p)
        paths.append(p)
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(f"{len(write(sys.argv[1]))} photos in {sys.argv[1]}")
