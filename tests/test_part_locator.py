"""The CUB part locator: its geometry on hand-made tensors, its file format, the shipped locator on
real CUB photos, and the fast path (the explained model's own trunk output) against the slow one
(the locator's own trunk)."""

from __future__ import annotations

import json

import pytest
import torch

from mcviz.core.part_locator import CUB_PARTS, MIRROR, PartLocator, PartPrediction
from mcviz.io.locator_file import default_locator_path, load_locator, locator_fits, save_locator
from mcviz.data.transforms import EvalTransform
from mcviz.io.checkpoint import CheckpointError

from .conftest import REPO

SHIPPED = default_locator_path()


def test_mirror_swaps_left_and_right_and_nothing_else():
    for i, name in enumerate(CUB_PARTS):
        twin = CUB_PARTS[MIRROR[i]]
        if "left" in name or "right" in name:
            assert twin == name.replace("left", "R").replace("right", "left").replace("R", "right")
        else:
            assert twin == name
    assert [MIRROR[MIRROR[i]] for i in range(len(MIRROR))] == list(range(len(MIRROR)))


def test_gaussian_targets_peak_at_the_point_and_sum_to_one():
    from mcviz.train.part_locator import gaussian_targets

    t = gaussian_targets(torch.tensor([[[3.5 / 6, 1.5 / 4]]]), 4, 6, 0.75)
    assert t.shape == (1, 1, 24) and float(t.sum()) == pytest.approx(1.0)
    assert int(t.argmax()) == 1 * 6 + 3
    assert float(PartLocator.expected_xy(t.log().view(1, 1, 4, 6))[0, 0, 0]) == pytest.approx(3.5 / 6, abs=0.03)


def test_a_windowed_read_out_ignores_a_second_mode():
    heat = torch.full((1, 1, 6, 6), -1e4)
    heat[0, 0, 1, 1] = 0.0
    heat[0, 0, 4, 4] = -0.5  # a weaker second mode (the other leg)
    mean = PartLocator.expected_xy(heat)[0, 0]
    local = PartLocator.expected_xy(heat, 1)[0, 0]
    assert 1.5 / 6 < float(mean[0]) < 4.5 / 6  # the full expectation lands between the two
    assert local.tolist() == pytest.approx([1.5 / 6, 1.5 / 6])


def test_expected_position_of_a_one_hot_map_is_the_cell_centre():
    heat = torch.full((1, 2, 4, 5), -1e4)
    heat[0, 0, 1, 3] = 0.0  # row 1, column 3
    heat[0, 1, 3, 0] = 0.0
    xy = PartLocator.expected_xy(heat)
    assert xy[0, 0].tolist() == pytest.approx([3.5 / 5, 1.5 / 4])
    assert xy[0, 1].tolist() == pytest.approx([0.5 / 5, 3.5 / 4])
    # two equal cells: their midpoint (the soft-argmax reaches between cells)
    heat[0, 0, 1, 1] = 0.0
    assert PartLocator.expected_xy(heat)[0, 0].tolist() == pytest.approx([2.5 / 5, 1.5 / 4])


def test_prediction_maps_back_to_the_photo_through_the_crop():
    tf = EvalTransform(288)
    pts = torch.tensor([[40.0, 30.0], [100.0, 120.0]])
    w, h = 200, 150
    in_crop = tf.map_points(pts, w, h)
    pred = PartPrediction(in_crop, torch.tensor([0.9, 0.2]), torch.tensor([10.0, 20.0, 200.0, 250.0]), 288)
    back, box = pred.to_image(tf, w, h)
    assert torch.allclose(back, pts, atol=1e-3)
    ann = pred.annotation()
    assert ann["parts"][1] == [0.0, 0.0, 0.0] and ann["parts"][0][2] == 1.0  # hidden parts are not named
    assert ann["box"] == pytest.approx([10.0, 20.0, 190.0, 230.0]) and ann["predicted"]


