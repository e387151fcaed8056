"""Per-channel Grad-CAM: mcviz's batched pass vs calling pytorch-grad-cam once per channel.

All channel maps of the top-3 classes (9 maps at xi = 3) of a ResNet-18 (200 classes,
600 MC channels) at 224 px, Grad-CAM at layer4. Goals on the 2-core CPU: at least 5x
faster than one package call per channel, and at most 1.5x the time of one ordinary
(class-logit) Grad-CAM of the same model.

    python benchmarks/channel_maps.py [--repeats 5]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from _timing import interleaved
from mcviz import build_model
from mcviz.explain import ChannelMeanTarget, Explainer


class Features(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m.features(x)


class Logits(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = build_model("resnet18", 200, xi=3).eval()
    ex = Explainer(model, {"input": {"crop": args.size, "resize": int(args.size * 8 / 7)}})
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    x, _ = ex.prepare(img)
    top3 = [p.index for p in ex.predict(img, 3)]
    channels = [ch for c in top3 for ch in ex.groups.channels(c)]
    layer = ex.model.body.layer4

    def ours():
        ex.channel_maps(img, top3, method="gradcam", layer="layer4")

    def per_channel():
        for n in channels:
            with GradCAM(model=Features(ex.model), target_layers=[layer]) as cam:
                cam(input_tensor=x, targets=[ChannelMeanTarget(n)])

    def one_gradcam():
        with GradCAM(model=Logits(ex.model), target_layers=[layer]) as cam:
            cam(input_tensor=x, targets=[ClassifierOutputTarget(top3[0])])

    t = interleaved({"mcviz": ours, "per-channel": per_channel, "one Grad-CAM": one_gradcam}, repeats=args.repeats)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, resnet18 {args.size}px, "
        f"{len(channels)} channel maps (top-3 classes x xi=3)"
    )
    print(f"mcviz batched:              {t['mcviz'] * 1e3:7.0f} ms (includes preprocessing and h)")
    print(
        f"grad-cam once per channel:  {t['per-channel'] * 1e3:7.0f} ms -> mcviz is "
        f"{t['per-channel'] / t['mcviz']:.1f}x faster (goal >= 5x)"
    )
    print(
        f"one ordinary Grad-CAM:      {t['one Grad-CAM'] * 1e3:7.0f} ms -> all {len(channels)} maps cost "
        f"{t['mcviz'] / t['one Grad-CAM']:.2f}x of it (goal <= 1.5x)"
    )


if __name__ == "__main__":
    main()
