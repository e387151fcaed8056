"""How much faster is the cached recipe than fine-tuning the whole network?

One training step (forward, backward, SGD) of the same lite0 MC-Loss model (600 = 200 x 3 MC
channels, 224 px, 14 x 14 maps (``--size 288``: the shipped 18 x 18), CE + MC-Loss), timed side by side:
  whole:    images in, every layer trained (BatchNorm in train mode);
  block5:   the cached block-5 outputs in (``--freeze block5``), block 6, the head conv, the MC
            layer and the head trained;
  block4:   the cached block-4 outputs in (``--freeze block4``): block 5 trained as well;
  shipped:  the cached block-5 outputs in, block 6 and the head conv frozen (run without
            gradient), the MC layer and the head trained (``--freeze head_conv --cache-layer
            block5``, the recipe of the shipped models).
The cached inputs are the trunk's real outputs for random images, as read from the cache.
Also printed: the one-time cost per image of building the cache (the trunk's forward pass
over all views). Every network runs in channels_last, as training does. Prints images/s and the
ratios; goal: one CUB model <= 30 min after the cache.

    python benchmarks/finetune_speed.py [--batch 32] [--freeze head_conv] [--cache-layer block5] [--repeats 3]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _timing import interleaved
from mcviz import MCLoss, build_model
from mcviz.core.models import channels_last
from mcviz.train.datasets import freeze_trunk


def _frozen(backbone: str, freeze: str, cache_layer: str = ""):
    """A lite0 MC-Loss model in training mode with its body frozen through ``freeze``."""
    model = channels_last(build_model(backbone, 200, xi=3).train())
    if freeze:
        freeze_trunk(model, freeze, cache_layer)
        model.split_at(freeze)[0].eval()
    return model


def _step(model, inputs, after, y, loss):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)

    def run():
        feats = model.features(inputs, after)
        total = F.cross_entropy(model.head(feats), y) + 1.5 * loss(feats, y).total
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()

    return run


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
    x = channels_last(torch.randn(args.batch, 3, args.size, args.size))
    whole, block5, block4 = (_frozen(args.backbone, f) for f in ("", args.cache_layer, "block4"))
    shipped = _frozen(args.backbone, args.freeze, args.cache_layer)
    trunk = block5.split_at(args.cache_layer)[0]
    with torch.no_grad():
        z, z4 = trunk(x), block4.split_at("block4")[0](x)
    loss = MCLoss(whole.groups, lam=10).train()

    def build_cache():
        with torch.no_grad():
            trunk(x)

    t = interleaved(
        {
            "whole": _step(whole, x, None, y, loss),
            "block5": _step(block5, z, args.cache_layer, y, loss),
            "block4": _step(block4, z4, "block4", y, loss),
            "shipped": _step(shipped, z, args.cache_layer, y, loss),
            "cache": build_cache,
        },
        repeats=args.repeats,
        warmup=1,
    )
    report(args, {k: args.batch / v for k, v in t.items()}, tuple(z.shape[-2:]))


def report(args, ips: dict, maps: tuple) -> None:
    print(
        f"{args.backbone} {args.size}px batch {args.batch}, MC-Loss (600 channels, {maps} maps), "
        f"{torch.get_num_threads()} threads, channels_last"
    )
    print(f"  whole-network fine-tuning:                 {ips['whole']:7.1f} img/s")
    print(
        f"  cached, --freeze block4 (block 5 trained too):  {ips['block4']:7.1f} img/s -> "
        f"{ips['block4'] / ips['whole']:.1f}x faster"
    )
    print(
        f"  cached, --freeze {args.cache_layer} (block6 + head conv trained): "
        f"{ips['block5']:7.1f} img/s -> {ips['block5'] / ips['whole']:.1f}x faster"
    )
    print(
        f"  cached, --freeze {args.freeze} --cache-layer {args.cache_layer} (shipped): "
        f"{ips['shipped']:7.1f} img/s -> {ips['shipped'] / ips['whole']:.1f}x faster"
    )
    print(f"  building the cache (once):                 {ips['cache']:7.1f} views/s")
    n = 5994  # CUB training images
    print(
        f"  one CUB epoch: whole {n / ips['whole'] / 60:.1f} min, block4 {n / ips['block4'] / 60:.1f} min, "
        f"block5 {n / ips['block5'] / 60:.1f} min, shipped {n / ips['shipped'] / 60:.1f} min; "
        f"the 2-view cache {2 * n / ips['cache'] / 60:.1f} min once"
    )


if __name__ == "__main__":
    main()
