"""The Mutual-Channel Loss (paper Sec. III, Eq. 3-7) and its ablations.

Shapes: ``features`` is the ``(B, N, H, W)`` map the MC-Loss acts on, ``groups`` a
:class:`~mcviz.core.groups.ChannelGroups` with ``groups.num_channels == N``. Every term is
computed for all classes at once by gathering the features into a dense
``(B, c, max_group_size, H*W)`` tensor (uniform groups are a free reshape), so the cost
does not depend on how uneven the groups are and nothing loops over classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .groups import ChannelGroups

__all__ = [
    "VARIANTS",
    "group_reduce",
    "MCLoss",
    "MCLossOutput",
    "discriminality_logits",
    "diversity_scores",
    "grouped",
    "random_cwa_mask",
]

Variant = Literal["full", "no_div", "no_dis", "no_cwa", "div_target", "ccap"]
VARIANTS: tuple[str, ...] = ("full", "no_div", "no_dis", "no_cwa", "div_target", "ccap")


def _check(features: torch.Tensor, groups: ChannelGroups) -> None:
    if features.dim() != 4:
        raise ValueError(f"features must be (B, N, H, W), got shape {tuple(features.shape)}")
    groups.check(features.shape[1])


def grouped(x: torch.Tensor, groups: ChannelGroups, fill: Optional[float]) -> torch.Tensor:
    """``(B, N, L) -> (B, c, max_size, L)``; padding slots of short groups hold ``fill``
    (``None``: a copy of the group's first channel)."""
    b, n, l = x.shape
    if groups.is_uniform:
        return x.view(b, groups.num_classes, groups.max_size, l)
    index, valid = groups.padded_index
    index, valid = index.to(x.device), valid.to(x.device)
    out = x.index_select(1, index.flatten()).view(b, groups.num_classes, groups.max_size, l)
    if fill is not None and not bool(valid.all()):
        out = out.masked_fill(~valid[None, :, :, None], fill)
    return out


# Contiguous groups made of at most this many runs of equal sizes are reduced run by run
# through free reshapes (the paper's split has 2 runs); others go through one gather.
_MAX_RUNS = 8


def group_reduce(x: torch.Tensor, groups: ChannelGroups, op: Literal["amax", "sum"]) -> torch.Tensor:
    """Reduce ``(B, N, L)`` over the channels of each class group: ``(B, c, L)``."""
    runs = groups.runs
    if groups.is_contiguous and len(runs) <= _MAX_RUNS:
        b, _, l = x.shape
        # torch.split (not slicing): its backward is one cat instead of a zero-filled
        # full-size tensor per run; max().values backward scatters instead of the
        # tie-counting passes of amax.
        blocks = torch.split(x, [count * size for _, count, size in runs], dim=1)
        parts = [_reduce(blk.reshape(b, count, size, l), op) for blk, (_, count, size) in zip(blocks, runs)]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    return _reduce(grouped(x, groups, fill=float("-inf") if op == "amax" else 0.0), op)


def _reduce(g: torch.Tensor, op: str) -> torch.Tensor:
    return g.max(dim=2).values if op == "amax" else g.sum(dim=2)


def _keep_mask(keep: torch.Tensor, groups: ChannelGroups, batch: int) -> torch.Tensor:
    """Validate a keep mask ``(N,)`` or ``(B, N)``; returns ``(B or 1, N, 1)`` bool."""
    if keep.dtype != torch.bool:
        raise TypeError(f"keep must be a bool mask, got {keep.dtype}")
    if keep.dim() == 1:
        keep = keep[None]
    if keep.dim() != 2 or keep.shape[1] != groups.num_channels or keep.shape[0] not in (1, batch):
        raise ValueError(
            f"keep must have shape ({groups.num_channels},) or ({batch}, {groups.num_channels}), "
            f"got {tuple(keep.shape)}"
        )
    k = keep[..., None]
    if not bool((group_reduce(k.float(), groups, "sum") > 0).all()):
        raise ValueError("keep drops every channel of some class group; keep at least one per group")
    return k


def discriminality_logits(
    features: torch.Tensor,
    groups: ChannelGroups,
    keep: Optional[torch.Tensor] = None,
    pool: Literal["max", "avg"] = "max",
) -> torch.Tensor:
    """Class scores of Eq. 5: GAP over space of the cross-channel pool of each group.

    ``keep`` (bool, ``(N,)`` or ``(B, N)``) is the CWA mask; dropped channels are excluded
    from the pool rather than zeroed, so the result is right for negative features too.
    ``pool="avg"`` gives the CCAP ablation.

    Args:
        features: ``(B, N, H, W)`` MC features.
        groups: which channels belong to which class.
        keep: the CWA mask, bool ``(N,)`` or ``(B, N)``; None keeps every channel.
        pool: the cross-channel pool, ``"max"`` (the paper) or ``"avg"`` (CCAP).

    Returns:
        ``(B, c)`` class scores.

    Raises:
        ValueError: the features do not fit ``groups``, or an unknown ``pool``.
    """
    _check(features, groups)
    b, n, h, w = features.shape
    x = features.reshape(b, n, h * w)
    k = None if keep is None else _keep_mask(keep.to(x.device), groups, b)
    if pool == "max":
        if k is not None:
            x = x.masked_fill(~k, float("-inf"))
        return group_reduce(x, groups, "amax").mean(dim=-1)
    if pool == "avg":
        if k is None:
            return (group_reduce(x, groups, "sum") / _sizes(groups, x)).mean(dim=-1)
        kf = k.to(x.dtype)
        return (group_reduce(x * kf, groups, "sum") / group_reduce(kf, groups, "sum")).mean(dim=-1)
    raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")


def _sizes(groups: ChannelGroups, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(groups.sizes, dtype=like.dtype, device=like.device)[None, :, None]


DivRegion = Literal["all", "class", "object"]
DIV_REGIONS: tuple[str, ...] = ("all", "class", "object")


def _check_region(region: str) -> None:
    if region not in DIV_REGIONS:
        raise ValueError(f"region must be one of {', '.join(DIV_REGIONS)}, got {region!r}")


def diversity_scores(
    features: torch.Tensor,
    groups: ChannelGroups,
    temperature: float = 1.0,
    normalize: bool = False,
    region: DivRegion = "all",
    mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """h(F_i) of Eq. 7 for every sample and class, ``(B, c)``, always in ``[1, xi_i]``.

    Spatial softmax per channel, cross-channel max within the group, sum over space.
    The softmax runs in at least float32, so float16/bfloat16 features cannot
    overflow it. ``temperature`` divides the features before the softmax
    (1 is the paper). ``normalize`` standardises each channel over space (zero mean, unit
    variance) first, so h measures where a channel fires, not how spiky it is.

    ``region`` restricts h to a region per sample (and class), the positions where a
    detached mean map reaches its own spatial mean: ``"class"``, the mean of the class's
    channels; ``"object"``, the mean of all N channels (where the network as a whole fires,
    which one channel cannot move on its own). Each channel's softmax then runs over the
    region only, so a channel gains nothing by putting its peak on the background; the
    bounds stay ``[1, xi_i]``. ``"all"`` (the paper) uses every position.

    ``mask`` (bool, ``(B, H, W)``) gives that region from outside instead, the same for every
    class: training with ``div_anchor`` passes the object region of a frozen copy of the
    network, which the features being trained cannot move. It needs ``region="all"``.

    Args:
        features: ``(B, N, H, W)`` MC features.
        groups: which channels belong to which class.
        temperature: divides the features before the spatial softmax (1: the paper).
        normalize: standardise each channel over space first.
        region: ``"all"`` (the paper), ``"class"`` or ``"object"``.
        mask: bool ``(B, H, W)``, the positions h may use (with ``region="all"``).

    Returns:
        ``(B, c)`` h of every class, each in ``[1, xi_i]``.

    Raises:
        ValueError: the features do not fit ``groups``, an unknown region, or a mask of another shape.
    """
    _check(features, groups)
    _check_region(region)
    b, n, h, w = features.shape
    if mask is not None:
        if region != "all":
            raise ValueError(f"mask replaces the region: pass region='all', not {region!r}")
        if mask.dtype != torch.bool or tuple(mask.shape) != (b, h, w):
            raise ValueError(f"mask must be a bool tensor of shape {(b, h, w)}, got {mask.dtype} {tuple(mask.shape)}")
        if not bool(mask.flatten(1).any(dim=1).all()):
            raise ValueError("mask is empty for some sample; it must keep at least one position")
    # float32 at least (float64 stays float64): half-precision exp would overflow.
    x = features.reshape(b, n, h * w).to(torch.promote_types(features.dtype, torch.float32))
    if normalize:
        x = (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True) + 1e-5)
    if temperature != 1.0:
        x = x / temperature
    if region == "all" and mask is None:
        return group_reduce(torch.softmax(x, dim=-1), groups, "amax").sum(dim=-1)
    # Padding slots repeat the group's first channel, so they change neither the max
    # below nor (being excluded from the mean) the region.
    g = grouped(x, groups, fill=None)  # (B, c, m, L)
    inside = mask.to(x.device).reshape(b, 1, h * w) if mask is not None else _region(x, g, groups, region)
    p = torch.softmax(g.masked_fill(~inside[:, :, None, :], float("-inf")), dim=-1)
    return p.max(dim=2).values.sum(dim=-1)


@torch.no_grad()
def _region(x: torch.Tensor, g: torch.Tensor, groups: ChannelGroups, region: str) -> torch.Tensor:
    """Positions where a detached mean map reaches its own spatial mean: ``(B, c, L)`` for
    ``"class"`` (the mean of the class's channels), ``(B, 1, L)`` for ``"object"``."""
    if region == "class":
        _, valid = groups.padded_index
        v = valid.to(device=x.device, dtype=x.dtype)[None, :, :, None]
        mean_map = (g.detach() * v).sum(dim=2) / v.sum(dim=2)
    else:
        mean_map = x.detach().mean(dim=1, keepdim=True)  # shared by every class
    return mean_map >= mean_map.mean(dim=-1, keepdim=True)  # never empty: max >= mean


def random_cwa_mask(
    groups: ChannelGroups,
    batch: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    device: Optional[torch.device | str] = None,
) -> torch.Tensor:
    """Channel-wise attention mask: keep ceil(xi_i/2) random channels of every group.

    Channels owned by no class are kept. For shared channels (soft-label groups) a channel is
    kept if any owner keeps it.

    Args:
        groups: which channels belong to which class.
        batch: None for one mask for the whole batch (as the official code draws it), else one per sample.
        generator: the random source (default: torch's global one).
        device: where the mask goes.

    Returns:
        bool ``(N,)``, or ``(batch, N)`` when ``batch`` is given: True where the channel is kept.
    """
    rows = 1 if batch is None else int(batch)
    index, valid = groups.padded_index
    c, m = index.shape
    # Random scores, padding pushed last; a group keeps its ceil(size/2) best scores.
    scores = torch.rand(rows, c, m, generator=generator)
    scores = scores.masked_fill(~valid[None], 2.0)
    ranks = scores.argsort(dim=-1).argsort(dim=-1)
    sizes = torch.tensor(groups.sizes)
    keep_slot = (ranks < ((sizes + 1) // 2)[None, :, None]) & valid[None]
    owned = torch.zeros(groups.num_channels, dtype=torch.bool)
    owned[index[valid]] = True
    keep = (~owned).expand(rows, -1).clone()
    flat_index = index.flatten().expand(rows, -1)
    keep.scatter_reduce_(1, flat_index, keep_slot.reshape(rows, -1), reduce="amax")
    keep = keep if batch is not None else keep[0]
    return keep.to(device) if device is not None else keep


@dataclass
class MCLossOutput:
    """The MC-Loss and its parts. ``total = dis - lam * div`` (Eq. 3)."""

    total: torch.Tensor
    dis: torch.Tensor
    div: torch.Tensor
    logits: torch.Tensor  # the MC-branch class scores of L_dis, (B, c); CWA-masked in training

    def as_dict(self) -> dict[str, float]:
        return {"mc": float(self.total), "dis": float(self.dis), "div": float(self.div)}


class MCLoss(nn.Module):
    """Mutual-Channel Loss, ``L_MC = L_dis - lam * L_div`` (paper Eq. 3-7).

    Variants (the paper's ablations):

    - ``full``: the paper's loss; CWA in training mode only, discriminality branch only.
    - ``no_div``: minus L_div (``total = dis``).
    - ``no_dis``: minus L_dis (``total = -lam * div``).
    - ``no_cwa``: no channel-wise attention mask.
    - ``div_target``: MC-Loss-V2, diversity of the ground-truth class's group only.
    - ``ccap``: cross-channel *average* pooling in the discriminality branch.

    Options for the diversity term (beyond the paper): ``temperature`` divides the features
    before the spatial softmax; ``normalize`` standardises each channel over space first;
    ``region`` ("class" or "object") computes h only where the class's channels, or all
    channels, fire on average (:func:`diversity_scores`).
    A lambda warm-up is a training option (``TrainConfig.lam_warmup``), which sets ``lam``;
    so is the anchored region (``TrainConfig.div_anchor``), which passes ``region_mask``.

    ``div`` in the output is always the mean h the variant optimises (also for
    ``no_div``, where it is only logged, without gradient).

    Args:
        groups: which channels belong to which class.
        lam: the weight λ of L_div.
        variant: one of the variants above.
        temperature: divides the features before L_div's spatial softmax.
        normalize: standardise each channel over space before L_div.
        region: where h is measured (``"all"``, ``"class"``, ``"object"``).

    Raises:
        ValueError: an unknown variant or region, or a temperature <= 0.
    """

    def __init__(
        self,
        groups: ChannelGroups,
        lam: float = 10.0,
        variant: Variant = "full",
        temperature: float = 1.0,
        normalize: bool = False,
        region: DivRegion = "all",
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown MC-Loss variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.groups = groups
        self.lam = float(lam)
        self.variant = variant
        self.temperature = float(temperature)
        self.normalize = bool(normalize)
        _check_region(region)
        self.region = region

    def extra_repr(self) -> str:
        return f"variant={self.variant}, lam={self.lam}, groups={self.groups}"

    def forward(
        self,
        features: torch.Tensor,
        target: torch.Tensor,
        keep: Optional[torch.Tensor] = None,
        region_mask: Optional[torch.Tensor] = None,
    ) -> MCLossOutput:
        """The loss of a batch.

        Args:
            features: ``(B, N, H, W)`` MC features.
            target: ``(B,)`` class indices.
            keep: a CWA mask (drawn at random in training when not given; none in eval mode).
            region_mask: positions L_div may use, ``(B, H, W)`` bool (see :func:`diversity_scores`' ``mask``).

        Returns:
            ``total = dis - lam * div`` with its parts and the MC branch's class scores.
        """
        _check(features, self.groups)
        v = self.variant
        use_cwa = self.training and v not in ("no_cwa",)
        if use_cwa and keep is None:
            keep = random_cwa_mask(self.groups, device=features.device)
        if not use_cwa:
            keep = None
        pool: Literal["max", "avg"] = "avg" if v == "ccap" else "max"

        with torch.set_grad_enabled(torch.is_grad_enabled() and v != "no_dis"):
            logits_masked = discriminality_logits(features, self.groups, keep=keep, pool=pool)
            dis = F.cross_entropy(logits_masked.float(), target)
        # No second, unmasked pass: predicting from the MC branch uses eval mode, where
        # there is no mask and these are exactly the Eq. 5 scores.
        logits = logits_masked.detach()

        with torch.set_grad_enabled(torch.is_grad_enabled() and v != "no_div"):
            h = diversity_scores(
                features,
                self.groups,
                temperature=self.temperature,
                normalize=self.normalize,
                region=self.region,
                mask=region_mask,
            )
            if v == "div_target":
                div = h.gather(1, target[:, None]).mean()
            else:
                div = h.mean()

        if v == "no_div":
            total = dis
        elif v == "no_dis":
            total = -self.lam * div
        else:
            total = dis - self.lam * div
        return MCLossOutput(total=total, dis=dis.detach(), div=div.detach(), logits=logits)


# The paper's diversity term, as training options: a run with any other value trains another
# loss (docs/diversity.md). lambda is the paper's weight; another one is not the paper's loss
# either. mcviz.train.config.TrainConfig takes its defaults from here.
PAPER_DIVERSITY: dict[str, Any] = {
    "div_anchor": 0,
    "div_anchor_sd": 0.0,
    "div_region": "all",
    "normalize_div": False,
    "temperature": 1.0,
    "lam": 10.0,
    "lam_warmup": 0,
}


def diversity_options(hparams: dict[str, Any]) -> dict[str, Any]:
    """The diversity options of a run's ``hparams`` that differ from the paper's loss
    (:data:`PAPER_DIVERSITY`); missing ones count as the paper's."""
    return {k: hparams[k] for k, paper in PAPER_DIVERSITY.items() if hparams.get(k, paper) != paper}
