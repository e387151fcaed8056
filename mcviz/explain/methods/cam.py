"""The CAM family (the grad-cam package's methods), one map per channel: the target is the
channel's spatial mean, at a layer before the MC features."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM

from ...core.models import MCNet
from .base import LayerMethod

# CAM classes of the grad-cam package that fit a per-channel target.
CAM_CLASSES = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "hirescam": HiResCAM,
    "eigencam": EigenCAM,  # gradient-free: the same map for every channel (a baseline)
}


class ChannelMeanTarget:
    """grad-cam target: the spatial mean of feature channel ``n`` (its GAP activation)."""

    def __init__(self, channel: int) -> None:
        self.channel = int(channel)

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        return features[self.channel].mean()


class _FromLayer(nn.Module):
    """The network from a layer's output to the MC features; ``at`` is the CAM target layer."""

    def __init__(self, tail: nn.Module) -> None:
        super().__init__()
        self.at = nn.Identity()
        self.tail = tail

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.tail(self.at(a))


class Cam(LayerMethod):
    """One of the grad-cam package's methods (:data:`CAM_CLASSES`) for each channel's mean."""

    def __init__(self, name: str) -> None:
        self.name = name  # type: ignore[misc]

    def __call__(
        self,
        model: MCNet,
        x: torch.Tensor,
        channels: Sequence[int],
        *,
        layer: Optional[str] = None,
        layer_output: Optional[torch.Tensor] = None,
        chunk: int = 16,
    ) -> np.ndarray:
        return cam_maps(model, x, list(channels), self.name, layer, chunk, layer_output)


def cam_maps(
    model: MCNet,
    x: torch.Tensor,
    channels: list[int],
    method: str = "gradcam",
    layer: Optional[str] = None,
    chunk: int = 16,
    layer_output: Optional[torch.Tensor] = None,
) -> np.ndarray:
    """grad-cam package maps for "the mean of channel n", all channels in batched passes.

    The network up to ``layer`` runs once; its output, repeated once per channel, is the
    input of a wrapper whose output is the MC feature map, with one
    :class:`ChannelMeanTarget` per batch element. Each CAM therefore equals the one the
    package gives on the whole model for that single target, at a fraction of the cost.
    Returns the raw (ReLU'd, unnormalised) CAMs at the layer's resolution.
    """
    cls = CAM_CLASSES[method]
    front, tail = model.split_at(layer or model.default_cam_layer())
    if layer_output is not None:
        a = layer_output.detach()
    else:
        with torch.no_grad():
            a = front(x)
    wrapper = _FromLayer(tail).eval()
    if not cls(model=wrapper, target_layers=[wrapper.at]).uses_gradients:
        # Target-free methods (EigenCAM) give one map for all channels: compute it once.
        one = cam_maps_once(cls, wrapper, a)
        return np.repeat(one, len(channels), axis=0)
    out = []
    with cls(model=wrapper, target_layers=[wrapper.at]) as cam:
        for i in range(0, len(channels), chunk):
            part = channels[i : i + chunk]
            # the layer output must require grad for the hooks to see its gradient
            inp = a.expand(len(part), *a.shape[1:]).clone().requires_grad_(True)
            targets = [ChannelMeanTarget(n) for n in part]
            cam(input_tensor=inp, targets=targets)  # forward + backward, fills the hooks
            acts = cam.activations_and_grads.activations[0].cpu().numpy()
            grads = cam.activations_and_grads.gradients[0].cpu().numpy() if cam.uses_gradients else None
            raw = cam.get_cam_image(inp, wrapper.at, targets, acts, grads, False)
            out.append(np.maximum(raw, 0).astype(np.float32))
    return np.concatenate(out, axis=0)


def cam_maps_once(cls, wrapper: nn.Module, a: torch.Tensor) -> np.ndarray:
    with cls(model=wrapper, target_layers=[wrapper.at]) as cam:
        inp = a.clone().requires_grad_(True)
        targets = [ChannelMeanTarget(0)]
        cam(input_tensor=inp, targets=targets)
        acts = cam.activations_and_grads.activations[0].cpu().numpy()
        raw = cam.get_cam_image(inp, wrapper.at, targets, acts, None, False)
    return np.maximum(raw, 0).astype(np.float32)
