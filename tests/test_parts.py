"""Part profiles: known peaks give known parts and shares; a stale profile is ignored."""

import json

import pytest
import torch

from mcviz import build_model
from mcviz.trunk.split_pass import SplitPass
from mcviz.evaluate.parts import (
    NO_PART,
    OFF_BIRD,
    PartProfiles,
    categorise_peaks,
    compute_part_profiles,
    load_part_profiles,
    part_profile,
    profile_path,
)

from .test_data import make_cub


def test_categorise_peaks_by_hand():
    box = torch.tensor([[0.0, 0.0, 40.0, 30.0]])  # diagonal 50: radius 0.15 -> 7.5 px
    parts = torch.zeros(1, 15, 3)
    parts[0, 4] = torch.tensor([10.0, 10.0, 1.0])  # part 4 ("crown" in CUB) at (10, 10)
    parts[0, 7] = torch.tensor([30.0, 20.0, 1.0])
    parts[0, 9] = torch.tensor([20.0, 5.0, 0.0])  # invisible: never hit
    peaks = torch.tensor(
        [
            [
                [11.0, 12.0],  # near part 4
                [29.0, 26.0],  # near part 7 (6.1 px)
                [20.0, 5.0],  # on the invisible part: in the box, near none
                [60.0, 60.0],  # off the bird
                [41.0, 20.0],
            ]
        ]
    )  # just outside the box but 11 px from part 7: off
    assert categorise_peaks(peaks, box, parts, 0.15).tolist() == [[4, 7, 15, 16, 16]]
    # a part on the box edge: a peak just outside it still counts as that part
    parts[0, 2] = torch.tensor([40.0, 15.0, 1.0])
    assert categorise_peaks(torch.tensor([[[43.0, 15.0]]]), box, parts, 0.15).tolist() == [[2]]


def _checkpoint(path, peaks_at):
    """A 3-class small model whose channel c's map peaks where ``peaks_at[c]`` says, whatever the image:
    the MC layer ignores the input and a fixed bias map picks the peak cell."""
    model = build_model("small", 3, xi=2, head="gap").eval()
    conv = model.mc_layer[0]
    with torch.no_grad():
        conv.weight.zero_()
    bn = model.mc_layer[1]
    with torch.no_grad():
        bn.weight.zero_()
        bn.bias.fill_(1.0)

    class PeakAt(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(x.shape[0], 6, 8, 8)
            for c, (i, j) in enumerate(peaks_at):
                out[:, c, i, j] = 5.0
            return out

    model.mc_layer = torch.nn.Sequential(PeakAt())
    return model


def test_profiles_on_known_peaks(tmp_path):
    root = make_cub(tmp_path / "CUB", n_per_class=4)  # images 200 x 100; box (20, 10, 100, 50)
    # crop 64, resize 64: image x * 64/200, y * 64/100. Parts p at (50 + p, 40) -> (16 + 0.32 p, 25.6)
    # 8x8 map on 64 px: cell (i, j) has centre ((j + .5) * 8, (i + .5) * 8).
    peaks_at = [(3, 2), (3, 2), (0, 0), (7, 7), (3, 2), (2, 5)]
    model = _checkpoint(tmp_path / "m.safetensors", peaks_at)
    meta = {
        "backbone": "small",
        "class_names": ["A", "B", "C"],
        "dataset": "cub",
        "input": {"crop": 64, "resize": 64, "mean": [0.5] * 3, "std": [0.5] * 3},
    }
    ckpt = tmp_path / "m.safetensors"
    ckpt.write_bytes(b"weights")
    run = SplitPass(model, meta, "cub", str(root), workers=0, progress=False, checkpoint=ckpt)
    prof = compute_part_profiles(run, strongest_k=2)
    assert prof.images == 6 and prof.categories[-2:] == [NO_PART, OFF_BIRD]
    # channel 0 (class 0) peaks at (20, 28): parts sit at x 16.3-20.8, y 25.6; nearest visible part
    # within 0.15 x the box diagonal (35.8 * ...) -> a part, every time, over class 0's 2 test images
    c0 = prof.own[0]
    assert c0.images == 2 and c0.top is not None and c0.confidence == 1.0
    assert prof.own[2].top is None and prof.own[2].shares[OFF_BIRD] == 1.0  # (4, 4) px: off the bird
    assert prof.own[3].shares[OFF_BIRD] == 1.0  # (60, 60) px
    # strongest 2 by peak value: ties broken by torch.topk; every image counts 2 channels
    assert sum(c.images for c in prof.strongest) == 2 * prof.images
    # save beside the checkpoint, read back, stale when the weights change
    profile_path(ckpt).write_text(prof.to_json())
    back = load_part_profiles(ckpt)
    assert back is not None and back.own[0].label() == c0.label() and back.matrix().shape == (6, 17)
    assert part_profile(ckpt, 3).shares[OFF_BIRD] == 1.0
    ckpt.write_bytes(b"other weights")
    assert load_part_profiles(ckpt) is None and part_profile(ckpt, 0) is None
    profile_path(ckpt).write_text("{not json")
    assert load_part_profiles(ckpt) is None


def test_label_and_round_trip():
    cats = ["crown", "beak", NO_PART, OFF_BIRD]
    prof = PartProfiles("abc", "test", 10, 0.15, 10, cats, [], [])
    from mcviz.evaluate.parts import _from_counts

    c = _from_counts(474, [46, 30, 12, 12], cats, 2)
    assert c.top == "crown" and c.label() == "crown 46 %" and c.shares[OFF_BIRD] == pytest.approx(0.12)
    prof.own.append(c)
    prof.strongest.append(_from_counts(474, [0, 0, 3, 1], cats, 2))
    again = PartProfiles.from_json(prof.to_json())
    assert again.own[0].label() == "crown 46 %" and again.strongest[0].label() == "no part"
    with pytest.raises(ValueError):
        PartProfiles.from_json(json.dumps({"format": "other"}))


def test_a_channels_usual_part_is_said_as_an_average():
    from mcviz.evaluate.parts import NO_PART, OFF_BIRD, ChannelParts

    def one(top, conf, off):
        return ChannelParts(7, 100, {"throat": conf, OFF_BIRD: off, NO_PART: 1 - conf - off}, top, conf)

    assert one("throat", 0.30, 0.10).usual() == "usually the throat, 30 %"
    assert one("throat", 0.03, 0.61).usual() == "most often off the bird, 61 %; else the throat, 3 %"
    assert one(None, 0.0, 0.2).usual() == "most often off the bird, 20 %; else no one part"
