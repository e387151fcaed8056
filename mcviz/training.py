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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from . import data as mdata
from .checkpoint import atomic_write_bytes, save_checkpoint
from .groups import ChannelGroups
from .loss import MCLoss, diversity_scores
from .models import MCNet, build_model
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
    image_size: int = 112
    batch_size: int = 32
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    epochs: int = 10
    pretrained: bool = False
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
def anchor_region(anchor: MCNet, x: torch.Tensor, sd: float = 0.0) -> torch.Tensor:
    """Where the frozen ``anchor`` network fires on ``x``: the positions at which the mean of
    its N channels reaches its spatial mean (+ ``sd`` x its spatial standard deviation; the
    peak always counts), ``(B, H, W)`` bool. With ``sd=0`` this is the ``object`` region of
    :func:`~mcviz.loss.diversity_scores`, computed by a network L_div does not train."""
    return threshold_region(anchor.features(x).float().mean(dim=1), sd)


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
    """DDP hooks ``forward`` only, so the training pass returns both streams from it."""

    def __init__(self, model: MCNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        feats = self.model.features(x)
        if self.model.soft:
            w = self.model.se(feats)
            # L_intra and L_inter (Eq. 10-11) train the SE block only: they sum over all N
            # channels at weight 1, and their gradient let into the backbone blew the features
            # up (docs/soft-labels.md). Same values as w; only the graph differs.
            w_aux = self.model.se(feats.detach())
            return feats, self.model.head(feats * w[:, :, None, None].to(feats.dtype)), w_aux
        return feats, self.model.head(feats), None


# -- data -------------------------------------------------------------------------------------
def _subset(ds, limit: Optional[int], seed: int):
    if limit is None or limit >= len(ds):
        return ds
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:limit].sort().values.tolist()
    sub = Subset(ds, idx)
    sub.classes = ds.classes  # type: ignore[attr-defined]
    sub.targets = [ds.targets[i] for i in idx]  # type: ignore[attr-defined]
    return sub


def build_datasets(cfg: TrainConfig):
    train = mdata.build(cfg.dataset, cfg.root, "train", mdata.train_transform(cfg.image_size), skip_bad=cfg.skip_bad)
    evaltf = mdata.EvalTransform(cfg.image_size)
    test = mdata.build(cfg.dataset, cfg.root, "test", evaltf, skip_bad=cfg.skip_bad)
    if len(train.classes) != len(test.classes):
        raise mdata.DataError(f"train has {len(train.classes)} classes but test has {len(test.classes)}")
    return _subset(train, cfg.limit, cfg.seed), _subset(test, cfg.limit, cfg.seed + 1), evaltf


# -- evaluation -----------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model: MCNet, loader: DataLoader, device: torch.device, num_classes: int,
             progress: bool = True, desc: str = "eval") -> dict[str, Any]:
    """Top-1/top-5 of the model's own prediction, of the CE head and of the MC branch,
    mean h (Eq. 7) of the true class's group, and per-class accuracy."""
    model.eval()
    n = 0
    hits = {"top1": 0, "top5": 0, "top1_head": 0, "top1_mc": 0}
    h_sum = 0.0
    per_class_hit = torch.zeros(num_classes)
    per_class_n = torch.zeros(num_classes)
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress, file=sys.stderr):
        x, y = batch[0].to(device, non_blocking=True), batch[1].to(device)
        feats = model.features(x).float()
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


