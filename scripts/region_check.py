"""How much of the feature map (14x14 for the shipped models) the "object" region of L_div covers,
and how much of it lies in the bird's box, on every 29th CUB test image (the figures quoted in
docs/diversity.md).

    python scripts/region_check.py [--data ../shared/data] [MODEL_OR_FILE ...] [--sd 0 1]

``--sd S``: the region where the mean channel map reaches its spatial mean + S standard
deviations (S = 0 is MCLoss(region="object"); S > 0 the tighter regions of --div-anchor-sd).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mcviz.io.checkpoint import load_checkpoint
from mcviz.data import CUB, EvalTransform
from mcviz.train.diversity import threshold_region

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=["cub-mc-anchor", "cub-mc", "cub-mc-no-div"])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--sd", type=float, nargs="+", default=[0.0])
    args = ap.parse_args()
    for name in args.models:
        path = Path(name) if name.endswith(".safetensors") else REPO / "checkpoints" / f"{name}.safetensors"
        model, meta = load_checkpoint(path)
        ds = CUB(Path(args.data) / "CUB_200_2011", "test", EvalTransform.from_config(meta.input), annotations=True)
        share = {sd: [] for sd in args.sd}
        in_box = {sd: [] for sd in args.sd}
        for i in list(range(0, len(ds), 29))[:200]:
            x, _, ann = ds[i]
            with torch.no_grad():
                mean = model.features(x[None]).float().mean(dim=1)
            for sd in args.sd:
                # sd = 0: the region of MCLoss(region="object"); the model plays the frozen anchor
                inside = threshold_region(mean, sd)[0]
                step = meta.input["crop"] / inside.shape[1]
                ys, xs = torch.nonzero(inside, as_tuple=True)
                cx, cy = (xs.float() + 0.5) * step, (ys.float() + 0.5) * step
                bx, by, bw, bh = ann["box"].tolist()
                in_box[sd].append(((cx >= bx) & (cx <= bx + bw) & (cy >= by) & (cy <= by + bh)).float().mean().item())
                share[sd].append(inside.float().mean().item())
        for sd in args.sd:
            n = len(share[sd])
            print(
                f"{name} (mean + {sd:g} sd): object region covers {sum(share[sd]) / n:.3f} of the map, "
                f"{sum(in_box[sd]) / n:.3f} of it in the bird's box ({n} images)"
            )


if __name__ == "__main__":
    main()
