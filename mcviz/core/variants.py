"""The loss variants a model can be trained with, by the names the CLI, the checkpoints and the
docs use, and the orders in which tables and figures list them."""

from __future__ import annotations

from typing import Optional

# Variant name -> MCLoss variant (None: cross-entropy only).
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

# Tables (docs/results.md): the baseline, the loss, then what the paper varies.
TABLE_ORDER: tuple[str, ...] = ("ce", "mc", "mc-v2", "mc-no-div", "mc-no-cwa", "mc-soft")
# The paper's Fig. 7 line-up (the app's Compare page): MC-Loss, cross-entropy, then the ablations.
FIGURE_ORDER: tuple[str, ...] = ("mc", "ce", "mc-no-div", "mc-no-cwa", "mc-v2")


def order_key(variant: Optional[str], order: tuple[str, ...]) -> int:
    """Where ``variant`` comes in ``order`` (unknown ones last)."""
    return order.index(variant) if variant in order else len(order)
