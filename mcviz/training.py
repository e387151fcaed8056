"""The training loop: one process or DistributedDataParallel, resumable, logged.

Reads like torchvision's ``references/classification``: build data, model, loss,
optimiser and schedule from a :class:`TrainConfig`, then ``for epoch: train, evaluate,
save``. After every epoch the model goes to ``OUT/last.safetensors`` (the shipped
format), the full training state to ``OUT/state.pt`` (loaded with
``weights_only=True``) and one JSON line to ``OUT/metrics.jsonl``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from . import data as mdata
from .checkpoint import atomic_write_bytes, save_checkpoint
from .groups import ChannelGroups
from .loss import MCLoss, diversity_scores
from .models import MCNet, build_model, channels_last, input_norm
from .soft_labels import l_inter, l_intra, regroup, shared_channels, update_soft_labels

# CLI variant name -> MCLoss variant (None: cross-entropy only).
TRAIN_VARIANTS: dict[str, Optional[str]] = {
    "ce": None,
    "mc": "full",
    "mc-no-div": "no_div",
    "mc-no-dis": "no_dis",
    "mc-no-cwa": "no_cwa",
    "mc-v2": "div_target",
    "mc-ccap": "ccap",
    "mc-soft": "full",  # MC-Loss on groups regrouped from learned soft channel labels (Sec. IV-E)
}


class ConfigError(ValueError):
    """Options that do not fit together or do not fit the model; the message says why."""


@dataclass
class TrainConfig:
    dataset: str
    root: str
    out: str
    backbone: str = "small"
    variant: str = "mc"
    xi: int = 3
    uneven: bool = False  # group the backbone's own channels with ChannelGroups.split
    head: str = "official"
    predict: str = "head"
    mu: float = 1.5
    lam: float = 10.0
    temperature: float = 1.0
    normalize_div: bool = False
    div_region: str = "all"  # "class" / "object": L_div only inside that region (MCLoss region=)
    lam_warmup: int = 0  # epochs over which lambda ramps linearly from 0 to --lam (see lam_at)
    # K > 0: lambda = 0 for K epochs, then L_div only inside the object region of the network
    # frozen at that point (anchor_region), which the trained features cannot move; with
    # lam_warmup W, lambda then ramps over the W epochs after the anchor
    div_anchor: int = 0
    div_anchor_sd: float = 0.0  # the anchor's region: mean map >= its spatial mean + this x its std
    soft_threshold: float = 0.5
    soft_momentum: float = 0.99
    # mc-soft: L_intra and L_inter (Eq. 10-11) divided by N, the number of channels. Summed over
    # N = 600 channels at weight 1 they outweigh CE ~100x and saturate the SE weights into a
    # class-independent mask (docs/soft-labels.md); ours, not the paper's.
    soft_norm: bool = False
    image_size: int = 112
    batch_size: int = 32
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    epochs: int = 10
    pretrained: bool = False
    # Freeze the body up to and including this step (e.g. "block5" of lite0) and train the rest
    # on its outputs, computed once into a cache (mcviz.trunk_cache); "" trains everything.
    freeze: str = ""
    cache_layer: str = ""  # cache this step's outputs (default: the freeze step); frozen steps after it run each batch
    cache_views: int = 2  # views per training image in the cache: eval crop, mirror, random crops
    cache_dir: str = ""  # default: $MCVIZ_CACHE or .cache/trunk
    body_lr: float = 1.0  # learning-rate factor of the (pretrained) body's trainable steps
    label_smoothing: float = 0.0  # of the CE term (torch's cross_entropy label_smoothing)
    seed: int = 0
    workers: int = 2
    limit: Optional[int] = None
    device: str = "auto"
    amp: bool = True
    save_dtype: str = "float32"
    eval_every: int = 1  # evaluate every K epochs (the final epoch always)
    skip_bad: bool = False
    command: str = ""

    def __post_init__(self) -> None:
        if self.variant not in TRAIN_VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {', '.join(TRAIN_VARIANTS)}")
        if self.schedule not in ("cosine", "step"):
            raise ValueError(f"schedule must be 'cosine' or 'step', got {self.schedule!r}")
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")
        if self.div_anchor < 0 or self.div_anchor_sd < 0 or self.lam_warmup < 0:
            raise ValueError("div_anchor, div_anchor_sd and lam_warmup must be >= 0")
        if self.cache_views < 1 or self.body_lr < 0:
            raise ValueError("cache_views must be >= 1 and body_lr >= 0")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError("label_smoothing must be in [0, 1)")
        if self.soft_norm and self.variant != "mc-soft":
            raise ValueError("--soft-norm scales the soft-label terms: it needs --variant mc-soft")
        if self.cache_layer and not self.freeze:
            raise ValueError("--cache-layer needs --freeze")
        if self.freeze and not self.pretrained:
            raise ValueError("--freeze keeps the trunk as it is: it needs --pretrained weights")
        if self.div_anchor_sd and not self.div_anchor:
            raise ValueError("div_anchor_sd sets the region of div_anchor: it needs div_anchor > 0")
        if self.div_anchor:
            if self.variant in ("ce", "mc-no-div", "mc-soft"):
                raise ValueError(f"div_anchor needs a variant with L_div on fixed groups, not {self.variant!r}")
            if self.div_region != "all":
                raise ValueError("div_anchor sets the region of L_div: it cannot be combined with div_region")
            if self.div_anchor >= self.epochs:
                raise ValueError(f"div_anchor {self.div_anchor} >= epochs {self.epochs}: L_div would never run")


# The options that make the diversity term differ from the paper's (docs/diversity.md);
# lambda is the paper's weight, but a run with another one is not the paper's loss either.
DIVERSITY_OPTIONS: tuple[str, ...] = ("div_anchor", "div_anchor_sd", "div_region", "normalize_div", "temperature",
                                      "lam", "lam_warmup")


def diversity_options(hparams: dict) -> dict[str, Any]:
    """The diversity options of a run's ``hparams`` that differ from the paper's loss
    (the :class:`TrainConfig` defaults); missing ones count as defaults."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    return {k: hparams[k] for k in DIVERSITY_OPTIONS if hparams.get(k, defaults[k]) != defaults[k]}


