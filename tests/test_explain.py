import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM

from mcviz import ChannelGroups, build_model
from mcviz.explain import METHODS, ChannelMeanTarget, Explainer, top_channels
from mcviz.core.loss import diversity_scores

META = {"input": {"crop": 64, "resize": 72}, "class_names": ["Red Bird", "Blue Bird", "Green Bird", "Owl"]}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("resnet18", 4, ChannelGroups.from_sizes([3, 2, 3, 4]), head="gap")
    m.train()(torch.randn(4, 3, 64, 64))  # non-trivial BN statistics
    return m.eval()


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))


def test_predict_and_names(model, image):
    ex = Explainer(model, META)
    preds = ex.predict(image, k=3)
    assert len(preds) == 3 and preds[0].prob >= preds[1].prob >= preds[2].prob
    assert preds[0].name in META["class_names"]
    assert sum(p.prob for p in ex.predict(image, k=10)) == pytest.approx(1.0, abs=1e-5)


def test_activation_maps_are_the_feature_map(model, image):
    ex = Explainer(model, META)
    x, crop = ex.prepare(image)
    f = model.features(x)[0].detach()
    assert crop.shape == (64, 64, 3)
    raw = METHODS["activation"](ex.model, x, [0, 5, 11])
    assert np.allclose(raw, f[[0, 5, 11]].numpy(), atol=1e-5)
    cm = ex.channel_maps(image, [0, 3], method="activation")
    c0, c3 = cm[0], cm[3]
    assert c0.channels == [0, 1, 2] and c3.channels == [8, 9, 10, 11]
    assert c0.maps.shape == (3, 64, 64) and c3.maps.shape == (4, 64, 64)
    assert c0.maps.min() >= 0 and c0.maps.max() <= 1 + 1e-6
    # raw magnitudes kept; merged map is the cross-channel max of the raw maps
    assert np.allclose(c3.merged_raw, c3.raw.max(axis=0), atol=1e-5)
    assert c3.h == pytest.approx(float(diversity_scores(f[None], model.groups)[0, 3]), abs=1e-5)
    # peaks are the argmax cell of each raw channel
    fy, fx = np.unravel_index(int(f[8].argmax()), f[8].shape)
    cell = 64 / f.shape[-1]
    assert c3.peaks[0] == (int((fx + 0.5) * cell), int((fy + 0.5) * cell))


class _Features(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m.features(x)


@pytest.mark.parametrize(
    "name,cls",
    [
        ("gradcam", GradCAM),
        ("gradcam++", GradCAMPlusPlus),
        ("xgradcam", XGradCAM),
        ("layercam", LayerCAM),
        ("hirescam", HiResCAM),
    ],
)
@pytest.mark.parametrize("layer", ["layer4", "layer3"])
def test_batched_cams_equal_the_package_single_target(model, image, name, cls, layer):
    ex = Explainer(model, META)
    cm = ex.channel_maps(image, [1, 2], method=name, layer=layer)
    x, _ = ex.prepare(image)
    ref_model = _Features(ex.model)
    target_layer = dict(ex.model.body.named_children())[layer]
    for c in (1, 2):
        for j, n in enumerate(model.groups.channels(c)):
            with cls(model=ref_model, target_layers=[target_layer]) as cam:
                ref = cam(input_tensor=x, targets=[ChannelMeanTarget(n)])[0]
            assert np.allclose(cm[c].maps[j], ref, atol=1e-4), (name, layer, c, n)


def test_eigencam_is_flagged_as_channel_agnostic(model, image):
    cm = Explainer(model, META).channel_maps(image, [0], method="eigencam")
    assert "same map" in cm.note
    assert np.allclose(cm[0].maps[0], cm[0].maps[1])


def test_contribution_sums_to_the_logit(model, image):
    ex = Explainer(model, META)
    x, _ = ex.prepare(image)
    with torch.no_grad():
        f = ex.model.features(x)
        logits = ex.model.head(f)[0]
    all_ch = list(range(model.groups.num_channels))
    for c in range(4):
        contrib = METHODS["contribution"](ex.model, x, all_ch, classes=[c] * len(all_ch))
        bias = float(ex.model.head[-1].bias[c])
        assert contrib.sum() + bias == pytest.approx(float(logits[c]), abs=1e-4)
    # MC branch: the class's own channels share its MC logit exactly
    mc_model = build_model("small", 4, ChannelGroups.from_sizes([3, 2, 3, 4]), predict="mc").eval()
    ex2 = Explainer(mc_model, META)
    x2, _ = ex2.prepare(image)
    with torch.no_grad():
        mc_logits = ex2.model.mc_logits(ex2.model.features(x2))[0]
    for c in range(4):
        ch = mc_model.groups.channels(c)
        assert METHODS["contribution"](ex2.model, x2, ch, classes=[c] * len(ch)).sum() == pytest.approx(
            float(mc_logits[c]), abs=1e-4
        )


def test_errors(model, image):
    ex = Explainer(model, META)
    with pytest.raises(ValueError, match="unknown method"):
        ex.channel_maps(image, [0], method="nope")
    with pytest.raises(ValueError, match="out of range"):
        ex.channel_maps(image, [9])
    with pytest.raises(ValueError, match="unknown layer"):
        ex.channel_maps(image, [0], method="gradcam", layer="layer9")


def test_diversity_and_image_modes(model, image):
    ex = Explainer(model, META)
    d = ex.diversity(image)
    assert d.h.shape == (4,) and d.peaks.shape == (12, 2)
    assert (d.h >= 1 - 1e-5).all() and (d.h <= np.array([3, 2, 3, 4]) + 1e-5).all()
    for mode in ("L", "RGBA", "P", "CMYK", "I;16"):
        img = image.convert("L").convert(mode) if mode == "I;16" else image.convert(mode)
        assert len(ex.predict(img, 2)) == 2


def test_top_channels_sources(model):
    r = top_channels(model, 2, k=5)
    w = model.head[-1].weight[2].detach()
    assert r.channels == w.topk(5).indices.tolist() and "GAP+linear" in r.source
    assert r.owners == [int(model.groups.owner()[i]) for i in r.channels]
    soft = torch.zeros(4, 12)
    soft[2, [7, 1, 4]] = torch.tensor([0.9, 0.8, 0.7])
    r2 = top_channels((model, {"extra": {"soft_labels": soft}}), 2, k=3)
    assert r2.channels == [7, 1, 4] and "soft" in r2.source
    official = build_model("small", 4, ChannelGroups.from_sizes([3, 2, 3, 4])).eval()
    r3 = top_channels(official, 0, k=10)
    assert len(r3.channels) == 10 and "linearised" in r3.source

    class DS(torch.utils.data.Dataset):
        targets = [0, 2, 2]

        def __len__(self):
            return 3

        def __getitem__(self, i):
            torch.manual_seed(i)
            return torch.randn(3, 64, 64), self.targets[i]

    r4 = top_channels(model, 2, k=4, dataset=DS())
    with torch.no_grad():
        acts = torch.stack([model.features(DS()[i][0][None])[0].mean(dim=(1, 2)) for i in (1, 2)]).mean(0)
    assert r4.channels == acts.topk(4).indices.tolist() and "mean activation" in r4.source
