"""Part-guided channels (beyond the paper; uses CUB's part annotations): each of a class's ξ channels
gets a part of its own, matched on the training split, and a term pulls its spatially softmaxed map
toward a Gaussian around that part's annotated point in every training view.

The MC-Loss asks a class's channels to differ; it does not say where. On a frozen ImageNet trunk
they tend to agree on the most discriminative spot (the throat, the eye). Here the class's channels
are given different body regions (the head, the body, a wing, the tail), each channel the region's
part most often visible in the class's training photos, so that "different parts" is what they
learn. The paper's MC-Loss uses class labels only: a model trained with ``--part-guide`` says so in
its description (:func:`mcviz.io.describe.training_name`).

Targets come from the cached views of the frozen trunk: view 0 is the evaluation crop, view 1 its
mirror (left and right parts swapped, :func:`mcviz.trunk.part_targets.mirrored`); with
``--cache-noise`` views 2 and 3 are their noisy copies, with the same targets; random-crop views
carry no target.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..core.groups import ChannelGroups
from ..data.cub import CUB, PART_NAMES
from ..data.transforms import EvalTransform
from ..trunk.part_targets import image_size, mirrored, unit_targets

__all__ = ["REGIONS", "PartGuide", "assign_parts", "guide_term"]

# Body regions, each with the parts that stand for it (a wing is whichever wing is visible: left and
# right swap in the mirror view, and a channel cannot know which one it faces).
REGIONS: dict[str, tuple[str, ...]] = {
    "head": ("crown", "throat", "beak"),
    "body": ("breast", "belly", "back"),
    "wing": ("wing",),
    "tail": ("tail",),
}
_WINGS = (PART_NAMES.index("left wing"), PART_NAMES.index("right wing"))


def _visible_rate(vis: torch.Tensor, part: str) -> torch.Tensor:
    """Per photo, 1 where ``part`` is visible (``vis``: ``(n, 15)``)."""
    if part == "wing":
        return vis[:, list(_WINGS)].amax(1)
    return vis[:, PART_NAMES.index(part)]


def assign_parts(vis: torch.Tensor, labels: Sequence[int], groups: ChannelGroups) -> list[list[str]]:
    """Each class's channels' parts: regions in turn (head, body, wing, tail, then again), within a
    region the part most often visible in the class's training photos, never a part twice while
    another is left. ``vis``: ``(n, 15)`` visibility of the training photos, ``labels`` their classes."""
    labels_t = torch.as_tensor(list(labels))
    out = []
    for c in range(groups.num_classes):
        rows = vis[labels_t == c] if (labels_t == c).any() else vis
        rate = {p: float(_visible_rate(rows, p).mean()) for parts in REGIONS.values() for p in parts}
        order = [sorted(parts, key=lambda p: -rate[p]) for parts in REGIONS.values()]
        picked: list[str] = []
        depth = 0
        while len(picked) < len(groups.channels(c)):
            for choices in order:
                if len(picked) == len(groups.channels(c)):
                    break
                left = [p for p in choices if p not in picked]
                picked.append(left[0] if left else choices[depth % len(choices)])
            depth += 1
        out.append(picked)
    return out


def _part_xy(t: dict[str, torch.Tensor], part: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(xy (n, 2), visible (n,))`` of ``part`` in one view's unit-square targets."""
    if part != "wing":
        k = PART_NAMES.index(part)
        return t["xy"][:, k], t["vis"][:, k]
    left, right = _WINGS
    use_left = t["vis"][:, left] > 0
    xy = torch.where(use_left[:, None], t["xy"][:, left], t["xy"][:, right])
    return xy, t["vis"][:, [left, right]].amax(1)


