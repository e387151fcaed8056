"""Per-channel maps of the same CUB test images under several models, for docs/diversity.md.

    python scripts/diversity_figures.py [--data ../shared/data] [MODEL ...]

Runs `mcviz explain --class <true class>` for each model (default: every shipped CUB model of
seed 0 whose name is in MODELS) on a fixed set of test images, into docs/diversity/<model>/.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# CUB test images (the first test image of these classes): water, land, perched, flying birds
CLASSES = [1, 36, 95, 187]
MODELS = ["cub-mc", "cub-mc-no-div", "cub-mc-anchor", "cub-ce"]


def pick_images(cub: Path) -> list[tuple[Path, int]]:
    from mcviz.data import CUB

    ds = CUB(cub, "test")
    out, seen = [], set()
    for path, label in ds.samples:
        if label in CLASSES and label not in seen:
            seen.add(label)
            out.append((path, label))
    return sorted(out, key=lambda t: CLASSES.index(t[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = ap.parse_args()
    models = args.models or [m for m in MODELS if (REPO / "checkpoints" / f"{m}.safetensors").exists()]
    images = pick_images(Path(args.data) / "CUB_200_2011")
    for m in models:
        out = REPO / "docs" / "diversity" / m
        for path, label in images:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "mcviz",
                    "explain",
                    str(REPO / "checkpoints" / f"{m}.safetensors"),
                    str(path),
                    "--class",
                    str(label),
                    "--out",
                    str(out),
                ],
                check=True,
            )
        shrink(out)
    print("\n".join(f"{p.name} (class {c})" for p, c in images))


def shrink(folder: Path) -> None:
    """Quantise the panels to 256 colours: a third of the bytes in the repository, same look."""
    from PIL import Image

    for f in folder.glob("*.png"):
        with Image.open(f) as im:
            q = im.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
        q.save(f, optimize=True)


if __name__ == "__main__":
    main()
