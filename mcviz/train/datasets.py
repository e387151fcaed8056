"""The data of a training run: the images under the training and evaluation transforms, or the
frozen trunk's cached outputs of them (``--freeze``), and the freezing itself."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional

import torch

from .. import data as mdata
from ..core.models import MCNet, input_norm
from ..trunk.cache import CachedFeatures, ViewTransform, build_cache, cache_folder, default_cache_dir
from .config import ConfigError, TrainConfig


def limited(ds, limit: Optional[int], seed: int):
    """The same images as :func:`mcviz.data.random_subset`, as a data set of the same kind (the cache needs
    ``samples`` and ``load``)."""
    if limit is None or limit >= len(ds):
        return ds
    keep = mdata.random_subset(ds, limit, seed).indices
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
    return mdata.random_subset(train, cfg.limit, cfg.seed), mdata.random_subset(test, cfg.limit, cfg.seed + 1), evaltf


def trunk_caches(cfg: TrainConfig, model: MCNet, evaltf, progress: bool = True):
    """``(train, test)`` :class:`~mcviz.trunk.cache.CachedFeatures` of the body up to
    ``cfg.cache_layer or cfg.freeze`` under ``evaltf`` (:func:`build_datasets`' transform),
    built first where missing (shared by every run with the same trunk)."""
    layer = cfg.cache_layer or cfg.freeze
    trunk = model.split_at(layer)[0]
    root = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    out = []
    for split, views, seed in (("train", cfg.cache_views, cfg.seed), ("test", 1, cfg.seed + 1)):
        ds = limited(
            mdata.build(cfg.dataset, cfg.root, split, skip_bad=cfg.skip_bad, min_side=evaltf.resize), cfg.limit, seed
        )
        tf = ViewTransform(evaltf, views, noise=cfg.cache_noise if split == "train" else 0.0)
        what = {"dataset": cfg.dataset, "split": split, "backbone": cfg.backbone, "layer": layer}
        folder = cache_folder(root, ds, trunk, tf, what)
        # the build's DataLoader draws from the global RNG: keep the training stream (CWA masks,
        # shuffles) the same whether this run builds the cache or finds it
        with torch.random.fork_rng(devices=[]):
            build_cache(ds, trunk, tf, folder, batch_size=cfg.batch_size, workers=cfg.workers, progress=progress)
        out.append(CachedFeatures(folder, ds.classes, seed=cfg.seed))
    return out[0], out[1]


def guide_samples(cfg: TrainConfig, evaltf) -> list:
    """The training photos of a --freeze run, in its cache's order (the part guide's targets follow it)."""
    return limited(mdata.build(cfg.dataset, cfg.root, "train", min_side=evaltf.resize), cfg.limit, cfg.seed).samples


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
