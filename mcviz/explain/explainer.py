"""The :class:`Explainer`: predictions, per-channel maps, merged maps and h for one image."""

from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union, cast

import cv2
import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam.utils.image import scale_cam_image

from ..io.checkpoint import as_meta, load_checkpoint
from ..io.meta import CheckpointMeta
from ..data.images import open_image, to_rgb
from ..data.transforms import EvalTransform, cell_centre
from ..core.folding import for_inference
from ..core.groups import ChannelGroups
from ..core.loss import diversity_scores
from ..core.models import MCNet, channels_last
from .effect import pooled_inputs
from .methods import METHODS, LayerMethod

from .ood import OODCalibration, OODVerdict, load_ood_calibration

if TYPE_CHECKING:
    from ..core.part_locator import PartLocator, PartPrediction
    from ..io.locator_file import LocatorMeta

ImageLike = Union[Image.Image, str, Path, bytes]
# the body step whose output the CUB part locator reads (mcviz.core.part_locator)
PART_TRUNK_LAYER = "block5"


@dataclass
class Prediction:
    index: int
    name: str
    prob: float


class Predictions(list):
    """The top-k :class:`Prediction` list, with the out-of-distribution check's verdict on the photo
    (``ood``; None when the checkpoint has no calibration, see ``mcviz calibrate-ood``)."""

    def __init__(self, items=(), ood: Optional[OODVerdict] = None) -> None:
        super().__init__(items)
        self.ood = ood

    @property
    def flagged(self) -> bool:
        """True when the check says the photo is not of what the model knows."""
        return self.ood is not None and self.ood.flagged


@dataclass
class ClassMaps:
    """The maps of one class's channels for one image."""

    class_index: int
    class_name: str
    channels: list[int]
    raw: np.ndarray  # (k, H, W) raw values upsampled to the input crop (the method's units)
    maps: np.ndarray  # (k, H, W) each map min-max normalised to [0, 1]
    merged_raw: np.ndarray  # (H, W) cross-channel max of the raw maps (Fig. 7, last column)
    merged: np.ndarray  # (H, W) merged_raw normalised to [0, 1]
    peaks: list[tuple[int, int]]  # (x, y) of each channel's raw maximum, in crop pixels
    h: float  # Eq. 7 for this class's group


@dataclass
class ChannelMaps:
    method: str
    layer: Optional[str]
    image: np.ndarray  # (H, W, 3) uint8: the crop the model saw
    classes: list[ClassMaps] = field(default_factory=list)
    note: str = ""

    def __getitem__(self, class_index: int) -> ClassMaps:
        for c in self.classes:
            if c.class_index == class_index:
                return c
        raise KeyError(class_index)

    def record(
        self, predictions: Sequence[Prediction], labels: Optional[dict[int, str]] = None, **context: Any
    ) -> dict[str, Any]:
        """The numbers behind the maps, JSON-ready (``mcviz explain``'s ``.json``, the app's
        download): ``context`` first (the image, the checkpoint), then the method, the
        predictions and each class's channels, h, peaks and raw maxima; with ``labels``
        (channel -> the part it usually looks at) each class also lists ``usual_parts``."""

        def one(c: ClassMaps) -> dict[str, Any]:
            out = {
                "class": c.class_name,
                "index": c.class_index,
                "h": round(c.h, 4),
                "channels": c.channels,
                "peaks_xy": [list(map(int, pk)) for pk in c.peaks],
                "raw_max": [float(r.max()) for r in c.raw],
            }
            if labels:
                out["usual_parts"] = [labels.get(ch) for ch in c.channels]
            return out

        return {
            **context,
            "method": self.method,
            "layer": self.layer,
            "predictions": [{"class": p.name, "index": p.index, "prob": round(p.prob, 5)} for p in predictions],
            "classes": [one(c) for c in self.classes],
        }


@dataclass
class Diversity:
    h: np.ndarray  # (c,) h of every class group (Eq. 7)
    peaks: np.ndarray  # (N, 2) each channel's peak (x, y) in crop pixels


