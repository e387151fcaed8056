"""Per-channel map methods, registered by name.

Each method takes the explainer's prepared model, one preprocessed image ``x``
``(1, 3, H, W)`` and a flat list of channel indices, and returns raw maps
``(len(channels), h, w)`` (float32 numpy, the method's own units, at feature or layer
resolution). Normalising and upsampling happen in one place (:mod:`.explainer`).
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM

from ..models import MCNet

MapFn = Callable[..., np.ndarray]
METHODS: dict[str, MapFn] = {}

# CAM classes of the grad-cam package that fit a per-channel target.
CAM_CLASSES = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "hirescam": HiResCAM,
    "eigencam": EigenCAM,  # gradient-free: the same map for every channel (a baseline)
}


def register(name: str):
    def deco(fn: MapFn) -> MapFn:
        METHODS[name] = fn
        return fn
    return deco


class ChannelMeanTarget:
    """grad-cam target: the spatial mean of feature channel ``n`` (its GAP activation)."""

    def __init__(self, channel: int) -> None:
        self.channel = int(channel)

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        return features[self.channel].mean()


@register("activation")
def activation_maps(model: MCNet, x: torch.Tensor, channels: list[int], features: Optional[torch.Tensor] = None,
                    **_) -> np.ndarray:
    """The raw channels of the MC feature map (the paper's Fig. 5 and 7)."""
    f = _features(model, x, features)[0]
    return f[channels].float().cpu().numpy()


def _features(model: MCNet, x: torch.Tensor, features: Optional[torch.Tensor]) -> torch.Tensor:
    """The MC features, reusing the caller's forward pass when it has one."""
    if features is not None:
        return features.detach()
    with torch.no_grad():
        return model.features(x)


@register("contribution")
def contribution_maps(model: MCNet, x: torch.Tensor, channels: list[int], classes: Optional[list[int]] = None,
                      features: Optional[torch.Tensor] = None, **_) -> np.ndarray:
    """Channel n's share of class c's logit at each place; the maps of a class sum to its logit.

    Exact for the GAP + linear head (``w[c, n] * F_n(p) / HW``) and for the MC branch
    (``F_n(p) / HW`` where n is the group's cross-channel max at p, else 0). The official
    head (GMP, BN, FC, BN, ELU, FC) has no exact decomposition, so models with it are
    decomposed through their MC branch.
    """
    f = _features(model, x, features)[0].float()
    hw = f.shape[1] * f.shape[2]
    if classes is None:
        raise ValueError("contribution maps need the class of each channel")
    if model.head_kind == "gap" and model.predict == "head":
        w = model.head[-1].weight.detach().float()
        if model.soft:  # the head sees the SE-weighted features
            with torch.no_grad():
                w = w * model.se(f[None])[0][None, :]
        out = torch.stack([w[c, n] * f[n] / hw for n, c in zip(channels, classes)])
        return out.cpu().numpy()
    out = []
    for n, c in zip(channels, classes):
        group = model.groups.channels(c)
        winner = torch.tensor(group)[f[group].argmax(dim=0)]
        out.append(torch.where(winner == n, f[n] / hw, torch.zeros_like(f[n])))
    return torch.stack(out).cpu().numpy()


class _FromLayer(nn.Module):
    """The network from a layer's output to the MC features; ``at`` is the CAM target layer."""

    def __init__(self, tail: nn.Module) -> None:
        super().__init__()
        self.at = nn.Identity()
        self.tail = tail

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.tail(self.at(a))


def cam_maps(model: MCNet, x: torch.Tensor, channels: list[int], method: str = "gradcam",
             layer: Optional[str] = None, chunk: int = 16, layer_output: Optional[torch.Tensor] = None,
             **_) -> np.ndarray:
    """grad-cam package maps for "the mean of channel n", all channels in batched passes.

    The network up to ``layer`` runs once; its output, repeated once per channel, is the
    input of a wrapper whose output is the MC feature map, with one
    :class:`ChannelMeanTarget` per batch element. Each CAM therefore equals the one the
    package gives on the whole model for that single target, at a fraction of the cost.
    Returns the raw (ReLU'd, unnormalised) CAMs at the layer's resolution.
    """
    cls = CAM_CLASSES[method]
    head, tail = model.split_at(layer or model.default_cam_layer())
    if layer_output is not None:
        a = layer_output.detach()
    else:
        with torch.no_grad():
            a = head(x)
    wrapper = _FromLayer(tail).eval()
    if not cls(model=wrapper, target_layers=[wrapper.at]).uses_gradients:
        # Target-free methods (EigenCAM) give one map for all channels: compute it once.
        one = cam_maps_once(cls, wrapper, a)
        return np.repeat(one, len(channels), axis=0)
    out = []
    with cls(model=wrapper, target_layers=[wrapper.at]) as cam:
        for i in range(0, len(channels), chunk):
            part = channels[i:i + chunk]
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


for _name in CAM_CLASSES:
    METHODS[_name] = (lambda name: (lambda model, x, channels, **kw: cam_maps(model, x, channels, method=name, **kw)))(_name)
