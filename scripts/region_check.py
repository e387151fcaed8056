"""How much of the 8x8 map the "object" region of L_div covers, and how much of it lies in the
bird's box, on every 29th CUB test image (the figures quoted in docs/diversity.md).

    python scripts/region_check.py [--data ../shared/data] [MODEL ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mcviz.checkpoint import load_checkpoint  # noqa: E402
from mcviz.data import CUB, EvalTransform  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=["cub-mc-object", "cub-mc", "cub-mc-no-div"])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = ap.parse_args()
    for name in args.models:
        model, meta = load_checkpoint(REPO / "checkpoints" / f"{name}.safetensors")
        ds = CUB(Path(args.data) / "CUB_200_2011", "test", EvalTransform.from_config(meta["input"]),
                 annotations=True)
        share, in_box = [], []
        for i in list(range(0, len(ds), 29))[:200]:
            x, _, ann = ds[i]
            with torch.no_grad():
                mean = model.features(x[None])[0].mean(0)
            inside = mean >= mean.mean()  # the region of MCLoss(region="object")
            step = meta["input"]["crop"] / inside.shape[1]
            ys, xs = torch.nonzero(inside, as_tuple=True)
            cx, cy = (xs.float() + 0.5) * step, (ys.float() + 0.5) * step
            bx, by, bw, bh = ann["box"].tolist()
            in_box.append(((cx >= bx) & (cx <= bx + bw) & (cy >= by) & (cy <= by + bh)).float().mean().item())
            share.append(inside.float().mean().item())
        print(f"{name}: object region covers {sum(share) / len(share):.3f} of the map, "
              f"{sum(in_box) / len(in_box):.3f} of it in the bird's box ({len(share)} images)")


if __name__ == "__main__":
    main()
