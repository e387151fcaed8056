"""A class-connected model's decision as exact per-channel evidence.

For a model with a class-connected head (:mod:`mcviz.core.class_head`) the score of class c on
an image is ``b_c + sum_j e_j``, where ``e_j = W[c, j] * BN(pool(F))_j`` is channel j's evidence
and only c's own channels have ``W[c, j] != 0``. :func:`class_evidence` returns those terms, so
"why Cardinal and not Summer Tanager" is answered by two lists that add up to the two scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.models import MCNet

__all__ = ["Evidence", "class_evidence"]


@dataclass
class Evidence:
    """One class's score on one image, term by term (largest evidence first)."""

    class_index: int
    channels: list[int]
    pooled: list[float]  # each channel's pooled value, as the head's BatchNorm normalised it
    weights: list[float]  # its weight in the class's score
    values: list[float]  # pooled x weight: its evidence
    bias: float
    score: float  # the class's logit as the model computes it

    @property
    def total(self) -> float:
        """The bias plus every channel's evidence: equal to :attr:`score` up to float rounding."""
        return self.bias + sum(self.values)


@torch.no_grad()
def class_evidence(model: MCNet, pooled: torch.Tensor, class_index: int) -> Evidence:
    """The evidence of ``class_index``'s channels in the head's pooled input ``(N,)`` of one image
    (:func:`mcviz.explain.effect.pooled_inputs`). Raises ``ValueError`` for a head that is not
    class-connected: its score has no such decomposition."""
    if not model.class_connected:
        raise ValueError(
            f"the {model.head_kind} head mixes every channel into every class: it has no exact "
            "per-channel evidence (use the measured effect instead)"
        )
    parts = model.head_parts()
    # a copy of an array (which may be read-only: the app shares it between sessions), not a view
    p = (pooled if isinstance(pooled, torch.Tensor) else torch.tensor(pooled)).float().reshape(1, -1)
    normed = parts.bn1.eval()(p)[0]
    w = parts.out.class_weights()[class_index].float()
    channels = [int(j) for j in torch.nonzero(w).flatten()]
    values = normed[channels] * w[channels]
    order = torch.argsort(values, descending=True).tolist()
    score = float(parts.classifier.eval()(p)[0, class_index])
    return Evidence(
        class_index,
        [channels[i] for i in order],
        [float(normed[channels[i]]) for i in order],
        [float(w[channels[i]]) for i in order],
        [float(values[i]) for i in order],
        float(parts.out.bias[class_index]),
        score,
    )