def test_unit_targets_follow_the_crop_and_the_mirror(cub_root):
    from mcviz.data.cub import CUB
    from mcviz.trunk.part_targets import image_size, mirrored, unit_targets

    cub = CUB(cub_root, "test", annotations=True)
    keep = list(range(12))
    cub.samples, cub.parts, cub.boxes = [cub.samples[i] for i in keep], cub.parts[keep], cub.boxes[keep]
    sizes = [image_size(p) for p, _ in cub.samples]
    tf = EvalTransform(288)
    t = unit_targets(cub, tf, sizes)
    for i, (w, h) in enumerate(sizes):
        want = tf.map_points(cub.parts[i, :, :2], w, h) / 288
        vis = t["vis"][i] > 0
        assert torch.allclose(t["xy"][i][vis], want[vis], atol=1e-5)
        assert bool(((want[vis] >= 0) & (want[vis] <= 1)).all())
    m = mirrored(t)
    assert torch.allclose(mirrored(m)["xy"], t["xy"], atol=1e-6) and torch.equal(mirrored(m)["vis"], t["vis"])
    beak = CUB_PARTS.index("beak")
    seen = t["vis"][:, beak] > 0
    assert torch.allclose(m["xy"][seen, beak, 0], 1 - t["xy"][seen, beak, 0])
    assert torch.allclose(m["box"][:, 0], 1 - t["box"][:, 2])


def test_save_and_load_round_trip(tmp_path):
    loc = PartLocator(16, width=8).eval()
    path = tmp_path / "loc.safetensors"
    save_locator(
        path, loc, {"backbone": "lite0", "layer": "block5", "input": EvalTransform(288).config(), "trunk_sha256": "x"}
    )
    again, meta = load_locator(path)
    x = torch.randn(2, 16, 6, 6)
    for a, b in zip(loc.predict(x), again.predict(x)):
        assert torch.allclose(a, b, atol=2e-2)  # stored in float16
    assert meta.layer == "block5" and meta.config["width"] == 8


