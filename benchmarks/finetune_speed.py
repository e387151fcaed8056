"""How much faster is the cached recipe than fine-tuning the whole network?

One training step (forward, backward, SGD) of the same lite0 MC-Loss model (600 = 200 x 3 MC
channels, 224 px, 14 x 14 maps, CE + MC-Loss), timed side by side:
  whole:  images in, every layer trained (BatchNorm in train mode);
  cached: the frozen trunk's cached outputs in (``--freeze``; here random tensors of the
          cached shape, as read from the cache), only the steps after it trained.
Also printed: the one-time cost per image of building the cache (the trunk's forward pass
over all views). Prints images/s and the ratio; goal: one CUB model <= 20 min after the cache.

    python benchmarks/finetune_speed.py [--batch 32] [--freeze block5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks._timing import interleaved  # noqa: E402
from mcviz import MCLoss, build_model  # noqa: E402
from mcviz.training import freeze_trunk  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--freeze", default="block5")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backbone", default="lite0")
    args = ap.parse_args()
    torch.manual_seed(0)
    y = torch.randint(0, 200, (args.batch,))
    x = torch.randn(args.batch, 3, args.size, args.size)

    whole = build_model(args.backbone, 200, xi=3).train()
    cached = build_model(args.backbone, 200, xi=3).train()
    freeze_trunk(cached, args.freeze)
    trunk = cached.split_at(args.freeze)[0].eval()
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

    t = interleaved({"whole": step(whole, x, None), "cached": step(cached, z, args.freeze), "cache": build_cache},
                    repeats=args.repeats, warmup=1)
    b = args.batch
    ips = {k: b / v for k, v in t.items()}
    print(f"{args.backbone} {args.size}px batch {b}, MC-Loss (600 channels, {tuple(z.shape[-2:])} maps), "
          f"{torch.get_num_threads()} threads")
    print(f"  whole-network fine-tuning:       {ips['whole']:7.1f} img/s")
    print(f"  cached recipe (--freeze {args.freeze}): {ips['cached']:7.1f} img/s -> {ips['cached'] / ips['whole']:.1f}x faster")
    print(f"  building the cache (once):       {ips['cache']:7.1f} views/s")
    cub_train = 5994
    print(f"  one CUB epoch: whole {cub_train / ips['whole'] / 60:.1f} min, cached {cub_train / ips['cached'] / 60:.1f} min;"
          f" cache of 2 views {2 * cub_train / ips['cache'] / 60:.1f} min once")


if __name__ == "__main__":
    main()
