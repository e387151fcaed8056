"""Channel atlas: for every channel, the images (and the region around the peak) that
activate it most. Computed once over a data set and saved as JSON for the app."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image

from .. import data as mdata
from ..data.transforms import cell_centre
from ..io.files import atomic_write_bytes
from ..trunk.split_pass import SplitPass


@torch.no_grad()
def build_atlas(run: SplitPass, top: int = 6, window: float = 0.4) -> dict:
    """``{"channels": {n: [{"path", "score", "box"}...]}}``: the ``top`` images of ``run``'s split
    that activate each channel most; ``box`` is the region around the channel's peak (``window`` x
    the crop side) in the original image's pixels."""
    model, tf = run.model, run.transform
    base = mdata.build(run.dataset, run.root, run.split, tf)
    # a --freeze model reads its frozen trunk's outputs from the training cache when it has them
    ds, after = run.inputs(base=base)
    index = ds.indices if isinstance(ds, torch.utils.data.Subset) else list(range(len(ds)))
    n = model.groups.num_channels
    best = torch.full((n, top), -float("inf"))
    best_img = torch.full((n, top), -1, dtype=torch.long)
    best_loc = torch.zeros((n, top), dtype=torch.long)
    seen = 0
    hw = None
    for x, _ in run.bar(run.batches(ds, after), "atlas"):
        f = run.features(x, after).flatten(2)  # (B, N, HW)
        hw = f.shape[-1]
        val, loc = f.max(dim=2)  # (B, N)
        ids = torch.arange(seen, seen + len(x))
        seen += len(x)
        cand = torch.cat([best, val.T], dim=1)
        cand_img = torch.cat([best_img, ids[None].expand(n, -1)], dim=1)
        cand_loc = torch.cat([best_loc, loc.T], dim=1)
        k = min(top, cand.shape[1])
        v, j = cand.topk(k, dim=1)
        best, best_img, best_loc = v, cand_img.gather(1, j), cand_loc.gather(1, j)
    side = int(round(hw**0.5)) if hw else 1
    channels = {}
    sizes: dict[int, tuple[int, int]] = {}
    for c in range(n):
        entries = []
        for v, i, l in zip(best[c].tolist(), best_img[c].tolist(), best_loc[c].tolist()):
            if i < 0:
                continue
            path = base.samples[index[i]][0]
            if i not in sizes:
                with Image.open(path) as im:
                    sizes[i] = im.size
            w, h = sizes[i]
            px, py = cell_centre(l, side, side, tf.crop, tf.crop)
            half = window * tf.crop / 2
            # back from crop pixels to the original image's pixels
            sx, sy = w / tf.resize, h / tf.resize
            x0, y0 = (px - half + tf.offset) * sx, (py - half + tf.offset) * sy
            x1, y1 = (px + half + tf.offset) * sx, (py + half + tf.offset) * sy
            entries.append(
                {
                    "path": str(path),
                    "score": round(v, 5),
                    "box": [max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))],
                }
            )
        channels[str(c)] = entries
    return {
        "dataset": run.dataset,
        "root": run.root,
        "split": run.split,
        "images": seen,
        "top": top,
        "channels": channels,
    }


def save_atlas(atlas: dict, path: str | Path) -> None:
    atomic_write_bytes(path, json.dumps(atlas).encode())