def lam_at(cfg: TrainConfig, epoch: int) -> float:
    """lambda in (0-based) ``epoch``: the warm-up ramps it linearly from 0 (``lam_warmup`` W:
    lam * epoch / W); with ``div_anchor`` K it is 0 before the anchor and the ramp starts
    at it, ``lam * (epoch - K + 1) / W``, so that L_div is on from epoch K."""
    w, k = cfg.lam_warmup, cfg.div_anchor
    if k:
        if epoch < k:
            return 0.0
        return cfg.lam * (min(1.0, (epoch - k + 1) / w) if w > 0 else 1.0)
    return cfg.lam * (min(1.0, epoch / w) if w > 0 else 1.0)


@torch.no_grad()
def anchor_region(anchor: MCNet, x: torch.Tensor, sd: float = 0.0, after: Optional[str] = None) -> torch.Tensor:
    """Where the frozen ``anchor`` network fires on ``x``: the positions at which the mean of
    its N channels reaches its spatial mean (+ ``sd`` x its spatial standard deviation; the
    peak always counts), ``(B, H, W)`` bool. With ``sd=0`` this is the ``object`` region of
    :func:`~mcviz.loss.diversity_scores`, computed by a network L_div does not train."""
    return threshold_region(anchor.features(x, after).float().mean(dim=1), sd)


def threshold_region(mean_map: torch.Tensor, sd: float = 0.0) -> torch.Tensor:
    """``(B, H, W)`` bool: where ``mean_map`` reaches its spatial mean + ``sd`` x its spatial
    standard deviation, and its peak (so the region is never empty)."""
    m = mean_map.flatten(1)
    inside = m >= m.mean(dim=1, keepdim=True) + sd * m.std(dim=1, keepdim=True)
    inside |= m == m.amax(dim=1, keepdim=True)
    return inside.view_as(mean_map)


def _frozen_copy(model: MCNet, state: Optional[dict] = None) -> MCNet:
    anchor = copy.deepcopy(model)
    if state is not None:
        anchor.load_state_dict(state)
    anchor.eval()
    for p in anchor.parameters():
        p.requires_grad_(False)
    return anchor


