"""The part locator's cost per photo in the app: the maps alone against the maps plus the predicted
parts, measured side by side on real CUB photos with the app's default model (issue 33's target:
at most 30 ms more per photo on this CPU).

Each photo is new to the explainer in every call (its feature memo is cleared), as an upload is:
"maps" is one pass through the network and the class's channel maps; "maps + parts" adds the part
locator reading the block-5 output that pass already computed; "maps + parts, own trunk" is what
the locator would cost if it ran its own trunk (a model on another trunk).

    python benchmarks/part_locator.py [--photos 8] [--repeats 5] [--root ../shared/data/CUB_200_2011]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _timing import interleaved
from mcviz.io.locator_file import default_locator_path, load_locator
from mcviz.data.images import open_image
from mcviz.explain import Explainer

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "CUB_200_2011"))
    ap.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "cub-mc-anchor.safetensors"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    ex = Explainer.from_checkpoint(args.checkpoint)
    loc, meta = load_locator(default_locator_path())
    photos = [
        open_image(p, min_side=ex.transform.resize)
        for p in sorted(Path(args.root, "images").glob("*/*.jpg"))[::500][: args.photos]
    ]
    cls = [ex.predict(p, 1)[0].index for p in photos]

    def maps(parts: bool, own_trunk: bool = False):
        def run():
            for p, c in zip(photos, cls):
                ex._recent.clear()  # a new upload: nothing remembered
                ex.channel_maps(p, [c])
                if parts:
                    ex._fits = not own_trunk
                    ex.locate_parts(p, loc, meta)

        return run

    x, _ = ex.prepare(photos[0])
    mid = ex._forward(x)[1]

    def head_alone():
        for _ in photos:
            loc.predict(mid)

    t = interleaved(
        {
            "maps": maps(False),
            "maps + parts": maps(True),
            "maps + parts, own trunk": maps(True, True),
            "the locator's head alone": head_alone,
        },
        repeats=args.repeats,
        warmup=1,
    )
    n = len(photos)
    base = t["maps"] / n
    print(
        f"{n} CUB photos, {Path(args.checkpoint).stem}, median of {args.repeats} interleaved rounds, "
        f"{torch.get_num_threads()} threads"
    )
    for k, v in t.items():
        print(f"  {k:<26} {1000 * v / n:7.1f} ms per photo   x{v / n / base:.3f}   (+{1000 * (v / n - base):.1f} ms)")
    extra = 1000 * (t["maps + parts"] / n - base)
    print(
        f"extra per photo with the shared trunk: {extra:.1f} ms (target <= 30 ms: {'met' if extra <= 30 else 'missed'})"
    )


if __name__ == "__main__":
    main()
