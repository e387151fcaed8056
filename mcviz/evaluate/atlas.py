"""Channel atlas: for every channel, the images (and the region around the peak) that
activate it most. Computed once over a data set and saved as JSON for the app."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import torch
from PIL import Image
from torch.utils.data import DataLoader
from tqdm import tqdm

from .. import data as mdata
from ..data.transforms import cell_centre
from ..io.files import atomic_write_bytes
from ..core.folding import for_inference
from ..core.models import MCNet, channels_last
from ..trunk.cache import eval_inputs
from ..io.checkpoint import as_meta
from ..io.meta import CheckpointMeta


@torch.no_grad()
def build_atlas(model: MCNet, meta: CheckpointMeta, dataset: str, root: str, split: str = "test", top: int = 6,
                limit: Optional[int] = None, workers: int = 2, batch_size: int = 64,
                window: float = 0.4, use_cache: bool = True, cache_dir: Optional[str] = None) -> dict:
    """``{"channels": {n: [{"path", "score", "box"}...]}}``; ``box`` is the region around the
    channel's peak (``window`` x the crop side) in the original image's pixels."""
    meta = as_meta(meta, model)
    tf = mdata.EvalTransform.from_config(meta.input)
    base = mdata.build(dataset, root, split, tf)
    # a --freeze model reads its frozen trunk's outputs from the training cache when it has them
    ds, after = eval_inputs(model, meta, base, split, limit, use_cache, cache_dir)
    index = ds.indices if isinstance(ds, torch.utils.data.Subset) else list(range(len(ds)))
    n = model.groups.num_channels
    best = torch.full((n, top), -float("inf"))
    best_img = torch.full((n, top), -1, dtype=torch.long)
    best_loc = torch.zeros((n, top), dtype=torch.long)
    seen = 0
    fast = for_inference(model)  # after the cache lookup, which hashes the trunk's own weights
    hw = None
    loader = DataLoader(ds, batch_size=batch_size, num_workers=0 if after else workers)
    for x, _ in tqdm(loader, desc="atlas", file=sys.stderr):
        f = fast.features(channels_last(x), after).float().flatten(2)  # (B, N, HW)
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
    side = int(round(hw ** 0.5)) if hw else 1
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
            entries.append({"path": str(path), "score": round(v, 5),
                            "box": [max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))]})
        channels[str(c)] = entries
    return {"dataset": dataset, "root": str(root), "split": split, "images": seen, "top": top, "channels": channels}


def save_atlas(atlas: dict, path: str | Path) -> None:
    atomic_write_bytes(path, json.dumps(atlas).encode())