# -- distributed helpers ------------------------------------------------------------------
def _dist_env() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA GPU is available")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


class _TrainForward(nn.Module):
    """DDP hooks ``forward`` only, so the training pass returns both streams from it.
    ``after``: the inputs are the outputs of that (frozen, cached) body step."""

    def __init__(self, model: MCNet, after: Optional[str] = None) -> None:
        super().__init__()
        self.model = model
        self.after = after

    def forward(self, x: torch.Tensor):
        feats = self.model.features(x, self.after)
        if self.model.soft:
            w = self.model.se(feats)
            # L_intra and L_inter (Eq. 10-11) train the SE block only: they sum over all N
            # channels at weight 1, and their gradient let into the backbone blew the features
            # up (docs/soft-labels.md). Same values as w; only the graph differs.
            w_aux = self.model.se(feats.detach())
            return feats, self.model.head(feats * w[:, :, None, None].to(feats.dtype)), w_aux
        return feats, self.model.head(feats), None


# -- data -------------------------------------------------------------------------------------
_subset = mdata.random_subset


def _limited(ds, limit: Optional[int], seed: int):
    """The same images as :func:`_subset`, as a data set of the same kind (the cache needs
    ``samples`` and ``load``)."""
    if limit is None or limit >= len(ds):
        return ds
    keep = _subset(ds, limit, seed).indices
    out = copy.copy(ds)
    out.samples = [ds.samples[i] for i in keep]
    return out


def build_datasets(cfg: TrainConfig):
    mean, std = input_norm(cfg.backbone)
    train_tf = mdata.train_transform(cfg.image_size, mean=mean, std=std)
    evaltf = mdata.EvalTransform(cfg.image_size, mean=mean, std=std)
    train = mdata.build(cfg.dataset, cfg.root, "train", train_tf, skip_bad=cfg.skip_bad, min_side=evaltf.resize)
    test = mdata.build(cfg.dataset, cfg.root, "test", evaltf, skip_bad=cfg.skip_bad, min_side=evaltf.resize)
    if len(train.classes) != len(test.classes):
        raise mdata.DataError(f"train has {len(train.classes)} classes but test has {len(test.classes)}")
    return _subset(train, cfg.limit, cfg.seed), _subset(test, cfg.limit, cfg.seed + 1), evaltf


def trunk_caches(cfg: TrainConfig, model: MCNet, evaltf, progress: bool = True):
    """``(train, test)`` :class:`~mcviz.trunk_cache.CachedFeatures` of the body up to
    ``cfg.cache_layer or cfg.freeze`` under ``evaltf`` (:func:`build_datasets`' transform),
    built first where missing (shared by every run with the same trunk)."""
    from .trunk_cache import CachedFeatures, ViewTransform, build_cache, cache_folder, default_cache_dir

    layer = cfg.cache_layer or cfg.freeze
    trunk = model.split_at(layer)[0]
    root = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    out = []
    for split, views, seed in (("train", cfg.cache_views, cfg.seed), ("test", 1, cfg.seed + 1)):
        ds = _limited(mdata.build(cfg.dataset, cfg.root, split, skip_bad=cfg.skip_bad, min_side=evaltf.resize),
                      cfg.limit, seed)
        tf = ViewTransform(evaltf, views)
        what = {"dataset": cfg.dataset, "split": split, "backbone": cfg.backbone, "layer": layer}
        folder = cache_folder(root, ds, trunk, tf, what)
        build_cache(ds, trunk, tf, folder, batch_size=cfg.batch_size, workers=cfg.workers, progress=progress)
        out.append(CachedFeatures(folder, ds.classes, seed=cfg.seed))
    return out[0], out[1]


def freeze_trunk(model: MCNet, layer: str, cache_layer: str = "") -> None:
    """No gradient for the body up to and including ``layer`` (whose outputs, or those of the
    earlier ``cache_layer``, are cached)."""
    names = [n for n, _ in model.body.named_children()]
    for opt, name in (("--freeze", layer), ("--cache-layer", cache_layer or layer)):
        if name not in names:
            raise ConfigError(f"{opt} {name!r} is not a step of this backbone; choose one of {', '.join(names)}")
    if names.index(cache_layer or layer) > names.index(layer):
        raise ConfigError(f"--cache-layer {cache_layer} comes after --freeze {layer}: it would cache trained steps")
    for p in model.split_at(layer)[0].parameters():
        p.requires_grad_(False)


