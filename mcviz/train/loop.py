"""The training loop: one process or DistributedDataParallel, resumable, logged.

Reads like torchvision's ``references/classification``: build data, model, loss, optimiser and
schedule from a :class:`~mcviz.train.config.TrainConfig`, then ``for epoch: train, evaluate,
save``. After every epoch the model goes to ``OUT/last.safetensors`` (the shipped format), the
full training state to ``OUT/state.pt`` (:mod:`.state`) and one JSON line to
``OUT/metrics.jsonl``.
"""

from __future__ import annotations

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

from ..core.groups import ChannelGroups
from ..core.loss import MCLoss, MCLossOutput, random_cwa_mask
from ..core.models import MCNet, build_model, channels_last, resolve_device
from ..core.soft_labels import l_inter, l_intra, regroup, shared_channels, update_soft_labels
from ..core.variants import TRAIN_VARIANTS
from ..data import epoch_generator
from ..evaluate.accuracy import evaluate
from ..io.checkpoint import save_checkpoint
from ..io.files import atomic_write_bytes
from .config import HPARAMS, TrainConfig
from .datasets import build_datasets, freeze_trunk, guide_samples, trunk_caches
from .diversity import anchor_region, frozen_copy, lam_at
from .distill import distill_term, load_teacher
from .mixup import mixed
from .schedule import extend_schedule, make_schedule
from .part_guide import PartGuide, guide_term
from .state import load_state, read_metrics, rng_state, save_state, set_rng_state


def _dist_env() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


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
            return feats, self.model.classify(feats * w[:, :, None, None].to(feats.dtype)), w_aux
        return feats, self.model.classify(feats), None


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
    teacher: Optional[MCNet] = None  # --distill: the checkpoint whose softened probabilities the model learns
    guide: Optional[PartGuide] = None  # --part-guide: each own channel's part in every training view

    @property
    def main(self) -> bool:
        return self.rank == 0

    def regroup(self) -> ChannelGroups:
        return regroup(self.model.soft_labels, self.cfg.soft_threshold, 1, self.soft_max)


