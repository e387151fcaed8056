"""Model-randomisation sanity check (Adebayo et al., 2018), cascading from the top layer down.

A map method that explains the model must change when the model's weights are replaced by
random ones. The layers are randomised one after the other, from the head down to the
first layer, and after each step the maps of the originally predicted class are compared
with the original maps by Spearman rank correlation. A method whose maps still correlate
strongly once every layer is random is reported as failing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy.stats import spearmanr

from ..explain import Explainer
from ..core.models import MCNet
from ..io.meta import CheckpointMeta


@dataclass
class SanityRow:
    method: str
    randomised: str  # the lowest stage randomised so far ("head", "mc_layer", ..., the first stage)
    spearman: float  # mean rank correlation with the original maps over images and channels


def _reinit(module: torch.nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
        if hasattr(m, "reset_running_stats"):
            m.reset_running_stats()


def _maps(ex: Explainer, images, classes, method: str) -> list[np.ndarray]:
    return [ex.channel_maps(img, [c], method=method)[c].raw for img, c in zip(images, classes)]


def _spearman(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    vals = []
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            u, v = u.ravel(), v.ravel()
            if np.ptp(u) == 0 or np.ptp(v) == 0:
                vals.append(0.0)  # a constant map carries no ranking
            else:
                vals.append(float(spearmanr(u, v).statistic))
    return float(np.mean(vals)) if vals else float("nan")


def cascading_randomisation(
    model: MCNet, meta: CheckpointMeta, images: Sequence, methods: Sequence[str], seed: int = 0
) -> list[SanityRow]:
    """Spearman correlation of each method's maps after randomising each stage, top down."""
    ex0 = Explainer(model, meta)
    classes = [ex0.predict(img, 1)[0].index for img in images]
    originals = {m: _maps(ex0, images, classes, m) for m in methods}
    rand = copy.deepcopy(model)
    stages = [("head", rand.head), *reversed(rand.stages())]
    rows: list[SanityRow] = []
    for k, (name, module) in enumerate(stages):
        _reinit(module, seed + k)
        ex = Explainer(rand, meta)
        for m in methods:
            rows.append(SanityRow(m, name, _spearman(originals[m], _maps(ex, images, classes, m))))
    return rows