# -- evaluation -----------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model: MCNet, loader: DataLoader, device: torch.device, num_classes: int,
             progress: bool = True, desc: str = "eval", after: Optional[str] = None) -> dict[str, Any]:
    """Top-1/top-5 of the model's own prediction, of the CE head and of the MC branch,
    mean h (Eq. 7) of the true class's group, and per-class accuracy."""
    model.eval()
    n = 0
    hits = {"top1": 0, "top5": 0, "top1_head": 0, "top1_mc": 0}
    h_sum = 0.0
    per_class_hit = torch.zeros(num_classes)
    per_class_n = torch.zeros(num_classes)
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress, file=sys.stderr):
        x, y = channels_last(batch[0].to(device, non_blocking=True)), batch[1].to(device)
        feats = model.features(x, after).float()
        head = model.head_logits(feats)
        mc = model.mc_logits(feats)
        logits = mc if model.predict == "mc" else head
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        ok = top5[:, 0] == y
        hits["top1"] += int(ok.sum())
        hits["top5"] += int((top5 == y[:, None]).any(1).sum())
        hits["top1_head"] += int((head.argmax(1) == y).sum())
        hits["top1_mc"] += int((mc.argmax(1) == y).sum())
        h = diversity_scores(feats, model.groups)
        h_sum += float(h.gather(1, y[:, None]).sum())
        per_class_n += torch.bincount(y.cpu(), minlength=num_classes).float()
        per_class_hit += torch.bincount(y[ok].cpu(), minlength=num_classes).float()
        n += len(y)
    if n == 0:
        raise ValueError("the evaluation set is empty")
    out: dict[str, Any] = {k: 100.0 * v / n for k, v in hits.items()}
    out["mean_h"] = h_sum / n
    out["n"] = n
    acc = torch.where(per_class_n > 0, 100.0 * per_class_hit / per_class_n.clamp(min=1), torch.full_like(per_class_n, float("nan")))
    out["per_class"] = [None if math.isnan(a) else round(float(a), 2) for a in acc]
    return out


# -- state -----------------------------------------------------------------------------------
def _rng_state() -> dict[str, Any]:
    st = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]), "python_pos": random.getstate()[2]}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any]) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate((3, tuple(st["python"]), st["python_pos"]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _save_state(path: Path, obj: dict[str, Any]) -> None:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(out: str | Path) -> dict[str, Any]:
    path = Path(out) / "state.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: nothing to resume in {out}")
    # weights_only: a training state is tensors, numbers and strings; nothing is executed.
    return torch.load(path, map_location="cpu", weights_only=True)


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a kill: drop it and what follows
    return rows


# -- training ---------------------------------------------------------------------------------
def _make_schedule(opt, cfg: TrainConfig):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[int(cfg.epochs * 0.5), int(cfg.epochs * 0.75)], gamma=0.1)


def _extend_schedule(sched, cfg: TrainConfig) -> None:
    """After resuming with a larger --epochs, stretch the schedule to the new length."""
    if isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR):
        sched.T_max = cfg.epochs
    else:
        from collections import Counter

        sched.milestones = Counter([int(cfg.epochs * 0.5), int(cfg.epochs * 0.75)])


@dataclass
class _Run:
    """Everything one training run holds between epochs."""

    cfg: TrainConfig
    model: MCNet
    fwd: nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    mc_loss: Optional[MCLoss]
    train_ds: Any
    test_loader: DataLoader
    classes: list
    evaltf: Any
    device: torch.device
    out: Path
    rank: int = 0
    world: int = 1
    start_epoch: int = 0
    anchor: Optional[MCNet] = None
    after: Optional[str] = None  # the frozen body step whose cached outputs are the inputs
    use_amp: bool = False
    amp_dtype: torch.dtype = torch.float16
    scaler: Any = None
    soft_max: int = 0  # mc-soft: a class owns at most this many channels (2 x the initial group size)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def regroup(self) -> ChannelGroups:
        return regroup(self.model.soft_labels, self.cfg.soft_threshold, 1, self.soft_max)