def _optimizer(cfg: TrainConfig, model: MCNet) -> torch.optim.Optimizer:
    """SGD over the trainable parameters; the body's at ``body_lr`` x the rest's rate."""
    body = {id(p) for p in model.body.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if id(p) in body], "lr": cfg.lr * cfg.body_lr},
        {"params": [p for p in trainable if id(p) not in body], "lr": cfg.lr},
    ]
    return torch.optim.SGD(
        [g for g in groups if g["params"]],
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=True,
    )


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
    model = build_model(
        cfg.backbone,
        len(classes),
        pretrained=cfg.pretrained and state is None,
        xi=cfg.xi,
        mc_layer=not cfg.uneven,
        head=cfg.head,
        predict=cfg.predict,
        soft=cfg.variant == "mc-soft",
        mc_hidden=cfg.mc_hidden,
        map_blur=cfg.map_blur,
    )
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
    mc_loss = (
        MCLoss(
            model.groups,
            lam=cfg.lam,
            variant=mc_variant,
            temperature=cfg.temperature,
            normalize=cfg.normalize_div,
            region=cfg.div_region,
        )
        if mc_variant
        else None
    )
    opt = _optimizer(cfg, model)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    run = _Run(
        cfg,
        model,
        _TrainForward(model, after),
        opt,
        make_schedule(opt, cfg),
        mc_loss,
        train_ds,
        DataLoader(
            test_ds,
            batch_size=cfg.batch_size * 2,
            shuffle=False,
            num_workers=0 if after else cfg.workers,
            pin_memory=device.type == "cuda",
        ),
        classes,
        evaltf,
        device,
        out,
        rank,
        world,
        after=after,
        use_amp=use_amp,
        amp_dtype=amp_dtype,
        scaler=torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16),
        soft_max=2 * max(model.groups.sizes),
    )  # fixed from the initial groups: regrouping must not raise it
    if cfg.distill:
        run.teacher = load_teacher(cfg, model, classes, after, device)
    if cfg.part_guide:
        run.guide, train_ds.with_index = (
            PartGuide.build(
                cfg.root, model.groups, evaltf, guide_samples(cfg, evaltf), cfg.part_guide_sigma, cfg.cache_noise > 0
            ),
            True,
        )
    if state is not None:
        _load_run_state(run, state)
    if run.main:
        # Keep exactly the finished epochs: no gap, no duplicate after a kill.
        rows = [r for r in read_metrics(out / "metrics.jsonl") if r.get("epoch", 0) <= run.start_epoch]
        atomic_write_bytes(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
        (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    if world > 1:
        run.fwd = nn.parallel.DistributedDataParallel(
            run.fwd, device_ids=[device.index] if device.type == "cuda" else None
        )
    return run


def _load_run_state(run: _Run, state: dict[str, Any]) -> None:
    """Everything but the weights (loaded in :func:`_setup`) from a saved ``state.pt``."""
    if run.model.soft:
        run.model.groups = run.regroup()
    run.opt.load_state_dict(state["optimizer"])
    run.sched.load_state_dict(state["scheduler"])
    extend_schedule(run.sched, run.cfg)
    run.start_epoch = int(state["epoch"])
    if "anchor" in state:
        run.anchor = frozen_copy(run.model, state["anchor"])
    set_rng_state(state["rng"][run.rank] if run.rank < len(state["rng"]) else state["rng"][0])


def _train_loader(run: _Run, epoch: int) -> DataLoader:
    cfg, pin = run.cfg, run.device.type == "cuda"
    workers = 0 if run.after else cfg.workers  # cached features need no decoding
    if hasattr(run.train_ds, "set_epoch"):
        run.train_ds.set_epoch(epoch)  # a fresh view of every cached image
    if run.world > 1:
        sampler = DistributedSampler(
            run.train_ds, num_replicas=run.world, rank=run.rank, shuffle=True, seed=cfg.seed, drop_last=True
        )
        sampler.set_epoch(epoch)
        return DataLoader(
            run.train_ds,
            batch_size=cfg.batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=pin,
            drop_last=True,
        )
    g = epoch_generator(cfg.seed, epoch)
    return DataLoader(
        run.train_ds,
        batch_size=cfg.batch_size,
        shuffle=True,
        generator=g,
        num_workers=workers,
        pin_memory=pin,
        drop_last=len(run.train_ds) > cfg.batch_size,
    )


def _mc_terms(run: _Run, x: torch.Tensor, feats: torch.Tensor, y: torch.Tensor, y_b: torch.Tensor, lam: float):
    """The MC-Loss of the step (``lam``-weighted over both label sets of a mixed batch, one CWA
    mask for both)."""
    cfg, mc_loss = run.cfg, run.mc_loss
    region = None
    if run.anchor is not None:
        with torch.autocast(run.device.type, dtype=run.amp_dtype, enabled=run.use_amp):
            region = anchor_region(run.anchor, x, cfg.div_anchor_sd, after=run.after)
    if lam == 1.0:
        return mc_loss(feats.float(), y, region_mask=region)
    keep = random_cwa_mask(mc_loss.groups, device=feats.device)
    a = mc_loss(feats.float(), y, keep=keep, region_mask=region)
    b = mc_loss(feats.float(), y_b, keep=keep, region_mask=region)
    return MCLossOutput(
        total=lam * a.total + (1 - lam) * b.total,
        dis=lam * a.dis + (1 - lam) * b.dis,
        div=lam * a.div + (1 - lam) * b.div,
        logits=a.logits,
    )


def _train_step(run: _Run, x: torch.Tensor, y: torch.Tensor, where=None) -> tuple[torch.Tensor, ...]:
    """One optimiser step (``where``: the photos' indices and views, for --part-guide); returns
    ``(loss, ce, logits, terms)``."""
    cfg, mc_loss = run.cfg, run.mc_loss
    x, y_b, lam = mixed(cfg, channels_last(x), y)
    with torch.autocast(run.device.type, dtype=run.amp_dtype, enabled=run.use_amp):
        feats, logits, se_w = run.fwd(x)
    ce = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
    if lam < 1.0:
        ce = lam * ce + (1 - lam) * F.cross_entropy(logits.float(), y_b, label_smoothing=cfg.label_smoothing)
    loss, terms = ce, {}
    if run.teacher is not None:
        kd = distill_term(
            run.teacher, x, logits, run.after, run.cfg.distill_temperature, run.device.type, run.amp_dtype, run.use_amp
        )
        loss = loss + cfg.distill_weight * kd
        terms["kd"] = float(kd.detach())
    if run.guide is not None:
        guide = guide_term(feats, y, *where, run.guide, run.model.groups)
        loss = loss + cfg.part_guide * guide
        terms["guide"] = float(guide.detach())
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
        mo = _mc_terms(run, x, feats, y, y_b, lam)
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
            run.anchor = frozen_copy(run.model)
    sums = {"loss": 0.0, "ce": 0.0, "dis": 0.0, "div": 0.0, "acc": 0.0}
    if run.model.soft:
        sums.update(intra=0.0, inter=0.0)
    if run.teacher is not None:
        sums["kd"] = 0.0
    if run.guide is not None:
        sums["guide"] = 0.0
    steps = 0
    bar = tqdm(
        _train_loader(run, epoch),
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        disable=not run.main,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    for batch in bar:
        x, y = batch[0].to(run.device, non_blocking=True), batch[1].to(run.device, non_blocking=True)
        loss, ce, logits, terms = _train_step(run, x, y, batch[2:] if run.guide is not None else None)
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
        metrics = evaluate(
            model, run.test_loader, run.device, len(run.classes), desc=f"test {epoch + 1}/{cfg.epochs}", after=run.after
        )
    row = {
        "epoch": epoch + 1,
        "lr": run.opt.param_groups[-1]["lr"],
        "train_time_s": round(train_time, 2),
        "world_size": run.world,
        "steps": steps,
        **{f"train_{k}": round(v / max(steps, 1), 5) for k, v in sums.items()},
        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items() if k != "per_class"},
    }
    if run.mc_loss is not None:
        row["lam"] = run.mc_loss.lam
    if model.soft:
        row["shared_channels"] = shared_channels(model.groups)
        row["group_sizes"] = [min(model.groups.sizes), max(model.groups.sizes)]
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    msg = f"epoch {epoch + 1}/{cfg.epochs}: loss {row['train_loss']:.3f}"
    if metrics:
        msg += (
            f"  top-1 {row['top1']:.2f}% (head {row['top1_head']:.2f}, MC branch {row['top1_mc']:.2f})"
            f"  mean h {row['mean_h']:.3f}"
        )
    tqdm.write(msg + f"  [{train_time:.0f}s]", file=sys.stderr)
    meta = checkpoint_meta(cfg, run.classes, run.evaltf, row, epoch + 1, metrics.get("per_class"))
    save_dtype = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}[cfg.save_dtype]
    # a frozen packaged body is rebuilt from its weights package on load, not stored
    packaged = cfg.freeze if cfg.freeze and cfg.pretrained and cfg.backbone.startswith("lite") else None
    save_checkpoint(out / "last.safetensors", model, meta, dtype=save_dtype, packaged_body=packaged)
    return row


def _save_run_state(run: _Run, epoch: int) -> None:
    """``state.pt`` after ``epoch``; every rank's RNG state goes to rank 0."""
    rng = [rng_state()]
    if run.world > 1:
        gathered: list[Any] = [None] * run.world if run.main else None  # type: ignore[assignment]
        dist.gather_object(rng[0], gathered, dst=0)
        rng = gathered
    if run.main:
        save_state(
            run.out / "state.pt",
            {
                "epoch": epoch + 1,
                "model": run.model.state_dict(),
                "optimizer": run.opt.state_dict(),
                "scheduler": run.sched.state_dict(),
                "rng": rng,
                "config": json.dumps(dataclasses.asdict(run.cfg)),
                **({"anchor": run.anchor.state_dict()} if run.anchor is not None else {}),
            },
        )


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


def checkpoint_meta(cfg: TrainConfig, classes, evaltf, row, epoch, per_class) -> dict[str, Any]:
    """The metadata a run writes into its checkpoint (read back as :class:`~mcviz.io.meta.CheckpointMeta`)."""
    return {
        "backbone": cfg.backbone,
        "class_names": list(classes),
        "dataset": cfg.dataset,
        "input": evaltf.config(),
        "variant": cfg.variant,
        "hparams": {k: getattr(cfg, k) for k in HPARAMS},
        "metrics": {
            **{k: row[k] for k in ("top1", "top5", "top1_head", "top1_mc", "mean_h", "n") if k in row},
            "epoch": epoch,
            "final_epoch": epoch == cfg.epochs,
            "per_class": per_class,
        },
        "command": cfg.command,
    }
