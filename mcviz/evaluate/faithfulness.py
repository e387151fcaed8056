"""Do the top channels of a ranking matter to the model? Deletion curves.

For every class, its top-k channels under a ranking are switched off (their pooled values set
to their means, :mod:`mcviz.explain.effect`) and the class's test images are classified
again; only the head runs. A ranking that names what the model uses makes the class's
accuracy and probability fall fastest; k random channels give the floor. Numbers are
macro-averages over classes (each class's images weigh as one class).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import torch

from ..explain.effect import HeadAblation, PooledSet, collect_pooled
from ..explain.rankings import effect_scores, linearised_head_scores, soft_label_scores
from ..core.class_head import membership
from ..core.models import MCNet
from ..io.meta import CheckpointMeta
from ..trunk.split_pass import SplitPass

__all__ = ["DeletionCurves", "class_mean_activation", "deletion_curves", "faithfulness", "ranking_scores"]


@dataclass
class DeletionCurves:
    ks: list[int]
    classes: int
    images: int
    accuracy: float  # before any deletion: mean over classes of the class's accuracy
    prob: float  # ... of the class's mean probability
    # ranking -> k -> (drop in accuracy, drop in mean probability), both in [0, 1]
    drops: dict[str, dict[int, tuple[float, float]]] = field(default_factory=dict)
    rank_split: str = "test"
    split: str = "test"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["drops"] = {r: {str(k): list(v) for k, v in row.items()} for r, row in self.drops.items()}
        return d

    def markdown(self) -> list[str]:
        """Rows of a markdown table: ranking, then accuracy and probability drops at each k."""
        head = (
            "| ranking | "
            + " | ".join(f"acc. drop k={k}" for k in self.ks)
            + " | "
            + " | ".join(f"prob. drop k={k}" for k in self.ks)
            + " |"
        )
        out = [head, "|---" * (1 + 2 * len(self.ks)) + "|"]
        for r, row in self.drops.items():
            out.append(
                f"| {r} | "
                + " | ".join(f"{100 * row[k][0]:.1f}" for k in self.ks)
                + " | "
                + " | ".join(f"{100 * row[k][1]:.1f}" for k in self.ks)
                + " |"
            )
        return out


def class_mean_activation(pooled: PooledSet, classes: int) -> torch.Tensor:
    """``(classes, N)`` mean GAP activation of each channel over each class's images."""
    sums = torch.zeros(classes, pooled.mean_activation.shape[1]).index_add_(0, pooled.labels, pooled.mean_activation)
    return sums / torch.bincount(pooled.labels, minlength=classes).clamp(min=1)[:, None]


@torch.no_grad()
def deletion_curves(
    ablation: HeadAblation,
    pooled: PooledSet,
    scores: dict[str, torch.Tensor],
    ks: Sequence[int] = (1, 3, 10),
    random_draws: int = 10,
    seed: int = 0,
) -> DeletionCurves:
    """Drops of each class's accuracy and mean probability when its top-k channels under each
    ranking in ``scores`` (name -> ``(classes, N)``) are switched off; ``"random"`` adds the
    mean over ``random_draws`` draws of k random channels per class."""
    n_classes, n = next(iter(scores.values())).shape
    g = torch.Generator().manual_seed(seed)
    names = [*scores, "random"]
    sums = {r: torch.zeros(len(ks), 2) for r in names}
    base = torch.zeros(2)
    counted = images = 0
    for c in range(n_classes):
        x = pooled.pooled[pooled.labels == c]
        if not len(x):
            continue
        counted, images = counted + 1, images + len(x)
        masks, owners = [], []
        for r in scores:
            order = scores[r][c].argsort(descending=True)
            for i, k in enumerate(ks):
                masks.append(torch.zeros(n, dtype=torch.bool).index_fill_(0, order[:k], True))
                owners.append((r, i, 1.0))
        for _ in range(random_draws):
            order = torch.randperm(n, generator=g)
            for i, k in enumerate(ks):
                masks.append(torch.zeros(n, dtype=torch.bool).index_fill_(0, order[:k], True))
                owners.append(("random", i, 1.0 / random_draws))
        off = torch.stack([torch.zeros(n, dtype=torch.bool), *masks])  # (1 + M, N)
        b = len(x)
        logits = ablation.logits(x.repeat(len(off), 1), off.repeat_interleave(b, dim=0)).view(len(off), b, -1)
        acc = (logits.argmax(dim=2) == c).float().mean(dim=1)
        prob = torch.softmax(logits, dim=2)[:, :, c].mean(dim=1)
        base += torch.stack([acc[0], prob[0]])
        for j, (r, i, w) in enumerate(owners, start=1):
            sums[r][i] += w * torch.stack([acc[0] - acc[j], prob[0] - prob[j]])
    if not counted:
        raise ValueError("no class has images")
    drops = {
        r: {k: (float(s[i, 0]) / counted, float(s[i, 1]) / counted) for i, k in enumerate(ks)} for r, s in sums.items()
    }
    return DeletionCurves(list(ks), counted, images, float(base[0]) / counted, float(base[1]) / counted, drops)


def ranking_scores(model: MCNet, meta: CheckpointMeta, ranked: PooledSet) -> dict[str, torch.Tensor]:
    """Every ranking the model offers, as ``(classes, N)`` scores; the effect and activation
    rankings are measured on ``ranked``."""
    effects, _ = effect_scores(model, ranked)
    scores = {"effect": effects}
    soft = soft_label_scores(model, meta)
    if soft is not None:
        scores["soft-labels"] = soft
    scores["linearised-head"] = linearised_head_scores(model)
    scores["activation"] = class_mean_activation(ranked, model.num_classes)
    # the class's own group first (all of it at k = xi): does the model use the channels it owns?
    scores["own-channels"] = membership(model.groups)
    return scores


def faithfulness(
    run: SplitPass, rank_split: Optional[str] = None, ks: Sequence[int] = (1, 3, 10), random_draws: int = 10
) -> DeletionCurves:
    """Deletion curves of every ranking the model offers (effect, soft labels, linearised head,
    mean activation, random) on ``run``'s split; the effect and activation rankings are measured on
    ``rank_split`` (default: the same split, as the shipped ranking files are; another split makes
    the check held-out)."""
    rank_split = rank_split or run.split
    ev = collect_pooled(run)
    rk = ev if rank_split == run.split else collect_pooled(run.on(rank_split))
    curves = deletion_curves(
        HeadAblation.of(run.model, rk.pooled), ev, ranking_scores(run.model, run.meta, rk), ks, random_draws
    )
    curves.split, curves.rank_split = run.split, rank_split
    return curves