def train(cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Train (or resume) the run described by ``cfg``; returns the last epoch's metrics."""
    rank, world, local_rank = _dist_env()
    distributed = world > 1
    device = resolve_device(cfg.device, local_rank)
    if distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    main = rank == 0
    out = Path(cfg.out)
    if main:
        out.mkdir(parents=True, exist_ok=True)
    if device.type == "cuda":
        torch.cuda.set_device(device)

    state = load_state(out) if resume else None
    random.seed(cfg.seed + rank)
    torch.manual_seed(cfg.seed + rank)

    train_ds, test_ds, evaltf = build_datasets(cfg)
    classes = list(train_ds.classes)
    c = len(classes)
    soft = cfg.variant == "mc-soft"
    model = build_model(cfg.backbone, c, pretrained=cfg.pretrained and state is None, xi=cfg.xi,
                        mc_layer=not cfg.uneven, head=cfg.head, predict=cfg.predict, soft=soft).to(device)
    groups: ChannelGroups = model.groups
    soft_max = 2 * max(groups.sizes)
    mc_variant = TRAIN_VARIANTS[cfg.variant]
    mc_loss = MCLoss(groups, lam=cfg.lam, variant=mc_variant, temperature=cfg.temperature,
                     normalize=cfg.normalize_div, region=cfg.div_region) if mc_variant else None

    anchor: Optional[MCNet] = None
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    sched = _make_schedule(opt, cfg)
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state["model"])
        if soft:
            model.groups = regroup(model.soft_labels, cfg.soft_threshold, 1, soft_max)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        _extend_schedule(sched, cfg)
        start_epoch = int(state["epoch"])
        if "anchor" in state:
            anchor = _frozen_copy(model, state["anchor"])
        _set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
    if main:
        # Keep exactly the finished epochs: no gap, no duplicate after a kill.
        rows = [r for r in _read_metrics(out / "metrics.jsonl") if r.get("epoch", 0) <= start_epoch]
        atomic_write_bytes(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
        (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))

    fwd: nn.Module = _TrainForward(model)
    if distributed:
        fwd = nn.parallel.DistributedDataParallel(fwd, device_ids=[device.index] if device.type == "cuda" else None)
    if distributed:
        sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed, drop_last=True)
    else:
        sampler = None
    pin = device.type == "cuda"
    test_loader = DataLoader(test_ds, batch_size=cfg.batch_size * 2, shuffle=False, num_workers=cfg.workers, pin_memory=pin)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    save_dtype = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}[cfg.save_dtype]

    last: dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
            loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                                pin_memory=pin, drop_last=True, persistent_workers=False)
        else:
            g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
            loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, generator=g,
                                num_workers=cfg.workers, pin_memory=pin, drop_last=len(train_ds) > cfg.batch_size)
        fwd.train()
        if mc_loss is not None:
            mc_loss.train()
            mc_loss.lam = lam_at(cfg, epoch)
            if cfg.div_anchor and epoch >= cfg.div_anchor and anchor is None:
                anchor = _frozen_copy(model)
        t0 = time.time()
        sums = {"loss": 0.0, "ce": 0.0, "dis": 0.0, "div": 0.0, "acc": 0.0}
        if soft:
            sums.update(intra=0.0, inter=0.0)
        steps = 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not main, file=sys.stderr, dynamic_ncols=True)
        for batch in bar:
            x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                feats, logits, se_w = fwd(x)
            ce = F.cross_entropy(logits.float(), y)
            loss = ce
            parts = {}
            if soft:
                # Eq. 12: CE + mu * L_MC (on the current regrouping) + L_intra + L_inter
                mc_loss.groups = regroup(model.soft_labels, cfg.soft_threshold, 1, soft_max)
                se_w = se_w.float()
                intra, inter = l_intra(se_w, y, c), l_inter(se_w)
                loss = loss + intra + inter
                parts = {"intra": float(intra.detach()), "inter": float(inter.detach())}
            if mc_loss is not None:
                region = None
                if anchor is not None:
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                        region = anchor_region(anchor, x, cfg.div_anchor_sd)
                mo = mc_loss(feats.float(), y, region_mask=region)
                loss = loss + cfg.mu * mo.total
                parts.update({"dis": float(mo.dis), "div": float(mo.div)})
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if soft:
                update_soft_labels(model.soft_labels, se_w.detach(), y, cfg.soft_momentum)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"the loss became {loss_value} at epoch {epoch + 1}; lower --lr")
            steps += 1
            sums["loss"] += loss_value
            sums["ce"] += float(ce.detach())
            sums["acc"] += float((logits.detach().argmax(1) == y).float().mean())
            for k, v in parts.items():
                sums[k] += v
            bar.set_postfix({k: f"{v / steps:.3f}" for k, v in sums.items() if k in ("loss", "ce") or (k in parts)})
        sched.step()
        train_time = time.time() - t0
        if soft:
            # predictions and h use the groups the soft labels define now
            model.groups = regroup(model.soft_labels, cfg.soft_threshold, 1, soft_max)

        if main:
            final = epoch + 1 == cfg.epochs
            if final or (epoch + 1) % max(cfg.eval_every, 1) == 0:
                metrics = evaluate(model, test_loader, device, c, desc=f"test {epoch + 1}/{cfg.epochs}")
            else:
                metrics = {}
            row = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "train_time_s": round(train_time, 2),
                   "world_size": world, "steps": steps,
                   **{f"train_{k}": round(v / max(steps, 1), 5) for k, v in sums.items()},
                   **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items() if k != "per_class"}}
            if mc_loss is not None:
                row["lam"] = mc_loss.lam
            if soft:
                row["shared_channels"] = shared_channels(model.groups)
                row["group_sizes"] = [min(model.groups.sizes), max(model.groups.sizes)]
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            msg = f"epoch {epoch + 1}/{cfg.epochs}: loss {row['train_loss']:.3f}"
            if metrics:
                msg += (f"  top-1 {row['top1']:.2f}% (head {row['top1_head']:.2f}, MC branch {row['top1_mc']:.2f})"
                        f"  mean h {row['mean_h']:.3f}")
            tqdm.write(msg + f"  [{train_time:.0f}s]", file=sys.stderr)
            meta = _checkpoint_meta(cfg, classes, evaltf, row, epoch + 1, c, metrics.get("per_class"))
            save_checkpoint(out / "last.safetensors", model, meta, dtype=save_dtype)
            rng = [_rng_state()]
            if distributed:
                gathered: list[Any] = [None] * world
                dist.gather_object(rng[0], gathered, dst=0)
                rng = gathered
            _save_state(out / "state.pt", {
                "epoch": epoch + 1, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "rng": rng, "config": json.dumps(dataclasses.asdict(cfg)),
                **({"anchor": anchor.state_dict()} if anchor is not None else {}),
            })
            last = row
        elif distributed:
            dist.gather_object(_rng_state(), None, dst=0)
        if distributed:
            dist.barrier()
    if distributed:
        dist.destroy_process_group()
    return last


def _checkpoint_meta(cfg: TrainConfig, classes, evaltf, row, epoch, num_classes, per_class) -> dict[str, Any]:
    return {
        "backbone": cfg.backbone,
        "class_names": list(classes),
        "dataset": cfg.dataset,
        "input": evaltf.config(),
        "variant": cfg.variant,
        "hparams": {k: getattr(cfg, k) for k in ("xi", "uneven", "mu", "lam", "temperature", "normalize_div", "div_region",
                                                  "lam_warmup", "div_anchor", "div_anchor_sd",
                                                  "soft_threshold",
                                                  "soft_momentum", "image_size", "batch_size",
                                                  "lr", "weight_decay", "schedule", "epochs", "pretrained", "seed", "limit")},
        "metrics": {**{k: row[k] for k in ("top1", "top5", "top1_head", "top1_mc", "mean_h", "n") if k in row},
                    "epoch": epoch, "final_epoch": epoch == cfg.epochs, "per_class": per_class},
        "command": cfg.command,
    }
