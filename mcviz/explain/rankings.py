"""Which channels matter for a class: four rankings, and the effect ranking's file.

- ``effect`` (the default where a ranking file exists): how far switching the channel off
  (its pooled value set to its mean, :mod:`mcviz.explain.effect`) drops the class's logit,
  averaged over the class's test images. What the model actually uses.
- ``soft-labels``: the learned soft channel labels of a ``mc-soft`` model (the paper's
  Table IX view), as their specificity.
- ``linearised-head``: the classifier's weights; exact for the GAP + linear head, a
  first-order view of the official head (its BNs folded in, the ELU taken as identity).
- ``activation``: the channel's mean activation over the class's images.

``mcviz rank`` writes the effect ranking of every class to ``NAME.ranking.json`` beside the
checkpoint, with the checkpoint's SHA-256: a ranking of other weights is ignored.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from ..io.checkpoint import as_meta, load_checkpoint
from ..io.files import RANKING, atomic_write_bytes, load_side_file, side_path
from ..core.models import MCNet
from .effect import HeadAblation, PooledSet, channel_effects, collect_pooled
from ..io.meta import CheckpointMeta
from ..trunk.split_pass import SplitPass

__all__ = [
    "RANKINGS",
    "ChannelRanking",
    "EffectRanking",
    "available_rankings",
    "class_channel_scores",
    "compute_effect_ranking",
    "evidence_scores",
    "linearised_head_scores",
    "load_effect_ranking",
    "own_in_top",
    "ranking_path",
    "ranking_scores",
    "save_effect_ranking",
    "soft_label_scores",
    "top_channels",
]

RANKING_FORMAT = "mcviz-ranking/1"
# name -> what the score means, in one line (the app shows it)
RANKINGS: dict[str, str] = {
    "effect": "how far switching the channel off (its pooled value set to its mean) drops the class's logit, "
    "averaged over the class's test images",
    "soft-labels": "the learned soft channel labels (paper Table IX), as specificity: the label minus the "
    "channel's mean label over classes",
    "linearised-head": "the classifier's weights, linearised (the official head's BNs folded in, its ELU taken as "
    "identity; exact for a GAP + linear head)",
    "activation": "the channel's mean activation over the class's images",
    "evidence": "the channel's evidence for the class (its normalised pooled value times its weight, a term of "
    "the class's score), averaged over the class's test images; class-connected heads only",
}

Checkpoint = Union[str, Path, MCNet, tuple[MCNet, dict]]


@dataclass
class ChannelRanking:
    class_index: int
    channels: list[int]
    scores: list[float]
    owners: list[int]  # the class whose group holds each channel (-1: none)
    source: str  # where the scores come from, in words
    by: str = ""  # the ranking's name in RANKINGS

    def own(self) -> list[bool]:
        """Whether each ranked channel belongs to the class's own group."""
        return [o == self.class_index for o in self.owners]


