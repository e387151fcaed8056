"""Part consistency and stability (Huang et al., 2023) on hand-made maps and annotations where the
answer is known, against the reference code's rules; then the CLI on real CUB photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mcviz.evaluate.consistency import (
    PART_THRESH,
    BoxCropViews,
    ConsistencyReport,
    box_parts,
    half_side,
    load_consistency,
    part_hits,
    save_consistency,
    summarise,
)

from .conftest import REPO

S = 224


def _parts(points: dict[int, tuple[int, int]]) -> np.ndarray:
    p = np.zeros((15, 3), np.int64)
    for k, (x, y) in points.items():
        p[k] = (x, y, 1)
    return p


def _peak_at(x: int, y: int, cells: int = 14) -> np.ndarray:
    """A one-hot map whose bicubic upsampling to S peaks near pixel (x, y)."""
    m = np.zeros((cells, cells), np.float32)
    m[int(y * cells / S), int(x * cells / S)] = 1.0
    return m


def test_the_square_scales_with_the_size():
    assert half_side(224) == 36 and half_side(288) == 46


def test_hits_are_the_visible_parts_inside_the_square_around_the_argmax():
    parts = _parts({0: (100, 100), 1: (130, 100), 2: (180, 180)})
    parts[3] = (104, 104, 0)  # invisible: never hit, though inside
    m = np.zeros((2, S, S), np.float32)
    m[0, 100, 100] = 1.0  # exactly at part 0 (full-size maps: no upsampling needed)
    m[1, 180, 180] = 1.0
    hits = part_hits(m, parts, S, 36)
    assert hits[0].nonzero()[0].tolist() == [0, 1]  # part 1 is 30 px away: inside the 36 px half-side
    assert hits[1].nonzero()[0].tolist() == [2]
    # a map from a coarse grid: upsampled bicubically, the peak lands near its cell's centre
    coarse = part_hits(_peak_at(100, 100)[None], parts, S, 36)
    assert coarse[0, 0]


def test_the_first_maximum_wins_a_tie():
    parts = _parts({0: (10, 10), 1: (200, 200)})
    m = np.zeros((1, S, S), np.float32)
    m[0, 10, 10] = m[0, 200, 200] = 1.0
    assert part_hits(m, parts, S, 36)[0].nonzero()[0].tolist() == [0]


def _summary(clean: list[list[bool]], noisy: list[list[bool]], visible: list[list[bool]]):
    """One class, one channel, parts 0-1: per photo the hit vector."""
    to = lambda rows: [np.array([r + [False] * 13]) for r in rows]
    vis = np.array([v + [False] * 13 for v in visible])
    return summarise({0: to(clean)}, {0: to(noisy)}, {0: vis}, {0: [7]}, [f"p{i}" for i in range(15)])[0]


def test_consistency_counts_only_photos_where_the_part_is_visible():
    # part 0 hit on 4 of the 5 photos where it is visible (80 %: consistent); a sixth photo hides it
    c = _summary(
        [[True, False]] * 4 + [[False, False]] * 2,
        [[True, False]] * 4 + [[False, False]] * 2,
        [[True, True]] * 5 + [[False, True]],
    )
    assert c.channel == 7 and c.part == "p0" and c.share == pytest.approx(0.8) and c.consistent
    assert c.stability == 1.0
    # 3 of 5: not consistent
    c = _summary(
        [[True, False]] * 3 + [[False, False]] * 3,
        [[True, False]] * 3 + [[False, False]] * 3,
        [[True, True]] * 5 + [[False, True]],
    )
    assert c.share == pytest.approx(0.6) and not c.consistent and PART_THRESH == 0.8


def test_stability_is_the_share_of_photos_whose_hits_are_unchanged():
    clean = [[True, False], [True, True], [False, False], [True, False]]
    noisy = [[True, False], [True, False], [False, False], [False, True]]
    c = _summary(clean, noisy, [[True, True]] * 4)
    assert c.stability == pytest.approx(0.5)


def test_box_parts_scale_points_from_the_box_into_the_square():
    class FakeCUB:
        boxes = torch.tensor([[10.0, 20.0, 100.0, 50.0]])
        parts = torch.zeros(1, 15, 3)

    FakeCUB.parts[0, 0] = torch.tensor([60.0, 45.0, 1.0])  # the box's centre
    FakeCUB.parts[0, 1] = torch.tensor([110.0, 70.0, 1.0])  # its far corner
    out = box_parts(FakeCUB(), 224)
    assert out[0, 0].tolist() == [112, 112, 1] and out[0, 1].tolist() == [224, 224, 1]
    assert out[0, 2].tolist() == [0, 0, 0]


def test_box_crop_views_are_the_box_and_the_same_with_seeded_clipped_noise():
    from PIL import Image

    img = Image.new("RGB", (120, 80), (255, 0, 0))
    img.paste((0, 0, 255), (10, 20, 60, 70))
    views = BoxCropViews(torch.tensor([[10.0, 20.0, 50.0, 50.0]] * 2), 32, [0.5] * 3, [0.5] * 3)
    x = views(img, 0)
    assert x.shape == (2, 3, 32, 32)
    assert torch.allclose(x[0, 2], torch.ones(32, 32)) and torch.allclose(x[0, 0], -torch.ones(32, 32))
    noise = x[1] - x[0]
    assert noise.abs().max() <= 0.25 + 1e-6 and 0.1 < noise.std() < 0.2
    assert torch.equal(views(img, 0), x) and not torch.equal(views(img, 1)[1], x[1])


def test_the_report_round_trips_beside_its_checkpoint(tmp_path):
    from mcviz import build_model, save_checkpoint
    from mcviz.evaluate.consistency import ChannelConsistency
    from mcviz.io.files import file_sha256

    ck = tmp_path / "m.safetensors"
    save_checkpoint(ck, build_model("small", 2, xi=1), {"backbone": "small"})
    r = ConsistencyReport(
        file_sha256(ck),
        288,
        10,
        50.0,
        40.0,
        [ChannelConsistency(0, 0, "beak", 0.9, True, 0.4), ChannelConsistency(1, 1, "tail", 0.3, False, 0.4)],
    )
    save_consistency(r, ck)
    assert load_consistency(ck) == r and load_consistency(ck).of(1).part == "tail"


def test_the_cli_measures_real_photos(cub_root, capsys):
    from mcviz.cli import main

    ck = REPO / "checkpoints" / "cub-mc-cc.safetensors"
    assert main(["consistency", str(ck), "--root", str(cub_root), "--limit", "12", "--workers", "0", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["images"] == 12 and rec["channels"] == 3  # the first 12 test photos are all of class 1
    assert 0 <= rec["consistency"] <= 100 and 0 <= rec["stability"] <= 100
    assert main(["consistency", str(REPO / "checkpoints" / "cars-mc-cc.safetensors"), "--root", str(cub_root)]) == 2


def test_smoothing_moves_the_argmax_from_a_spike_to_a_broad_peak():
    m = np.zeros((14, 14), np.float32)
    m[2, 2] = 1.0  # a one-cell spike, top left
    m[9:12, 9:12] = 0.8  # a broad peak, bottom right
    parts = _parts({0: (int(2.5 * S / 14), int(2.5 * S / 14)), 1: (int(10.5 * S / 14), int(10.5 * S / 14))})
    assert part_hits(m[None], parts, S, 20)[0].nonzero()[0].tolist() == [0]
    assert part_hits(m[None], parts, S, 20, smooth=1.0)[0].nonzero()[0].tolist() == [1]