def _optimizer(cfg: TrainConfig, model: MCNet) -> torch.optim.Optimizer:
    """SGD over the trainable parameters; the body's at ``body_lr`` x the rest's rate."""
    body = {id(p) for p in model.body.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) in body], "lr": cfg.lr * cfg.body_lr},
              {"params": [p for p in trainable if id(p) not in body], "lr": cfg.lr}]
    return torch.optim.SGD([g for g in groups if g["params"]], lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay, nesterov=True)


def _setup(cfg: TrainConfig, resume: bool) -> _Run:
    """Build data, model, loss, optimiser and schedule; load the state when resuming."""
    rank, world, local_rank = _dist_env()
    device = resolve_device(cfg.device, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    out = Path(cfg.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    state = load_state(out) if resume else None
    random.seed(cfg.seed + rank)
    torch.manual_seed(cfg.seed + rank)

    train_ds, test_ds, evaltf = build_datasets(cfg)
    classes = list(train_ds.classes)
    model = build_model(cfg.backbone, len(classes), pretrained=cfg.pretrained and state is None, xi=cfg.xi,
                        mc_layer=not cfg.uneven, head=cfg.head, predict=cfg.predict, soft=cfg.variant == "mc-soft")
    if state is not None:
        model.load_state_dict(state["model"])  # before caching: the cache key hashes the trunk's weights
    model = channels_last(model.to(device))
    after = (cfg.cache_layer or cfg.freeze) or None
    if after:
        freeze_trunk(model, cfg.freeze, cfg.cache_layer)
        if rank == 0:
            train_ds, test_ds = trunk_caches(cfg, model, evaltf)
        if world > 1:
            dist.barrier()  # rank 0 built the caches; the others only read them
            if rank != 0:
                train_ds, test_ds = trunk_caches(cfg, model, evaltf, progress=False)
    mc_variant = TRAIN_VARIANTS[cfg.variant]
    mc_loss = MCLoss(model.groups, lam=cfg.lam, variant=mc_variant, temperature=cfg.temperature,
                     normalize=cfg.normalize_div, region=cfg.div_region) if mc_variant else None
    opt = _optimizer(cfg, model)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    run = _Run(cfg, model, _TrainForward(model, after), opt, _make_schedule(opt, cfg), mc_loss, train_ds,
               DataLoader(test_ds, batch_size=cfg.batch_size * 2, shuffle=False, num_workers=0 if after else cfg.workers,
                          pin_memory=device.type == "cuda"),
               classes, evaltf, device, out, rank, world, after=after, use_amp=use_amp, amp_dtype=amp_dtype,
               scaler=torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16),
               soft_max=2 * max(model.groups.sizes))  # fixed from the initial groups: regrouping must not raise it
    if state is not None:
        _load_run_state(run, state)
    if run.main:
        # Keep exactly the finished epochs: no gap, no duplicate after a kill.
        rows = [r for r in _read_metrics(out / "metrics.jsonl") if r.get("epoch", 0) <= run.start_epoch]
        atomic_write_bytes(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
        (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    if world > 1:
        run.fwd = nn.parallel.DistributedDataParallel(
            run.fwd, device_ids=[device.index] if device.type == "cuda" else None)
    return run


def _load_run_state(run: _Run, state: dict[str, Any]) -> None:
    """Everything but the weights (loaded in :func:`_setup`) from a saved ``state.pt``."""
    if run.model.soft:
        run.model.groups = run.regroup()
    run.opt.load_state_dict(state["optimizer"])
    run.sched.load_state_dict(state["scheduler"])
    _extend_schedule(run.sched, run.cfg)
    run.start_epoch = int(state["epoch"])
    if "anchor" in state:
        run.anchor = _frozen_copy(run.model, state["anchor"])
    _set_rng_state(state["rng"][run.rank] if run.rank < len(state["rng"]) else state["rng"][0])


def _train_loader(run: _Run, epoch: int) -> DataLoader:
    cfg, pin = run.cfg, run.device.type == "cuda"
    workers = 0 if run.after else cfg.workers  # cached features need no decoding
    if hasattr(run.train_ds, "set_epoch"):
        run.train_ds.set_epoch(epoch)  # a fresh view of every cached image
    if run.world > 1:
        sampler = DistributedSampler(run.train_ds, num_replicas=run.world, rank=run.rank, shuffle=True,
                                     seed=cfg.seed, drop_last=True)
        sampler.set_epoch(epoch)
        return DataLoader(run.train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers,
                          pin_memory=pin, drop_last=True)
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    return DataLoader(run.train_ds, batch_size=cfg.batch_size, shuffle=True, generator=g, num_workers=workers,
                      pin_memory=pin, drop_last=len(run.train_ds) > cfg.batch_size)


def _train_step(run: _Run, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """One optimiser step; returns ``(loss, ce, logits, terms)``."""
    cfg, mc_loss = run.cfg, run.mc_loss
    x = channels_last(x)
    with torch.autocast(run.device.type, dtype=run.amp_dtype, enabled=run.use_amp):
        feats, logits, se_w = run.fwd(x)
    ce = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
    loss, terms = ce, {}
    if run.model.soft:
        # Eq. 12: CE + mu * L_MC (on the current regrouping) + L_intra + L_inter
        mc_loss.groups = run.regroup()
        se_w = se_w.float()
        intra, inter = l_intra(se_w, y, len(run.classes)), l_inter(se_w)
        if cfg.soft_norm:
            intra, inter = intra / se_w.shape[1], inter / se_w.shape[1]
        loss = loss + intra + inter
        terms = {"intra": float(intra.detach()), "inter": float(inter.detach())}
    if mc_loss is not None:
        region = None
        if run.anchor is not None:
            with torch.autocast(run.device.type, dtype=run.amp_dtype, enabled=run.use_amp):
                region = anchor_region(run.anchor, x, cfg.div_anchor_sd, after=run.after)
        mo = mc_loss(feats.float(), y, region_mask=region)
        loss = loss + cfg.mu * mo.total
        terms.update({"dis": float(mo.dis), "div": float(mo.div)})
    run.opt.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.opt)
    run.scaler.update()
    if run.model.soft:
        update_soft_labels(run.model.soft_labels, se_w.detach(), y, cfg.soft_momentum)
    return loss.detach(), ce.detach(), logits.detach(), terms


def _train_epoch(run: _Run, epoch: int) -> tuple[dict[str, float], int]:
    """One pass over the training data; returns the summed losses and the step count."""
    cfg = run.cfg
    run.fwd.train()
    if cfg.freeze:
        run.model.split_at(cfg.freeze)[0].eval()  # the frozen trunk keeps its BatchNorm statistics
    if run.mc_loss is not None:
        run.mc_loss.train()
        run.mc_loss.lam = lam_at(cfg, epoch)
        if cfg.div_anchor and epoch >= cfg.div_anchor and run.anchor is None:
            run.anchor = _frozen_copy(run.model)
    sums = {"loss": 0.0, "ce": 0.0, "dis": 0.0, "div": 0.0, "acc": 0.0}
    if run.model.soft:
        sums.update(intra=0.0, inter=0.0)
    steps = 0
    bar = tqdm(_train_loader(run, epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not run.main,
               file=sys.stderr, dynamic_ncols=True)
    for batch in bar:
        x, y = batch[0].to(run.device, non_blocking=True), batch[1].to(run.device, non_blocking=True)
        loss, ce, logits, terms = _train_step(run, x, y)
        loss_value = float(loss)
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"the loss became {loss_value} at epoch {epoch + 1}; lower --lr")
        steps += 1
        sums["loss"] += loss_value
        sums["ce"] += float(ce)
        sums["acc"] += float((logits.argmax(1) == y).float().mean())
        for k, v in terms.items():
            sums[k] += v
        bar.set_postfix({k: f"{v / steps:.3f}" for k, v in sums.items() if k in ("loss", "ce") or k in terms})
    run.sched.step()
    if run.model.soft:
        run.model.groups = run.regroup()  # predictions and h use the groups the soft labels define now
    return sums, steps


def _end_epoch(run: _Run, epoch: int, sums: dict[str, float], steps: int, train_time: float) -> dict[str, Any]:
    """Evaluate (when due), append the metrics row, write the checkpoint and the state."""
    cfg, model, out = run.cfg, run.model, run.out
    final = epoch + 1 == cfg.epochs
    metrics: dict[str, Any] = {}
    if final or (epoch + 1) % max(cfg.eval_every, 1) == 0:
        metrics = evaluate(model, run.test_loader, run.device, len(run.classes),
                           desc=f"test {epoch + 1}/{cfg.epochs}", after=run.after)
    row = {"epoch": epoch + 1, "lr": run.opt.param_groups[-1]["lr"], "train_time_s": round(train_time, 2),
           "world_size": run.world, "steps": steps,
           **{f"train_{k}": round(v / max(steps, 1), 5) for k, v in sums.items()},
           **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items() if k != "per_class"}}
    if run.mc_loss is not None:
        row["lam"] = run.mc_loss.lam
    if model.soft:
        row["shared_channels"] = shared_channels(model.groups)
        row["group_sizes"] = [min(model.groups.sizes), max(model.groups.sizes)]
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    msg = f"epoch {epoch + 1}/{cfg.epochs}: loss {row['train_loss']:.3f}"
    if metrics:
        msg += (f"  top-1 {row['top1']:.2f}% (head {row['top1_head']:.2f}, MC branch {row['top1_mc']:.2f})"
                f"  mean h {row['mean_h']:.3f}")
    tqdm.write(msg + f"  [{train_time:.0f}s]", file=sys.stderr)
    meta = _checkpoint_meta(cfg, run.classes, run.evaltf, row, epoch + 1, metrics.get("per_class"))
    save_dtype = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}[cfg.save_dtype]
    save_checkpoint(out / "last.safetensors", model, meta, dtype=save_dtype)
    return row


def _save_run_state(run: _Run, epoch: int) -> None:
    """``state.pt`` after ``epoch``; every rank's RNG state goes to rank 0."""
    rng = [_rng_state()]
    if run.world > 1:
        gathered: list[Any] = [None] * run.world if run.main else None  # type: ignore[assignment]
        dist.gather_object(rng[0], gathered, dst=0)
        rng = gathered
    if run.main:
        _save_state(run.out / "state.pt", {
            "epoch": epoch + 1, "model": run.model.state_dict(), "optimizer": run.opt.state_dict(),
            "scheduler": run.sched.state_dict(), "rng": rng, "config": json.dumps(dataclasses.asdict(run.cfg)),
            **({"anchor": run.anchor.state_dict()} if run.anchor is not None else {}),
        })


def train(cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Train (or resume) the run described by ``cfg``; returns the last epoch's metrics."""
    run = _setup(cfg, resume)
    last: dict[str, Any] = {}
    for epoch in range(run.start_epoch, cfg.epochs):
        t0 = time.time()
        sums, steps = _train_epoch(run, epoch)
        if run.main:
            last = _end_epoch(run, epoch, sums, steps, time.time() - t0)
        _save_run_state(run, epoch)
        if run.world > 1:
            dist.barrier()
    if run.world > 1:
        dist.destroy_process_group()
    return last


def _checkpoint_meta(cfg: TrainConfig, classes, evaltf, row, epoch, per_class) -> dict[str, Any]:
    return {
        "backbone": cfg.backbone,
        "class_names": list(classes),
        "dataset": cfg.dataset,
        "input": evaltf.config(),
        "variant": cfg.variant,
        "hparams": {k: getattr(cfg, k) for k in ("xi", "uneven", "mu", "lam", "temperature", "normalize_div", "div_region",
                                                  "lam_warmup", "div_anchor", "div_anchor_sd",
                                                  "soft_threshold", "soft_norm",
                                                  "soft_momentum", "image_size", "batch_size", "lr", "body_lr", "label_smoothing",
                                                  "weight_decay", "schedule", "epochs", "pretrained", "freeze",
                                                  "cache_layer", "cache_views", "seed", "limit")},
        "metrics": {**{k: row[k] for k in ("top1", "top5", "top1_head", "top1_mc", "mean_h", "n") if k in row},
                    "epoch": epoch, "final_epoch": epoch == cfg.epochs, "per_class": per_class},
        "command": cfg.command,
    }
