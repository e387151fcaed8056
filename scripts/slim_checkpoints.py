"""Rewrites shipped checkpoints of frozen-body models without their frozen body (issue 31/33:
room in checkpoints/). The body a ``--freeze`` model was trained on is the weights package's;
the file keeps only the trained layers and the body's digest, and loading rebuilds the body
from the package (``mcviz.io.checkpoint``, ``packaged_body``).

Each file is checked first: its stored (float16) body must be the package's body rounded to
float16, tensor by tensor, or the file is left alone. The metadata is kept as it was.

Usage: python scripts/slim_checkpoints.py checkpoints/*.safetensors
Afterwards the side files (ranking, parts, atlas) are stale by their checkpoint hash: remake
them with scripts/train_checkpoints.sh --sides NAME ... (their numbers change by the float16
rounding of the body that is gone: the rebuilt body is the one the model was trained on).
"""

from __future__ import annotations

import os
import sys

import torch

from mcviz.core.models import build_model
from mcviz.io.checkpoint import load_checkpoint, packaged_keys, save_checkpoint


def slim(path: str) -> str:
    old, meta = load_checkpoint(path)
    if meta.raw.get("packaged_body"):
        return "already slim"
    layer = meta.hparam("freeze")
    if not layer or not meta.backbone.startswith("lite") or not meta.hparam("pretrained"):
        return "not a frozen packaged body: kept whole"
    new = build_model(
        meta.backbone,
        meta.num_classes,
        meta.channel_groups(),
        pretrained=True,
        mc_layer=meta.mc_layer,
        head=meta.head,
        predict=meta.predict,
        mc_kernel=meta.mc_kernel,
        soft=meta.soft,
        mc_hidden=meta.mc_hidden,
    ).eval()
    dtype = getattr(torch, meta.storage_dtype)
    old_state, new_state = old.state_dict(), new.state_dict()
    for k in packaged_keys(new, layer):
        a, b = old_state[k], new_state[k]
        if a.is_floating_point() and not torch.equal(a, b.to(dtype).to(a.dtype)):
            return f"kept whole: {k} is not the package's weights"
    trained = {k: v for k, v in old_state.items() if k not in set(packaged_keys(new, layer))}
    new.load_state_dict(trained, strict=False)
    extra = {k: v for k, v in meta.extra.items() if isinstance(v, torch.Tensor)}
    before = os.path.getsize(path)
    save_checkpoint(
        path,
        new,
        meta.to_dict(),
        dtype=None if dtype == torch.float32 else dtype,
        extra_tensors=extra,
        packaged_body=layer,
    )
    return f"{before / 1e6:.1f} MB -> {os.path.getsize(path) / 1e6:.1f} MB"


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(f"{p}: {slim(p)}")