def test_a_model_checkpoint_or_garbage_is_not_a_locator(tmp_path):
    with pytest.raises(CheckpointError, match="not an mcviz part locator"):
        load_locator(REPO / "checkpoints" / "cub-mc-anchor.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="not a readable part locator"):
        load_locator(bad)


def test_the_shipped_locator_fits_the_shipped_bird_models_trunk():
    from mcviz import load_checkpoint

    _, meta = load_locator(SHIPPED)
    for name in ("cub-mc-anchor", "cub-ce", "cub-mc-cc"):
        model, _ = load_checkpoint(REPO / "checkpoints" / f"{name}.safetensors")
        assert locator_fits(meta, model), name
    cars, _ = load_checkpoint(REPO / "checkpoints" / "cars-ce.safetensors")
    assert locator_fits(meta, cars)  # the same ImageNet trunk; the app still names no car parts


def test_the_shipped_locator_finds_parts_on_real_photos(cub_root):
    """On the first 48 CUB test photos (the locator never saw the test split) most visible parts are
    found within 0.1 x the box's longer side, and the box overlaps the annotated one."""
    from mcviz.evaluate.part_locator import evaluate_locator

    loc, meta = load_locator(SHIPPED)
    r = evaluate_locator(
        loc, meta, str(cub_root), limit=48, progress=False, cache_dir=str(REPO / ".cache" / "test-locator")
    )
    assert r.pck > 0.6 and r.box_iou > 0.6 and r.visibility_accuracy > 0.8


def test_the_explained_models_trunk_feeds_the_locator_like_its_own_trunk(cub_root):
    """The fast path (the model's own block-5 output, no second pass) gives the slow path's parts."""
    from mcviz.data.images import open_image
    from mcviz.explain import Explainer

    loc, meta = load_locator(SHIPPED)
    ex = Explainer.from_checkpoint(REPO / "checkpoints" / "cub-mc-anchor.safetensors")
    img = open_image(sorted((cub_root / "images").glob("*/*.jpg"))[0])
    fast = ex.locate_parts(img, loc, meta)
    ex._fits = False  # force the locator's own trunk
    slow = ex.locate_parts(img, loc, meta)
    assert torch.allclose(fast.xy, slow.xy, atol=0.5) and torch.allclose(fast.visible, slow.visible, atol=1e-2)
    assert torch.allclose(fast.box, slow.box, atol=0.5)


def test_explain_names_the_predicted_part_under_every_peak(cub_root, tmp_path):
    from mcviz.cli import main

    photo = sorted((cub_root / "images").glob("*/*.jpg"))[5]
    out = tmp_path / "out"
    assert (
        main(
            [
                "explain",
                str(REPO / "checkpoints" / "cub-mc-anchor.safetensors"),
                str(photo),
                "--out",
                str(out),
                "--top-k",
                "1",
            ]
        )
        == 0
    )
    rec = json.loads((out / f"{photo.stem}.json").read_text())
    chans = rec["classes"][0]["channels"]
    assert set(rec["parts_in_image"]) == {str(c) for c in chans}
    allowed = set(CUB_PARTS) | {"off the bird", "on the bird, near no part"}
    assert set(rec["parts_in_image"].values()) <= allowed
    assert rec["parts_source"] == "predicted by the CUB part locator" and rec["predicted_parts"]["predicted"]
    # a car model gets no part names
    car = tmp_path / "car"
    assert (
        main(
            [
                "explain",
                str(REPO / "checkpoints" / "cars-ce.safetensors"),
                str(photo),
                "--out",
                str(car),
                "--top-k",
                "1",
            ]
        )
        == 0
    )
    assert "parts_in_image" not in json.loads((car / f"{photo.stem}.json").read_text())


def test_a_tiny_locator_run_trains_resumes_and_evaluates(cub_root, tmp_path, capsys):
    from mcviz.cli import main

    out = tmp_path / "loc"
    args = [
        "locator",
        "train",
        "--root",
        str(cub_root),
        "--out",
        str(out),
        "--limit",
        "32",
        "--batch-size",
        "16",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    assert main([*args, "--epochs", "1"]) == 0
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    loc, meta = load_locator(out / "last.safetensors")
    assert loc.window in (0, 1, 2) and meta.epoch == 2
    assert (
        main(
            [
                "locator",
                "eval",
                str(out / "last.safetensors"),
                "--root",
                str(cub_root),
                "--limit",
                "16",
                "--cache-dir",
                str(tmp_path / "cache"),
                "--models",
                str(REPO / "checkpoints" / "cub-mc-cc.safetensors"),
                "--json",
            ]
        )
        == 0
    )
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["images"] == 16 and set(rec["pck_per_part"]) == set(CUB_PARTS)
    assert 0 <= rec["naming"]["cub-mc-cc"] <= 1  # a model's peaks named from the predicted parts


def test_localize_with_predicted_parts_says_so_and_agrees_roughly(cub_root, capsys):
    """`mcviz localize --predicted-parts`: the predicted parts stand in for the annotations, the output
    says so, and on the same photos the figures are close to the annotated ones."""
    from mcviz.cli import main

    ck = str(REPO / "checkpoints" / "cub-mc-anchor.safetensors")
    common = [ck, "--root", str(cub_root), "--limit", "24", "--no-cache", "--workers", "0", "--json"]
    assert main(["localize", *common]) == 0
    true = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["localize", *common, "--predicted-parts"]) == 0
    out = capsys.readouterr().out
    pred = json.loads(out.strip().splitlines()[-1])
    assert "PARTS AND BOX PREDICTED" in out and pred["source"].endswith("parts predicted by the part locator")
    assert abs(pred["in_box"] - true["in_box"]) < 0.15 and abs(pred["near_part"] - true["near_part"]) < 0.2
