import urllib.error

import pytest
import torch

from mcviz import ChannelGroups, PretrainedUnavailable, build_model
from mcviz.cli import main


@pytest.mark.parametrize(
    "backbone,stride,channels", [("small", 8, 192), ("resnet18", 16, 512), ("vgg16", 16, 512), ("resnet50", 16, 2048)]
)
def test_backbones_stride_and_streams(backbone, stride, channels):
    m = build_model(backbone, 5, xi=2).eval()
    x = torch.randn(2, 3, 64, 64)
    f = m.features(x)
    assert f.shape == (2, 10, 64 // stride, 64 // stride)
    assert m(x).shape == (2, 5)
    assert m.logits_from_features(f, "mc").shape == (2, 5)
    # the backbone's own channels, grouped with the uneven split
    u = build_model(backbone, 7, mc_layer=False, head="gap").eval()
    assert u.groups == ChannelGroups.split(channels, 7)
    assert u.features(x).shape[1] == channels


def test_224_gives_14x14_for_official_backbones():
    m = build_model("resnet18", 3, xi=2).eval()
    assert m.features(torch.randn(1, 3, 224, 224)).shape[-2:] == (14, 14)


def test_heads_and_prediction_stream():
    off = build_model("small", 4, xi=3, head="official")
    gap = build_model("small", 4, xi=3, head="gap")
    assert isinstance(off.head[0], torch.nn.AdaptiveMaxPool2d) and isinstance(off.head[5], torch.nn.ELU)
    assert isinstance(gap.head[0], torch.nn.AdaptiveAvgPool2d) and len(gap.head) == 3
    mc = build_model("small", 4, xi=3, predict="mc").eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(mc(x), mc.mc_logits(mc.features(x)))


def test_groups_must_fit():
    with pytest.raises(ValueError, match="feature map has 512 channels"):
        build_model("resnet18", 4, ChannelGroups.uniform(4, 3), mc_layer=False)
    with pytest.raises(ValueError, match="for 3 classes"):
        build_model("small", 4, ChannelGroups.uniform(3, 3))
    with pytest.raises(ValueError, match="unknown backbone"):
        build_model("alexnet", 4)


def _offline(monkeypatch, tmp_path):
    def refuse(*a, **k):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


def test_pretrained_offline_says_what_to_download(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    with pytest.raises(PretrainedUnavailable) as err:
        build_model("resnet18", 3, pretrained=True)
    msg = str(err.value)
    assert "https://download.pytorch.org/models/resnet18" in msg
    assert str(tmp_path) in msg and "without --pretrained" in msg


def test_cli_pretrained_offline_is_a_clear_error(monkeypatch, tmp_path, tiny_folder, capsys):
    _offline(monkeypatch, tmp_path / "hub")
    rc = main(
        [
            "train",
            "--dataset",
            "folder",
            "--root",
            str(tiny_folder),
            "--out",
            str(tmp_path / "run"),
            "--backbone",
            "resnet18",
            "--pretrained",
            "--epochs",
            "1",
            "--workers",
            "0",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "could not download the ImageNet weights" in err and "Traceback" not in err


def test_channels_last_gives_the_same_numbers():
    from mcviz.core.models import channels_last

    torch.manual_seed(0)
    m = build_model("small", 4, xi=3).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        ref = m(x)
        feats = m.features(x)
        channels_last(m)
        xc = channels_last(x)
        assert xc.is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(m(xc), ref, atol=1e-5)
        assert torch.allclose(m.features(xc), feats, atol=1e-5)
        assert torch.allclose(m.mc_logits(m.features(xc)), m.mc_logits(feats), atol=1e-5)
    assert channels_last(torch.ones(2, 3)).shape == (2, 3)  # not an image batch: unchanged


def test_map_blur_is_a_normalised_gaussian_that_keeps_a_peak_and_its_place():
    from mcviz.core.models import MapBlur

    blur = MapBlur(1.0)
    one_hot = torch.zeros(1, 2, 18, 18)
    one_hot[0, 0, 9, 4] = 1.0
    out = blur(one_hot)
    assert torch.isclose(out[0, 0].sum(), torch.tensor(1.0), atol=1e-6)  # inside: no mass lost
    assert int(out[0, 0].argmax()) == 9 * 18 + 4 and out[0, 1].abs().max() == 0  # depthwise
    # the obvious slow path: a 2-D Gaussian of sigma 1, weighed cell by cell
    ys, xs = torch.meshgrid(torch.arange(18.0), torch.arange(18.0), indexing="ij")
    g = torch.exp(-((ys - 9) ** 2 + (xs - 4) ** 2) / 2)
    g = g * (((ys - 9).abs() <= 3) & ((xs - 4).abs() <= 3))
    assert torch.allclose(out[0, 0], g / g.sum(), atol=1e-6)
    # two flat cells side by side: noise of a tenth can swap their order, not after the blur with the
    # broader bump the left one sits on
    flat = torch.zeros(1, 1, 18, 18)
    flat[0, 0, 5:12, 2:9] = 0.5
    flat[0, 0, 8, 5] = 1.0
    flat[0, 0, 8, 14] = 1.02
    assert int(flat[0, 0].argmax()) == 8 * 18 + 14 and int(blur(flat)[0, 0].argmax()) == 8 * 18 + 5
    with pytest.raises(ValueError):
        MapBlur(0.0)


def test_a_model_with_map_blur_keeps_its_weights_names_and_round_trips(tmp_path):
    from mcviz.core.models import MapBlur
    from mcviz.io import load_checkpoint, save_checkpoint

    plain = build_model("small", 4, xi=2, head="class-connected-avg")
    blurred = build_model("small", 4, xi=2, head="class-connected-avg", map_blur=1.0)
    assert set(plain.state_dict()) == set(blurred.state_dict())
    blurred.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 64, 64)
    plain.eval(), blurred.eval()
    assert torch.allclose(blurred.features(x), MapBlur(1.0)(plain.features(x)), atol=1e-5)
    save_checkpoint(tmp_path / "b.safetensors", blurred, {"backbone": "small", "class_names": list("abcd")})
    back, meta = load_checkpoint(tmp_path / "b.safetensors")
    assert meta.map_blur == 1.0 and torch.allclose(back.eval()(x), blurred(x), atol=1e-5)
    with pytest.raises(ValueError, match="MC layer"):
        build_model("small", 4, mc_layer=False, map_blur=1.0)
