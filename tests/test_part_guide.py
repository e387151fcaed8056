"""Part-guided channels (--part-guide): the parts each class's channels get, the term on hand-made
maps, and a short run on real CUB photos through the frozen trunk that records it."""

from __future__ import annotations

import json

import torch

from mcviz.core.groups import ChannelGroups
from mcviz.data.cub import PART_NAMES
from mcviz.train.part_guide import PartGuide, assign_parts, guide_term


def _vis(rows: list[dict[str, float]]) -> torch.Tensor:
    v = torch.zeros(len(rows), 15)
    for i, r in enumerate(rows):
        for part, on in r.items():
            v[i, PART_NAMES.index(part)] = on
    return v


def test_each_channel_of_a_class_gets_its_own_region_by_visibility():
    # class 0 shows its throat more than its crown, its back more than its breast; class 1 the reverse
    vis = _vis(
        [
            {"throat": 1, "back": 1, "left wing": 1, "tail": 1},
            {"throat": 1, "crown": 1, "back": 1},
            {"crown": 1, "breast": 1, "right wing": 1},
            {"crown": 1, "breast": 1, "throat": 1},
        ]
    )
    parts = assign_parts(vis, [0, 0, 1, 1], ChannelGroups.uniform(2, 3))
    assert parts == [["throat", "back", "wing"], ["crown", "breast", "wing"]]
    five = assign_parts(vis, [0, 0, 1, 1], ChannelGroups.uniform(2, 5))[0]
    assert five[:4] == ["throat", "back", "wing", "tail"] and five[4] in ("crown", "beak") and len(set(five)) == 5
    uneven = assign_parts(vis, [0, 0, 1, 1], ChannelGroups.from_sizes([1, 2]))
    assert [len(p) for p in uneven] == [1, 2]


def _guide(xy: list[tuple[float, float]], visible: list[float]) -> PartGuide:
    t = torch.tensor([xy]), torch.tensor([visible])
    return PartGuide([["crown", "breast"]], [t[0], t[0]], [t[1], t[1]], sigma=1.0)


def test_the_term_is_lowest_when_each_channel_peaks_on_its_own_part():
    groups = ChannelGroups.uniform(1, 2)
    guide = _guide([(0.25, 0.25), (0.75, 0.75)], [1.0, 1.0])
    gy, gx = torch.meshgrid(torch.arange(8.0) + 0.5, torch.arange(8.0) + 0.5, indexing="ij")

    def bump(cx: float, cy: float) -> torch.Tensor:  # log of a Gaussian around cell centre (cx, cy)
        return -((gx - cx) ** 2 + (gy - cy) ** 2) / 2

    on = torch.stack([bump(2, 2), bump(6, 6)])[None]  # each on its part (0.25 and 0.75 of 8 cells)
    off = torch.stack([bump(6, 6), bump(2, 2)])[None]  # swapped
    y, i, v = torch.tensor([0]), torch.tensor([0]), torch.tensor([0])
    good, bad = guide_term(on, y, i, v, guide, groups), guide_term(off, y, i, v, guide, groups)
    assert good < bad
    flat = guide_term(torch.zeros(1, 2, 8, 8), y, i, v, guide, groups)
    assert good < flat < bad
    # a hidden part and a random-crop view (view 2) add nothing
    hidden = _guide([(0.25, 0.25), (0.75, 0.75)], [0.0, 0.0])
    assert guide_term(off, y, i, v, hidden, groups) == 0
    assert guide_term(off, y, i, torch.tensor([2]), guide, groups) == 0
    x = off.clone().requires_grad_(True)
    guide_term(x, y, i, v, guide, groups).backward()
    assert x.grad.abs().sum() > 0
    # with --cache-noise, views 2 and 3 are noisy copies of 0 and 1 and take their targets
    guide.noisy_views = True
    assert guide_term(off, y, i, torch.tensor([2]), guide, groups) == guide_term(off, y, i, v, guide, groups)
    assert [guide.target_view(k) for k in range(6)] == [0, 1, 0, 1, None, None]


def test_noisy_views_are_the_crop_and_its_mirror_plus_the_protocols_clipped_noise():
    from PIL import Image

    from mcviz.data.transforms import EvalTransform
    from mcviz.trunk.cache import ViewTransform

    img = Image.new("RGB", (80, 60), (120, 30, 200))
    plain, noisy = ViewTransform(EvalTransform(32), 5), ViewTransform(EvalTransform(32), 5, noise=0.2)
    a, b = plain(img, 3), noisy(img, 3)
    assert torch.equal(a[:2], b[:2]) and torch.equal(a[4], b[4])  # the crop, its mirror, a random crop
    for k in (2, 3):
        d = b[k] - b[k - 2]
        assert 0.15 < float(d.std()) < 0.25 and float(d.abs().max()) <= 0.25 + 1e-6
    assert torch.equal(noisy(img, 3), b) and not torch.equal(noisy(img, 4)[2], b[2])  # seeded per photo
    # a cache made without noise keeps its key; the noise changes it
    assert "noise" not in plain.config() and noisy.config()["noise"] == 0.2
    assert [noisy.source_view(k) for k in range(5)] == [0, 1, 0, 1, None]


def test_a_part_guided_run_trains_and_says_it_uses_part_annotations(cub_root, tmp_path):
    from mcviz import load_checkpoint
    from mcviz.cli import main
    from mcviz.io.describe import training_name

    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--dataset",
                "cub",
                "--root",
                str(cub_root),
                "--out",
                str(run),
                "--backbone",
                "lite0",
                "--pretrained",
                "--freeze",
                "block5",
                "--image-size",
                "64",
                "--epochs",
                "1",
                "--limit",
                "32",
                "--batch-size",
                "16",
                "--workers",
                "0",
                "--head",
                "class-connected-avg",
                "--part-guide",
                "1",
                "--cache-dir",
                str(tmp_path / "cache"),
            ]
        )
        == 0
    )
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["train_guide"] > 0
    _, meta = load_checkpoint(run / "last.safetensors")
    assert meta.hparam("part_guide") == 1 and "part annotations" in training_name(meta)
    assert (
        main(
            [
                "train",
                "--dataset",
                "cub",
                "--root",
                str(cub_root),
                "--out",
                str(tmp_path / "no"),
                "--part-guide",
                "1",
                "--epochs",
                "1",
                "--limit",
                "8",
            ]
        )
        == 2
    )  # not without --freeze
