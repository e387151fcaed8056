"""How much faster is the cached recipe than fine-tuning the whole network?

One training step (forward, backward, SGD) of the same lite0 MC-Loss model (600 = 200 x 3 MC
channels, 224 px, 14 x 14 maps, CE + MC-Loss), timed side by side:
  whole:    images in, every layer trained (BatchNorm in train mode);
  block5:   the cached block-5 outputs in (``--freeze block5``), block 6, the head conv, the MC
            layer and the head trained;
  shipped:  the cached block-5 outputs in, block 6 and the head conv frozen (run without
            gradient), the MC layer and the head trained (``--freeze head_conv --cache-layer
            block5``, the recipe of the shipped models).
The cached inputs are the trunk's real outputs for random images, as read from the cache.
Also printed: the one-time cost per image of building the cache (the trunk's forward pass
over all views). Prints images/s and the ratio; goal: one CUB model <= 20 min after the cache.

    python benchmarks/finetune_speed.py [--batch 32] [--freeze head_conv] [--cache-layer block5] [--repeats 3]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _timing import interleaved
from mcviz import MCLoss, build_model
from mcviz.train.datasets import freeze_trunk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--freeze", default="head_conv")
    ap.add_argument("--cache-layer", default="block5")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backbone", default="lite0")
    args = ap.parse_args()
    torch.manual_seed(0)
    y = torch.randint(0, 200, (args.batch,))
    x = torch.randn(args.batch, 3, args.size, args.size)

    whole = build_model(args.backbone, 200, xi=3).train()
    block5 = build_model(args.backbone, 200, xi=3).train()
    freeze_trunk(block5, args.cache_layer)
    shipped = build_model(args.backbone, 200, xi=3).train()
    freeze_trunk(shipped, args.freeze, args.cache_layer)
    shipped.split_at(args.freeze)[0].eval()
    trunk = block5.split_at(args.cache_layer)[0].eval()
    with torch.no_grad():
        z = trunk(x)
    loss = MCLoss(whole.groups, lam=10).train()

    def step(model, inputs, after):
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)

        def run():
            feats = model.features(inputs, after)
            total = F.cross_entropy(model.head(feats), y) + 1.5 * loss(feats, y).total
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
        return run

    def build_cache():
        with torch.no_grad():
            trunk(x)

    t = interleaved({"whole": step(whole, x, None), "block5": step(block5, z, args.cache_layer),
                     "shipped": step(shipped, z, args.cache_layer), "cache": build_cache},
                    repeats=args.repeats, warmup=1)
    b = args.batch
    ips = {k: b / v for k, v in t.items()}
    print(f"{args.backbone} {args.size}px batch {b}, MC-Loss (600 channels, {tuple(z.shape[-2:])} maps), "
          f"{torch.get_num_threads()} threads")
    print(f"  whole-network fine-tuning:                 {ips['whole']:7.1f} img/s")
    print(f"  cached, --freeze {args.cache_layer} (block6 + head conv trained): "
          f"{ips['block5']:7.1f} img/s -> {ips['block5'] / ips['whole']:.1f}x faster")
    print(f"  cached, --freeze {args.freeze} --cache-layer {args.cache_layer} (shipped): "
          f"{ips['shipped']:7.1f} img/s -> {ips['shipped'] / ips['whole']:.1f}x faster")
    print(f"  building the cache (once):                 {ips['cache']:7.1f} views/s")
    n = 5994  # CUB training images
    print(f"  one CUB epoch: whole {n / ips['whole'] / 60:.1f} min, block5 {n / ips['block5'] / 60:.1f} min, "
          f"shipped {n / ips['shipped'] / 60:.1f} min; the 2-view cache {2 * n / ips['cache'] / 60:.1f} min once")


if __name__ == "__main__":
    main()
