"""The one checkpoint format: a safetensors file whose header holds JSON metadata.

Weights are plain tensors (never pickled), the metadata says how to rebuild the model
(backbone, channel groups, head), how to feed it (input size, normalisation) and what it
is (class names, data set, loss variant, hyper-parameters, metrics, the command that
trained it). Writing goes to a temporary file in the same folder and is published
with ``os.replace``, so a killed run leaves either the old file or the new one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Union, cast

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save

from ..core.models import Head, MCNet, PretrainedUnavailable, build_model
from .files import PathLike, atomic_write_bytes
from .meta import FORMAT, CheckpointMeta

__all__ = [
    "CheckpointError",
    "FORMAT",
    "as_meta",
    "body_digest",
    "load_checkpoint",
    "packaged_keys",
    "read_metadata",
    "save_checkpoint",
]

_META_KEY = "mcviz"


class CheckpointError(Exception):
    """A checkpoint file cannot be used; the message says why in a user's words."""


def model_config(model: MCNet, backbone: str) -> dict[str, Any]:
    """What :func:`build_model` needs to rebuild ``model``."""
    return {
        "backbone": backbone,
        "num_classes": model.num_classes,
        "groups": model.groups.to_dict(),
        "mc_layer": not isinstance(model.mc_layer, torch.nn.Identity),
        "head": model.head_kind,
        "predict": model.predict,
        "mc_kernel": model.mc_kernel,
        "mc_hidden": model.mc_hidden,
        "map_blur": model.map_blur,
        "soft": model.soft,
    }


def as_meta(meta: Union[CheckpointMeta, Mapping[str, Any]], model: MCNet) -> CheckpointMeta:
    """``meta`` as a :class:`CheckpointMeta`: a mapping (what training writes, e.g. ``{"backbone":
    "small", "class_names": [...], "input": {...}}``) is completed with ``model``'s own config."""
    if isinstance(meta, CheckpointMeta):
        return meta
    fields = {k: v for k, v in meta.items() if k != "extra"}
    out = CheckpointMeta.from_dict({**model_config(model, meta.get("backbone", "small")), **fields})
    out.extra = dict(meta.get("extra") or {})  # tensors stored beside the weights (soft labels)
    return out


def packaged_keys(model: MCNet, through: str) -> list[str]:
    """The state-dict keys of the body steps up to and including ``through``."""
    steps = [n for n, _ in model.body.named_children()]
    if through not in steps:
        raise ValueError(f"unknown body step {through!r}; choose one of {', '.join(steps)}")
    keep = steps[: steps.index(through) + 1]
    return [k for k in model.state_dict() if k.startswith("body.") and k.split(".")[1] in keep]


def body_digest(model: MCNet, through: str) -> str:
    """SHA-256 of the floating tensors of the body up to ``through``, as float32: what a
    checkpoint that leaves them out records, so that a rebuilt body is checked, not trusted."""
    state = model.state_dict()
    h = hashlib.sha256()
    for k in packaged_keys(model, through):
        v = state[k]
        if v.is_floating_point():
            h.update(k.encode())
            h.update(v.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def _is_packaged(backbone: str) -> bool:
    from ..core.models import BACKBONES, _PACKAGED

    return BACKBONES.get(backbone, (None, None))[1] is _PACKAGED


def save_checkpoint(
    path: PathLike,
    model: MCNet,
    meta: Union[CheckpointMeta, Mapping[str, Any]],
    dtype: Optional[torch.dtype] = None,
    extra_tensors: Optional[dict[str, torch.Tensor]] = None,
    packaged_body: Optional[str] = None,
) -> None:
    """Save ``model`` and ``meta`` atomically to ``path`` (a ``.safetensors`` file).

    ``meta`` must hold ``backbone`` and may hold anything JSON-serialisable (class names,
    input size, variant, metrics...); the model's own config (groups, head) is added.
    ``dtype=torch.float16`` halves the file (floating tensors only; loading restores
    float32). ``extra_tensors`` are stored beside the weights under ``extra.<name>``.

    ``packaged_body=LAYER`` (a model trained with ``--freeze LAYER`` on a backbone whose ImageNet
    weights come from a registry package) leaves the body up to LAYER out of the file and records
    its digest; loading rebuilds it from the package and refuses it if it differs. A frozen Lite0
    body is three quarters of a shipped checkpoint.

    Args:
        path: the ``.safetensors`` file to write (replaced only once the new one is complete).
        model: the network.
        meta: its metadata (a mapping, or the :class:`CheckpointMeta` of another file's copy).
        dtype: store floating tensors in this type (e.g. ``torch.float16``).
        extra_tensors: tensors stored beside the weights.
        packaged_body: leave the body up to this step out (see above).

    Raises:
        ValueError: ``meta`` lacks ``backbone``, or ``packaged_body`` is not a step of a packaged backbone.
    """
    if isinstance(meta, CheckpointMeta):
        meta = meta.to_dict()
    if "backbone" not in meta:
        raise ValueError("meta must name the backbone")
    from .._version import __version__

    full = dict(meta)
    full.update(model_config(model, meta["backbone"]))
    full["format"] = FORMAT
    full["mcviz_version"] = __version__
    full["storage_dtype"] = str(dtype or torch.float32).replace("torch.", "")
    skip: set[str] = set()
    if packaged_body:
        if not _is_packaged(meta["backbone"]):
            raise ValueError(f"backbone {meta['backbone']!r} has no packaged weights to rebuild its body from")
        skip = set(packaged_keys(model, packaged_body))
        full["packaged_body"] = {"through": packaged_body, "sha256": body_digest(model, packaged_body)}
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        if k in skip:
            continue
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[f"model.{k}"] = v.contiguous()
    for k, v in (extra_tensors or {}).items():
        tensors[f"extra.{k}"] = v.detach().cpu().contiguous()
    data = st_save(tensors, metadata={_META_KEY: json.dumps(full)})
    atomic_write_bytes(path, data)


def _sniff(path: Path) -> Optional[str]:
    with open(path, "rb") as f:
        head = f.read(9)
    size = path.stat().st_size
    # safetensors: an 8-byte little-endian header length, then the JSON header. Checked first:
    # a header length whose low byte is 0x80 would otherwise look like a pickle's first byte.
    if len(head) == 9 and head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size:
        return None
    if head.startswith(b"PK\x03\x04"):
        return "a PyTorch zip/pickle file (torch.save)"
    if head[:1] == b"\x80":
        return "a Python pickle"
    return None


def read_metadata(path: PathLike) -> CheckpointMeta:
    """The metadata of a checkpoint, without loading the weights."""
    path = Path(path)
    with _open(path) as f:
        return _typed(_meta_of(f, path), path)


def _typed(meta: dict[str, Any], path: Path) -> CheckpointMeta:
    try:
        return CheckpointMeta.from_dict(meta)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: the metadata does not describe a model mcviz can build ({exc})") from None


def _open(path: Path):
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    kind = _sniff(path)
    if kind is not None:
        raise CheckpointError(
            f"{path} is {kind}, not an mcviz checkpoint. mcviz never unpickles files, since "
            "unpickling can run arbitrary code; save models with mcviz.save_checkpoint (safetensors)."
        )
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors checkpoint (truncated or corrupt?): {exc}"
        ) from None