@dataclass
class EffectRanking:
    """Every channel's effect on every class (``NAME.ranking.json``)."""

    checkpoint_sha256: str
    dataset: str
    split: str
    images: int
    effects: torch.Tensor  # (classes, N), float16 precision: what the file holds
    means: torch.Tensor  # (N,) the pooled value a channel takes when switched off

    def to_json(self, top: int = 10) -> str:
        def pack(t: torch.Tensor) -> dict:
            a = t.to(torch.float16).numpy()
            return {"dtype": "float16", "shape": list(a.shape), "base64": base64.b64encode(a.tobytes()).decode()}

        return json.dumps(
            {
                "format": RANKING_FORMAT,
                "checkpoint_sha256": self.checkpoint_sha256,
                "score": "effect",
                "meaning": RANKINGS["effect"],
                "dataset": self.dataset,
                "split": self.split,
                "images": self.images,
                "top": self.effects.topk(min(top, self.effects.shape[1]), dim=1).indices.tolist(),
                "effects": pack(self.effects),
                "means": pack(self.means),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "EffectRanking":
        d = json.loads(text)
        if d.get("format") != RANKING_FORMAT:
            raise ValueError(f"not a ranking file ({d.get('format')!r})")

        def unpack(p: dict) -> torch.Tensor:
            a = np.frombuffer(base64.b64decode(p["base64"]), dtype=np.dtype(p["dtype"])).reshape(p["shape"])
            return torch.from_numpy(a.astype(np.float32))

        return cls(
            d["checkpoint_sha256"], d["dataset"], d["split"], d["images"], unpack(d["effects"]), unpack(d["means"])
        )


def ranking_path(checkpoint: str | Path) -> Path:
    """``NAME.ranking.json`` beside ``NAME.safetensors``."""
    return side_path(checkpoint, RANKING)


def effect_scores(model: MCNet, pooled: PooledSet) -> tuple[torch.Tensor, torch.Tensor]:
    """``((classes, N) effects, (N,) means)`` over the images of ``pooled``."""
    ablation = HeadAblation.of(model, pooled.pooled)
    return channel_effects(ablation, pooled.pooled, pooled.labels), ablation.means


def compute_effect_ranking(run: SplitPass) -> EffectRanking:
    """The effect ranking of ``run``'s model over its split (one pass over the images, or over the
    frozen trunk's cache; then only the head runs); ``run.checkpoint`` names the file it records
    the SHA-256 of."""
    _require_head(run.model)
    pooled = collect_pooled(run)
    effects, means = effect_scores(run.model, pooled)
    return EffectRanking(
        run.sha256, run.dataset, run.split, len(pooled.labels), effects.to(torch.float16).float(), means
    )


def save_effect_ranking(ranking: EffectRanking, checkpoint: str | Path) -> Path:
    out = ranking_path(checkpoint)
    atomic_write_bytes(out, ranking.to_json().encode())
    return out


def load_effect_ranking(checkpoint: str | Path) -> Optional[EffectRanking]:
    """The ranking file beside ``checkpoint``, or None when there is none, it is unreadable, or it
    was made from other weights (stale: the checkpoint's SHA-256 differs)."""
    return load_side_file(checkpoint, ranking_path(checkpoint), EffectRanking.from_json)


def _require_head(model: MCNet) -> None:
    if model.predict != "head":
        raise ValueError("this model predicts from its MC branch: the effect ranking needs the CE head's pooled inputs")


def soft_label_scores(model: MCNet, meta: CheckpointMeta) -> Optional[torch.Tensor]:
    """Specificity of the learned soft labels (each label minus that channel's mean label over
    classes), the order in which the regrouping (:func:`mcviz.core.soft_labels.regroup`) hands
    channels to classes; None without soft labels. A channel every class weighs alike is
    nobody's channel; raw labels would put such channels at the top of every list."""
    soft: Optional[torch.Tensor] = model.soft_labels if getattr(model, "soft", False) else meta.extra.get("soft_labels")  # type: ignore[assignment]
    if soft is None:
        return None
    soft = soft.detach().float()
    return soft - soft.mean(dim=0, keepdim=True)


def linearised_head_scores(model: MCNet) -> torch.Tensor:
    """The classifier's weights: exact for the GAP + linear head; for the official head (GMP, BN,
    FC, BN, ELU, FC) the product of its linear maps with the BNs folded in, the ELU taken as
    identity (a first-order view that ignores the channels' values)."""
    parts = model.head_parts()
    if parts.bn1 is None:
        return parts.out.weight.detach().float().clone()

    def bn_scale(bn):
        return (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()

    if model.class_connected:  # exact: a class's weights on the pooled inputs, zero off its channels
        return (parts.out.class_weights().detach() * bn_scale(parts.bn1)[None, :]).float()
    bn1, fc1, bn2, fc2 = parts.bn1, parts.fc1, parts.bn2, parts.out
    assert fc1 is not None and bn2 is not None  # the official head has both
    w = fc2.weight.detach() @ torch.diag(bn_scale(bn2)) @ fc1.weight.detach() @ torch.diag(bn_scale(bn1))
    return w.float()


@torch.no_grad()
def activation_scores(model: MCNet, dataset, batch_size: int = 64, progress: bool = False) -> torch.Tensor:
    """``(classes, N)`` mean GAP activation of each channel over each class's images in ``dataset``."""
    n, c = model.groups.num_channels, model.num_classes
    sums, counts = torch.zeros(c, n), torch.zeros(c)
    model.eval()
    for batch in tqdm(DataLoader(dataset, batch_size=batch_size), disable=not progress, desc="activations"):
        x, y = batch[0], torch.as_tensor(batch[1])
        g = model.features(x).float().mean(dim=(2, 3))
        sums.index_add_(0, y, g)
        counts += torch.bincount(y, minlength=c).float()
    return sums / counts.clamp(min=1)[:, None]


def class_channel_scores(
    model: MCNet, meta: CheckpointMeta, dataset=None, batch_size: int = 64, progress: bool = False
) -> tuple[torch.Tensor, str]:
    """A ``(classes, channels)`` score matrix and its source, from what needs no ranking file:
    the soft labels when the model has them, else the mean activation over ``dataset`` when
    given, else the linearised head."""
    soft = soft_label_scores(model, meta)
    if soft is not None:
        return soft, "learned soft channel labels (specificity: minus the channel's mean over classes)"
    if dataset is not None:
        return activation_scores(model, dataset, batch_size, progress), "mean activation over the class's images"
    return _scores("linearised-head", model, meta, None, None, 0)


def _load(checkpoint: Checkpoint) -> tuple[MCNet, CheckpointMeta, Optional[Path]]:
    if isinstance(checkpoint, (str, Path)):
        return (*load_checkpoint(checkpoint), Path(checkpoint))
    if isinstance(checkpoint, tuple):
        return checkpoint[0], as_meta(checkpoint[1], checkpoint[0]), None
    return checkpoint, as_meta({}, checkpoint), None


def evidence_scores(model: MCNet, effect: EffectRanking) -> torch.Tensor:
    """``(classes, N)``: each channel's mean evidence for each class over the class's images, from
    the effect ranking. For a class-connected head the effect is ``W * s * (mean p - m)`` (``s``
    the BatchNorm's scale, ``m`` the switched-off value), so the mean evidence
    ``W * BN(mean p)`` is the effect plus ``W * BN(m)``: exact, with no pass over the images."""
    if not model.class_connected:
        raise ValueError("only a class-connected head has per-channel evidence")
    parts = model.head_parts()
    bn = parts.bn1
    assert bn is not None  # a class-connected head has its BatchNorm
    with torch.no_grad():
        at_mean = bn.eval()(effect.means.float()[None])[0]
        w = parts.out.class_weights().float()
    return effect.effects.float() + w * at_mean[None, :]


def available_rankings(model: MCNet, meta: CheckpointMeta, effect: Optional[EffectRanking]) -> list[str]:
    """The rankings this model offers, the default first: for a class-connected model its channels'
    evidence, then the effect where its file exists, then the soft labels where the model has them."""
    out = ["evidence"] if effect is not None and model.class_connected else []
    out += ["effect"] if effect is not None else []
    if soft_label_scores(model, meta) is not None:
        out.append("soft-labels")
    return out + ["linearised-head", "activation"]


def _default_ranking(model: MCNet, meta: CheckpointMeta, effect: Optional[EffectRanking], dataset) -> str:
    if effect is not None and model.class_connected:
        return "evidence"
    if effect is not None:
        return "effect"
    if dataset is not None:
        return "activation"
    return "soft-labels" if soft_label_scores(model, meta) is not None else "linearised-head"


def _scores(
    by: str, model: MCNet, meta: CheckpointMeta, effect: Optional[EffectRanking], dataset, class_index: int
) -> tuple[torch.Tensor, str]:
    """``(classes, N)`` scores of ranking ``by`` and their source in words."""
    if by == "evidence":
        if effect is None:
            raise ValueError("the evidence ranking is made from the effect ranking: `mcviz rank CHECKPOINT --root ...`")
        return evidence_scores(model, effect), f"evidence: {RANKINGS['evidence']} ({effect.split} split)"
    if by == "effect":
        if effect is None:
            raise ValueError("no effect ranking for this checkpoint: make one with `mcviz rank CHECKPOINT --root ...`")
        return effect.effects, f"effect: {RANKINGS['effect']} ({effect.split} split)"
    if by == "soft-labels":
        soft = soft_label_scores(model, meta)
        if soft is None:
            raise ValueError("this model has no soft channel labels")
        return soft, f"soft labels: {RANKINGS['soft-labels']}"
    if by == "linearised-head":
        if model.head_kind == "gap":
            return linearised_head_scores(model), "the GAP+linear classifier's weights (exact)"
        if model.class_connected:
            return linearised_head_scores(model), "the class-connected head's weights, its BatchNorm folded in (exact)"
        return linearised_head_scores(model), f"linearised head: {RANKINGS['linearised-head']}"
    if by == "activation":
        if dataset is None:
            raise ValueError("the activation ranking needs a data set of the class's images")
        targets = getattr(dataset, "targets", None)
        if targets is not None:
            dataset = Subset(dataset, [i for i, t in enumerate(targets) if t == class_index])
        return activation_scores(model, dataset), "mean activation over the class's images"
    raise ValueError(f"unknown ranking {by!r}; choose one of {', '.join(RANKINGS)}")


def ranking_scores(
    by: str, model: MCNet, meta: CheckpointMeta, effect: Optional[EffectRanking] = None
) -> tuple[torch.Tensor, str]:
    """The ``(classes, N)`` matrix of ranking ``by`` (any but ``activation``, which is measured per
    class) and its source in words."""
    return _scores(by, model, meta, effect, None, 0)


def top_channels(
    checkpoint: Checkpoint,
    class_index: int,
    k: int = 10,
    dataset: Optional[Dataset] = None,
    by: Optional[str] = None,
    effect: Optional[EffectRanking] = None,
) -> ChannelRanking:
    """The ``k`` most important channels of ``class_index``.

    ``checkpoint`` is a path, a loaded model, or ``(model, meta)``. ``by`` names a ranking of
    :data:`RANKINGS`; by default the effect ranking when ``effect`` is given or a fresh ranking
    file lies beside the checkpoint path, else the mean activation over ``dataset`` (the images
    of the class found in it) when given, else the soft labels where the model has them, else
    the linearised head.

    Rankings by ``effect`` or ``evidence`` hold only channels that change the class's score: a
    class-connected class's top 10 is its own ξ channels, not those plus other classes' channels
    with exactly zero effect in the order ties happen to fall.

    Args:
        checkpoint: a path, a loaded model, or ``(model, meta)``.
        class_index: the class.
        k: how many channels.
        dataset: a data set of images for the activation ranking.
        by: a ranking of :data:`RANKINGS` (default: the best one available, as above).
        effect: an effect ranking to read (default: the file beside the checkpoint).

    Returns:
        :class:`ChannelRanking`: the channels, their scores and the ranking used.

    Raises:
        ValueError: an unknown ranking, one the model cannot give, or a class out of range.
    """
    model, meta, path = _load(checkpoint)
    if not 0 <= class_index < model.num_classes:
        raise ValueError(f"class {class_index} out of range 0..{model.num_classes - 1}")
    if effect is None and path is not None and by in (None, "effect", "evidence"):
        effect = load_effect_ranking(path)
    by = by or _default_ranking(model, meta, effect, dataset)
    scores, source = _scores(by, model, meta, effect, dataset, class_index)
    row = scores[class_index]
    top = row.topk(min(k, row.numel()))
    keep = [j for j, v in enumerate(top.values) if by not in ("effect", "evidence") or float(v) != 0.0]
    owner = model.groups.owner()
    return ChannelRanking(
        class_index,
        [int(top.indices[j]) for j in keep],
        [float(top.values[j]) for j in keep],
        [int(owner[top.indices[j]]) for j in keep],
        source,
        by,
    )


def own_in_top(scores: torch.Tensor, model: MCNet, k: int = 10) -> float:
    """Mean over classes of how many of the class's own channels its top-``k`` by ``scores`` holds."""
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices  # (classes, k)
    member = torch.zeros(scores.shape, dtype=torch.bool)
    for c, chans in zip(range(scores.shape[0]), model.groups.members):
        member[c, list(chans)] = True
    return float(member.gather(1, top).sum(dim=1).float().mean())
