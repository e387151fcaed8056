"""What a checkpoint says about itself: :class:`CheckpointMeta`, the typed form of the JSON
that every ``.safetensors`` file of mcviz carries in its header.

The JSON is written by training (:func:`mcviz.train.loop.checkpoint_meta` plus the model's own
config from :func:`mcviz.io.checkpoint.model_config`) and read back here, once; the rest of the
code reads attributes, never string keys. Old files that lack a key get the value the code of
their time assumed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Optional

from ..core.groups import ChannelGroups
from ..core.loss import diversity_options

FORMAT = "mcviz-checkpoint/1"
# The input of a checkpoint that records none (the first files): squash to 256, crop 224.
DEFAULT_INPUT: dict[str, Any] = {"crop": 224, "resize": 256}


@dataclass(frozen=True)
class Metrics:
    """The evaluation recorded at the end of training (the final epoch's, on the test split)."""

    top1: Optional[float] = None
    top5: Optional[float] = None
    top1_head: Optional[float] = None
    top1_mc: Optional[float] = None
    mean_h: Optional[float] = None
    n: Optional[int] = None
    epoch: Optional[int] = None
    final_epoch: Optional[bool] = None
    per_class: Optional[list] = None

    @classmethod
    def from_dict(cls, d: Optional[dict[str, Any]]) -> "Metrics":
        d = d or {}
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})

    def as_dict(self) -> dict[str, Any]:
        """The metrics the file records (those it lacks are left out)."""
        return {k: v for k, v in ((k, getattr(self, k)) for k in self.__dataclass_fields__) if v is not None}


@dataclass
class CheckpointMeta:
    """A checkpoint's metadata, read from the JSON stored in its safetensors header.

    Attributes:
        backbone: the body's name (``lite0``...).
        num_classes: the number of classes.
        groups: the channel groups' JSON (:meth:`mcviz.ChannelGroups.to_dict`).
        head: ``official``, ``gap``, ``class-connected-max`` or ``class-connected-avg``.
        predict: the stream that predicts, ``head`` or ``mc``.
        class_names: one name per class.
        dataset: the data set it was trained on.
        input: the evaluation transform (crop, resize, mean, std).
        variant: the MC-Loss variant (or ``ce``).
        hparams: the training options as recorded.
        metrics: the final epoch's test metrics.
        extra: the tensors stored beside the weights (``extra.<name>``, e.g. soft labels).
        raw: the JSON exactly as stored (:meth:`to_dict`).
    """

    backbone: str
    num_classes: int
    groups: dict[str, Any]
    mc_layer: bool = True
    head: str = "official"
    predict: str = "head"
    mc_kernel: Optional[int] = None
    soft: bool = False
    mc_hidden: int = 0
    map_blur: float = 0.0
    class_names: list[str] = field(default_factory=list)
    dataset: Optional[str] = None
    input: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_INPUT))
    variant: Optional[str] = None
    hparams: dict[str, Any] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    command: str = ""
    format: str = FORMAT
    mcviz_version: Optional[str] = None
    storage_dtype: str = "float32"
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CheckpointMeta":
        """From the stored JSON.

        Args:
            d: the metadata JSON of a checkpoint.

        Returns:
            The metadata, with the JSON kept as :attr:`raw`.

        Raises:
            KeyError: the JSON lacks what a model needs (backbone, classes, groups).
        """
        return cls(
            backbone=d["backbone"],
            num_classes=int(d["num_classes"]),
            groups=d["groups"],
            mc_layer=bool(d.get("mc_layer", True)),
            head=d.get("head", "official"),
            predict=d.get("predict", "head"),
            mc_kernel=d.get("mc_kernel"),
            soft=bool(d.get("soft", False)),
            mc_hidden=int(d.get("mc_hidden") or 0),
            map_blur=float(d.get("map_blur") or 0.0),
            class_names=list(d.get("class_names") or []),
            dataset=d.get("dataset"),
            input=dict(d.get("input") or DEFAULT_INPUT),
            variant=d.get("variant"),
            hparams=dict(d.get("hparams") or {}),
            metrics=Metrics.from_dict(d.get("metrics")),
            command=d.get("command") or "",
            format=d.get("format", FORMAT),
            mcviz_version=d.get("mcviz_version"),
            storage_dtype=d.get("storage_dtype", "float32"),
            raw=copy.deepcopy(d),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON as stored.

        Returns:
            A copy of :attr:`raw` (key order kept, so writing it again gives the same bytes).
        """
        return copy.deepcopy(self.raw)

    # -- what the rest of the code asks -------------------------------------------------------
    def channel_groups(self) -> ChannelGroups:
        """The model's channel groups.

        Returns:
            :class:`mcviz.ChannelGroups` built from :attr:`groups`.
        """
        return ChannelGroups.from_dict(self.groups)

    @property
    def xi(self) -> Optional[int]:
        """The largest number of channels a class owns (ξ for uniform groups)."""
        return max(self.groups.get("sizes") or [0]) or None

    def hparam(self, name: str, default: Any = None) -> Any:
        """A training option as recorded.

        Args:
            name: the option's name in :class:`mcviz.train.config.TrainConfig`.
            default: what a file that predates the option gives.

        Returns:
            The recorded value, or ``default``.
        """
        return self.hparams.get(name, default)

    @property
    def seed(self) -> int:
        return int(self.hparam("seed", 0))

    @property
    def frozen_layer(self) -> Optional[str]:
        """The body step whose outputs a ``--freeze`` run cached (None: trained on images)."""
        return self.hparam("cache_layer") or self.hparam("freeze") or None

    def diversity_options(self) -> dict[str, Any]:
        """The options of L_div that differ from the paper's loss.

        Returns:
            Keyword arguments for :class:`mcviz.MCLoss` (see :func:`mcviz.core.loss.diversity_options`).
        """
        return diversity_options(self.hparams)

    def readable_class_names(self) -> list[str]:
        """The class names for display.

        Returns:
            :attr:`class_names`, or ``class i`` for each class where the file has none (or not one per class).
        """
        names = self.class_names
        return list(names) if len(names) == self.num_classes else [f"class {i}" for i in range(self.num_classes)]