def _meta_of(f, path: Path) -> dict[str, Any]:
    raw = (f.metadata() or {}).get(_META_KEY)
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but has no mcviz metadata; it was not written by mcviz")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: the mcviz metadata is not valid JSON ({exc})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unsupported checkpoint format {meta.get('format')!r} (expected {FORMAT})")
    return meta


def load_checkpoint(path: PathLike, device: Union[str, torch.device] = "cpu") -> tuple[MCNet, CheckpointMeta]:
    """Rebuild the model saved at ``path`` without running any code from the file.

    Args:
        path: a ``.safetensors`` checkpoint of :func:`save_checkpoint`.
        device: where the weights go.

    Returns:
        ``(model in eval mode, metadata)``.

    Raises:
        CheckpointError: a pickle, a truncated or corrupt file, or weights that do not fit the model
            the metadata describes.
    """
    path = Path(path)
    with _open(path) as f:
        meta = _typed(_meta_of(f, path), path)
        try:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # safetensors reports truncation on access
            raise CheckpointError(f"{path}: cannot read the weights (truncated or corrupt?): {exc}") from None
    packaged = meta.raw.get("packaged_body")
    try:
        model = build_model(
            meta.backbone,
            meta.num_classes,
            meta.channel_groups(),
            pretrained=bool(packaged),
            mc_layer=meta.mc_layer,
            head=cast(Head, meta.head),
            predict=cast(Literal["head", "mc"], meta.predict),
            mc_kernel=meta.mc_kernel,
            soft=meta.soft,
            mc_hidden=meta.mc_hidden,
            map_blur=meta.map_blur,
        )
    except PretrainedUnavailable as exc:
        raise CheckpointError(f"{path}: its frozen body comes from a weights package that is missing ({exc})") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: the metadata does not describe a model mcviz can build ({exc})") from None
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    own = model.state_dict()
    if packaged:
        try:
            through, digest = packaged["through"], packaged["sha256"]
            keys = packaged_keys(model, through)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: the metadata's packaged_body is not usable ({exc})") from None
        if body_digest(model, through) != digest:
            raise CheckpointError(
                f"{path}: the body this model was trained on (through {through}) differs from the installed "
                f"weights package's; install the package version it was trained with"
            )
        own = {k: v for k, v in own.items() if k not in set(keys)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        (k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items() if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k, got, want = wrong[0]
            parts.append(f"{len(wrong)} tensor(s) have the wrong shape (e.g. {k}: file {got}, model {want})")
        if missing:
            parts.append(f"{len(missing)} tensor(s) missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensor(s) (e.g. {unexpected[0]})")
        raise CheckpointError(
            f"{path}: the weights do not fit a {meta.backbone} model with {meta.num_classes} classes "
            f"as its metadata says: " + "; ".join(parts)
        )
    state = {k: v.to(own[k].dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=not packaged)
    model.eval().to(device)
    meta.extra = {k[len("extra.") :]: v for k, v in tensors.items() if k.startswith("extra.")}
    return model, meta