# How many recent photos keep their prepared input and their features. A served upload asks for them
# four times (predictions, maps, parts, pooled input), and the requests of many sessions interleave: with
# 16 sessions uploading at once, a memory of 8 lost each photo's features before its next request and
# ran the network up to four times per upload. About 1.3 MB a photo for a CUB model.
RECENT = 32


def _image_key(image: ImageLike) -> str:
    """The identity of an input photo ("" where none is cheap to have): its bytes' SHA-1 (a PIL image:
    of its mode, size and pixels; a file: of its path, size and modification time)."""
    h = hashlib.sha1()
    if isinstance(image, Image.Image):
        h.update(f"{image.mode}{image.size}".encode())
        h.update(image.tobytes())
    elif isinstance(image, (bytes, bytearray)):
        h.update(image)
    elif isinstance(image, (str, Path)) and Path(image).is_file():
        st = Path(image).stat()
        h.update(f"{Path(image).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        return ""
    return h.hexdigest()


def _normalise(raw: np.ndarray) -> np.ndarray:
    """Per-map min-max to [0, 1], as the grad-cam package does (a constant map becomes 0)."""
    return scale_cam_image(raw) if raw.ndim == 3 else scale_cam_image(raw[None])[0]


def _display(small: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[0, 1] maps at image size exactly as the grad-cam package makes them
    (min-max, upsample, min-max again), so CAM maps match the package's own output."""
    return scale_cam_image(scale_cam_image(small, size))


def _resize(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of ``(k, h, w)`` to ``(k, H, W)`` (cv2, as the grad-cam package)."""
    w, h = size
    return (
        np.stack([cv2.resize(m.astype(np.float32), (w, h)) for m in maps])
        if len(maps)
        else np.zeros((0, h, w), np.float32)
    )


def _between_crops(u: torch.Tensor, src: EvalTransform, dst: EvalTransform) -> torch.Tensor:
    """Unit-square coordinates in ``src``'s crop -> in ``dst``'s crop of the same photo."""
    squashed = (u * src.crop + src.offset) / src.resize
    return (squashed * dst.resize - dst.offset) / dst.crop


class Explainer:
    """Explanations for one checkpoint.

    >>> ex = Explainer.from_checkpoint("checkpoints/cub-mc.safetensors")
    >>> preds = ex.predict(image, k=3)
    >>> maps = ex.channel_maps(image, [preds[0].index], method="activation")

    Args:
        model: the network (a private copy is made, in eval mode on ``device``).
        meta: its metadata (the transform, the class names).
        device: where it runs.
        ood: the out-of-distribution calibration (:func:`mcviz.explain.ood.load_ood_calibration`).
    """

    def __init__(
        self,
        model: MCNet,
        meta: CheckpointMeta | dict[str, Any],
        device: str | torch.device = "cpu",
        ood: Optional[OODCalibration] = None,
    ) -> None:
        # A private copy without in-place ReLUs: CAM hooks must see unmodified activations.
        # channels_last: the CPU runs the network faster in it (see models.channels_last).
        self.model = channels_last(copy.deepcopy(model).eval().to(device))
        for m in self.model.modules():
            if hasattr(m, "inplace"):
                m.inplace = False
        for p in self.model.parameters():
            p.requires_grad_(True)
        self.meta = meta = as_meta(meta, model)
        self.device = torch.device(device)
        self.transform = EvalTransform.from_config(meta.input)
        self.class_names = meta.readable_class_names()
        self.ood = ood  # the out-of-distribution threshold (mcviz.explain.ood), when calibrated
        # The features of the last few inputs: an upload asks for predictions, then maps, then
        # perhaps a switch-off, and all three start from the same features.
        self._recent: OrderedDict[str, tuple[torch.Tensor, Optional[torch.Tensor]]] = OrderedDict()
        self._prepared: OrderedDict[str, tuple[torch.Tensor, np.ndarray]] = OrderedDict()
        self._fast: Optional[MCNet] = None  # the folded copy (:meth:`_folded`)
        self._fits: Optional[bool] = None  # whether the shared part locator reads this model's trunk
        self._locator_trunk: Optional[torch.nn.Module] = None  # the locator's own trunk, where it does not
        self._recent_lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> "Explainer":
        """The checkpoint's explainer, with its out-of-distribution calibration (``NAME.ood.json``)
        when one was made for these weights.

        Args:
            path: a ``.safetensors`` checkpoint.
            device: where it runs.

        Returns:
            The explainer.

        Raises:
            mcviz.CheckpointError: the file is no readable checkpoint.
        """
        model, meta = load_checkpoint(path, device=device)
        return cls(model, meta, device, ood=load_ood_calibration(path))

    @property
    def groups(self):
        return self.model.groups

    def layers(self) -> list[str]:
        """Layers a CAM method can use.

        Returns:
            The names of the feature path's steps, input to MC features.
        """
        return [n for n, _ in self.model.stages()]

    # -- input ------------------------------------------------------------------------------
    def prepare(self, image: ImageLike) -> tuple[torch.Tensor, np.ndarray]:
        """The model's input for an image.

        Args:
            image: a path, bytes or a PIL image (decoded safely: EXIF rotation, CMYK, 16-bit...).

        Returns:
            ``(1, 3, H, W)`` model input and the ``(H, W, 3)`` uint8 crop it shows.

        Raises:
            mcviz.data.images.ImageError: the image cannot be read (with the reason).
        """
        # an upload asks for predictions, maps, parts and its pooled input: the photo is decoded,
        # squashed and cropped once (the last few photos are kept, like their features)
        key = _image_key(image)
        with self._recent_lock:
            found = self._prepared.get(key) if key else None
            if found is not None:
                self._prepared.move_to_end(key)
                return found
        if isinstance(image, Image.Image):
            img = to_rgb(image)
        else:
            img = open_image(image, min_side=self.transform.resize)
        x = channels_last(self.transform(img)[None].to(self.device))
        mean = torch.tensor(self.transform.mean)[:, None, None]
        std = torch.tensor(self.transform.std)[:, None, None]
        crop = ((x[0].cpu() * std + mean).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        crop.setflags(write=False)  # shared by every caller of this photo
        if key:
            with self._recent_lock:
                self._prepared[key] = (x, crop)
                while len(self._prepared) > RECENT:
                    self._prepared.popitem(last=False)
        return x, crop

    @torch.no_grad()
    def features(self, x: torch.Tensor, keep: int = RECENT) -> torch.Tensor:
        """The MC features of a prepared input, reused for the last ``keep`` inputs.

        Args:
            x: ``(1, 3, H, W)`` from :meth:`prepare`.
            keep: how many recent inputs keep their features.

        Returns:
            ``(1, N, H', W')`` MC features.
        """
        return self._forward(x, keep)[0]

    @torch.no_grad()
    def _forward(self, x: torch.Tensor, keep: int = RECENT) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``(MC features, the output of the part locator's trunk step or None)``, kept for the last
        ``keep`` inputs: the locator reads the step the network passes anyway."""
        key = hashlib.sha1(x.detach().cpu().numpy().tobytes()).hexdigest()
        with self._recent_lock:
            found = self._recent.get(key)
            if found is not None:
                self._recent.move_to_end(key)
                return found
        step = PART_TRUNK_LAYER if PART_TRUNK_LAYER in self.layers() else None
        net = self._folded()
        if step:
            front, tail = net.split_at(step)
            mid = front(x)
            out = (tail(mid), mid)
        else:
            out = (net.features(x), None)
        with self._recent_lock:
            self._recent[key] = out
            while len(self._recent) > keep:
                self._recent.popitem(last=False)
        return out

    @torch.no_grad()
    def locate_parts(self, image: ImageLike, locator: "PartLocator", locator_meta: "LocatorMeta") -> "PartPrediction":
        """Where each CUB part of *this* photo is (:class:`~mcviz.core.part_locator.PartLocator`), in the
        pixels of the model's crop. When the model's body up to the locator's step is the trunk the
        locator was trained on, its own pass feeds the locator (the photo costs only the head);
        otherwise the locator's own trunk runs.

        Args:
            image: a path, bytes or a PIL image (decoded safely: EXIF rotation, CMYK, 16-bit...).
            locator: the part locator.
            locator_meta: its metadata (trunk, transform).

        Returns:
            The parts, their visibility and the box in the model's crop.
        """
        from ..core.part_locator import PartPrediction
        from ..io.locator_file import locator_fits, trunk_for

        x, _ = self.prepare(image)
        mid = self._forward(x)[1]
        if self._fits is None:
            self._fits = locator_fits(locator_meta, self.model)
        tf = locator_meta.transform
        same_input = tf.config() == self.transform.config()
        if mid is None or not (self._fits and same_input) or locator_meta.layer != PART_TRUNK_LAYER:
            img = to_rgb(image) if isinstance(image, Image.Image) else open_image(image, min_side=tf.resize)
            if self._locator_trunk is None:
                self._locator_trunk = channels_last(trunk_for(locator_meta).to(self.device))
            mid = self._locator_trunk(channels_last(tf(img)[None].to(self.device)))
            xy, vis, box = locator.predict(mid)
            # the locator's crop -> this model's crop: both squash the photo, then cut its centre
            xy, box = _between_crops(xy, tf, self.transform), _between_crops(box, tf, self.transform)
        else:
            xy, vis, box = locator.predict(mid)
        return PartPrediction.from_unit(xy[0], vis[0], box[0], self.transform.crop)

    # -- outputs ----------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, image: ImageLike, k: int = 5) -> Predictions:
        """The ``k`` most probable classes, with the out-of-distribution verdict on the photo
        (``.ood``) when the checkpoint is calibrated: it reads the same class scores, so it costs
        nothing more.

        Args:
            image: a path, bytes or a PIL image (decoded safely: EXIF rotation, CMYK, 16-bit...).
            k: how many classes.

        Returns:
            :class:`Predictions`, most probable first, with ``.ood`` (None when uncalibrated).

        Raises:
            mcviz.data.images.ImageError: the image cannot be read.
        """
        x, _ = self.prepare(image)
        logits = self.model.logits_from_features(self.features(x))[0].float()
        probs = torch.softmax(logits, dim=0)
        top = probs.topk(min(k, len(probs)))
        return Predictions(
            # plain numbers first: a tensor's scalar each costs microseconds, and k may be every class
            [Prediction(i, self.class_names[i], p) for p, i in zip(top.values.tolist(), top.indices.tolist())],
            ood=self.ood.verdict(logits) if self.ood is not None else None,
        )

    @torch.no_grad()
    def pooled(self, image: ImageLike) -> torch.Tensor:
        """``(N,)``: the head's pooled input for ``image``; with a
        :class:`~mcviz.explain.effect.HeadAblation` it gives the prediction with any channels
        switched off, without another pass through the trunk.

        Args:
            image: a path, bytes or a PIL image (decoded safely: EXIF rotation, CMYK, 16-bit...).

        Returns:
            ``(N,)`` pooled input of the CE head.
        """
        x, _ = self.prepare(image)
        return pooled_inputs(self.model, self.features(x))[0]

    def channel_maps(
        self,
        image: ImageLike,
        classes: Sequence[int],
        method: str = "activation",
        layer: Optional[str] = None,
        chunk: int = 16,
    ) -> ChannelMaps:
        """One map per channel of each requested class, computed in one batched pass.

        Args:
            image: a path, bytes or a PIL image (decoded safely: EXIF rotation, CMYK, 16-bit...).
            classes: class indices.
            method: ``activation``, ``contribution`` or a Grad-CAM method of :data:`mcviz.explain.METHODS`.
            layer: the CAM layer (default: :meth:`mcviz.MCNet.default_cam_layer`).
            chunk: channels per backward pass of a CAM method.

        Returns:
            :class:`ChannelMaps`: per class its channels' raw and display maps, peaks and h.

        Raises:
            ValueError: an unknown method or layer, or a class out of range.
        """
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        classes = [int(c) for c in classes]
        for c in classes:
            if not 0 <= c < self.model.num_classes:
                raise ValueError(f"class {c} out of range 0..{self.model.num_classes - 1}")
        x, crop = self.prepare(image)
        flat_channels: list[int] = []
        flat_classes: list[int] = []
        for c in classes:
            chans = self.groups.channels(c)
            flat_channels += chans
            flat_classes += [c] * len(chans)
        fn = METHODS[method]
        layer = (layer or self.model.default_cam_layer()) if isinstance(fn, LayerMethod) else None
        raw_small, feats = self._raw_maps(fn, x, flat_channels, flat_classes, layer, chunk)
        size = (crop.shape[1], crop.shape[0])
        # h of the asked classes only (Eq. 7 on their own channels): all c classes cost 80 % of the maps
        mine = [self.groups.channels(c) for c in classes]
        own = ChannelGroups.from_sizes([len(m) for m in mine])
        h_own = diversity_scores(feats[:, [ch for m in mine for ch in m]].float(), own)[0].cpu().numpy()
        h = dict(zip(classes, h_own.tolist()))
        out = ChannelMaps(method=method, layer=layer, image=crop)
        if method == "eigencam":
            out.note = "EigenCAM ignores the target: every channel gets the same map."
        i = 0
        for c in classes:
            k = len(self.groups.channels(c))
            small = raw_small[i : i + k]
            raw = _resize(small, size)
            merged_raw = raw.max(axis=0)
            out.classes.append(
                ClassMaps(
                    class_index=c,
                    class_name=self.class_names[c],
                    channels=flat_channels[i : i + k],
                    raw=raw,
                    maps=_display(small, size),
                    merged_raw=merged_raw,
                    merged=_normalise(merged_raw),
                    peaks=[self._peak(m, crop.shape) for m in small],
                    h=float(h[c]),
                )
            )
            i += k
        return out

    def _folded(self) -> MCNet:
        """The feature path with each BatchNorm folded into its convolution (checked against the
        original when made): what predictions, activation maps and the part locator read. The CAM
        methods hook the original layers."""
        with self._recent_lock:
            if self._fast is None:
                self._fast = cast(MCNet, for_inference(self.model))
            return self._fast

    def _raw_maps(
        self, fn, x: torch.Tensor, channels: list[int], classes: list[int], layer: Optional[str], chunk: int
    ) -> tuple[np.ndarray, torch.Tensor]:
        """``(raw maps, MC features)``: one forward pass serves both (up to the CAM layer, then on)."""
        if isinstance(fn, LayerMethod):
            front, tail = self.model.split_at(layer)
            with torch.no_grad():
                layer_out = front(x)
                feats = tail(layer_out)
            return fn(self.model, x, channels, layer=layer, layer_output=layer_out, chunk=chunk), feats
        feats = self.features(x)
        return fn(self.model, x, channels, classes=classes, features=feats), feats

    @torch.no_grad()
    def diversity(self, image: ImageLike) -> Diversity:
        """h of every class (Eq. 7) and each channel's peak location.

        Args:
            image: a path, bytes or a PIL image (decoded safely: EXIF rotation, CMYK, 16-bit...).

        Returns:
            :class:`Diversity`.
        """
        x, crop = self.prepare(image)
        f = self.features(x).float()
        h = diversity_scores(f, self.groups)[0].cpu().numpy()
        fm = f[0].cpu().numpy()
        peaks = np.array([self._peak(m, crop.shape) for m in fm])
        return Diversity(h=h, peaks=peaks)

    @staticmethod
    def _peak(m: np.ndarray, crop_shape) -> tuple[int, int]:
        """(x, y) of the maximum of a feature-resolution map, at the centre of its cell in the crop."""
        px, py = cell_centre(int(np.argmax(m)), m.shape[1], m.shape[0], crop_shape[1], crop_shape[0])
        return int(px), int(py)