class PartGuide:
    """The targets of every training photo's own class's channels, per cached view:
    ``xy[v]`` ``(n, ξmax, 2)`` in the unit square and ``vis[v]`` ``(n, ξmax)``."""

    def __init__(
        self,
        parts: list[list[str]],
        xy: list[torch.Tensor],
        vis: list[torch.Tensor],
        sigma: float = 1.0,
        noisy_views: bool = False,
    ) -> None:
        self.parts, self.xy, self.vis, self.sigma = parts, xy, vis, float(sigma)
        self.noisy_views = noisy_views  # views 2 and 3 are noisy copies of 0 and 1 (--cache-noise)

    def target_view(self, view: int) -> Optional[int]:
        """The view whose targets ``view`` has: its own for the crop and its mirror, theirs for their
        noisy copies, None for a random crop (:meth:`mcviz.trunk.cache.ViewTransform.source_view`)."""
        if view < 2:
            return view
        return view - 2 if self.noisy_views and view < 4 else None

    @classmethod
    def build(
        cls,
        root: str,
        groups: ChannelGroups,
        tf: EvalTransform,
        samples: Optional[list] = None,
        sigma: float = 1.0,
        noisy_views: bool = False,
    ) -> "PartGuide":
        """From CUB's training split under ``root`` (``samples``: the run's own subset of its images,
        in the cache's order), with each view's targets for the class's assigned parts."""
        cub = CUB(root, "train", annotations=True)
        if samples is not None:
            pos = {str(p): i for i, (p, _) in enumerate(cub.samples)}
            keep = [pos[str(p)] for p, _ in samples]
            cub.samples, cub.parts, cub.boxes = [cub.samples[i] for i in keep], cub.parts[keep], cub.boxes[keep]
        t0 = unit_targets(cub, tf, [image_size(p) for p, _ in cub.samples])
        labels = [y for _, y in cub.samples]
        parts = assign_parts(t0["vis"], labels, groups)
        width = max(groups.sizes)
        xys, viss = [], []
        for t in (t0, mirrored(t0)):
            xy, vis = torch.zeros(len(labels), width, 2), torch.zeros(len(labels), width)
            by_part = {p: _part_xy(t, p) for p in {p for ps in parts for p in ps}}
            for i, y in enumerate(labels):
                for j, p in enumerate(parts[y]):
                    xy[i, j], vis[i, j] = by_part[p][0][i], by_part[p][1][i]
            xys.append(xy)
            viss.append(vis)
        return cls(parts, xys, viss, sigma, noisy_views)


def guide_term(
    feats: torch.Tensor,
    y: torch.Tensor,
    index: torch.Tensor,
    view: torch.Tensor,
    guide: PartGuide,
    groups: ChannelGroups,
) -> torch.Tensor:
    """Mean cross-entropy between each own channel's spatial softmax and a Gaussian (``guide.sigma``
    cells) around its part, over the (photo, channel) pairs whose part is visible in the view."""
    b, _, h, w = feats.shape
    gy, gx = torch.meshgrid(
        torch.arange(h, device=feats.device, dtype=torch.float32) + 0.5,
        torch.arange(w, device=feats.device, dtype=torch.float32) + 0.5,
        indexing="ij",
    )
    total, count = feats.new_zeros(()), 0
    for k in range(b):
        v = guide.target_view(int(view[k]))
        if v is None:  # a random-crop view: no target
            continue
        chans = groups.channels(int(y[k]))
        i = int(index[k])
        vis = guide.vis[v][i, : len(chans)].to(feats.device)
        if not (vis > 0).any():
            continue
        xy = guide.xy[v][i, : len(chans)].to(feats.device)
        d2 = (gx[None] - xy[:, 0, None, None] * w) ** 2 + (gy[None] - xy[:, 1, None, None] * h) ** 2
        target = torch.softmax(-d2.flatten(1) / (2 * guide.sigma**2), dim=1)
        logp = F.log_softmax(feats[k, chans].float().flatten(1), dim=1)
        ce = -(target * logp).sum(1)
        total = total + (ce * vis).sum()
        count += int((vis > 0).sum())
    return total / max(count, 1)
