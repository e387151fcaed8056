"""How fast does `mcviz eval` go through a CUB model, and what do channels_last, folding, the
allocator and the cache buy?

The same shipped checkpoint evaluated (the loop of `mcviz eval`: `mcviz.evaluate.accuracy.evaluate`) over
the same N CUB test images, timed side by side, interleaved:
  images, NCHW:          JPEG decoding, transform and the whole network in the default layout;
  images, channels_last: the same in channels_last;
  + BN folded:           and each BatchNorm folded into its conv (`mcviz.core.folding`): what
                         `mcviz eval` runs;
  ..., glibc's malloc:   that with glibc's default allocator, which maps and zero-fills fresh
                         pages for every large tensor (`mcviz.memory.keep_freed_memory`, which
                         `mcviz eval` switches on, keeps freed memory for the next batch instead);
  cache, folded:         the frozen trunk's cached outputs in, only the trained steps run
                         (`mcviz eval` when `mcviz cache` or training made the cache).
Prints images/s and the ratios; goal: `mcviz eval` reads the images at >= 40 img/s.

    python benchmarks/eval_speed.py [--checkpoint checkpoints/cub-mc-anchor.safetensors] [--images 384]
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from _timing import interleaved
from mcviz import load_checkpoint
from mcviz.core.folding import for_inference
from mcviz.core.models import channels_last
from mcviz.evaluate import accuracy
from mcviz.evaluate.accuracy import evaluate
from mcviz.trunk.split_pass import SplitPass
from mcviz.memory import keep_freed_memory


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    repo = Path(__file__).resolve().parents[1]
    ap.add_argument("--checkpoint", default=str(repo / "checkpoints" / "cub-mc-anchor.safetensors"))
    ap.add_argument("--data", default=str(repo.parent / "shared" / "data"))
    ap.add_argument("--images", type=int, default=384)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    model, meta = load_checkpoint(args.checkpoint)
    root = str(Path(args.data) / "CUB_200_2011")
    images, _ = SplitPass(model, meta, "cub", root, limit=args.images, use_cache=False).inputs()
    cached, after = SplitPass(model, meta, "cub", root, limit=args.images).inputs()
    nchw = copy.deepcopy(model).eval()
    last = channels_last(copy.deepcopy(model).eval())
    folded = for_inference(last)

    def run(m, ds, layer, to_last, keep=True):
        loader = DataLoader(ds, batch_size=args.batch, num_workers=0 if layer else args.workers)

        def go():
            # the NCHW run is evaluate() with its channels_last conversion switched off
            accuracy.channels_last = channels_last if to_last else (lambda x: x)
            keep_freed_memory(keep)
            try:
                evaluate(m, loader, torch.device("cpu"), m.num_classes, progress=False, after=layer)
            finally:
                accuracy.channels_last = channels_last
                keep_freed_memory(True)

        return go

    fns = {
        "images, NCHW": run(nchw, images, None, False),
        "images, channels_last": run(last, images, None, True),
        "+ BN folded": run(folded, images, None, True),
        "..., glibc's malloc": run(folded, images, None, True, keep=False),
    }
    if after:
        fns["cache, folded"] = run(folded, cached, after, True)
    t = interleaved(fns, repeats=args.repeats, warmup=1)
    n = len(images)
    print(
        f"{Path(args.checkpoint).name}: {n} CUB test images, batch {args.batch}, {torch.get_num_threads()} threads, "
        f"{args.workers} loader worker(s)"
    )
    base = n / t["images, NCHW"]
    for k, v in t.items():
        print(f"  {k:24s} {n / v:7.1f} img/s  ({n / v / base:.2f}x)")
    if not after:
        print("  (no cache of this split: `mcviz cache CKPT --dataset cub --root ...` makes one)")


if __name__ == "__main__":
    main()
