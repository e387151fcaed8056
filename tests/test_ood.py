"""The out-of-distribution check: its scores and AUROC against slow, obvious versions, the
calibration and its side file, the Explainer's verdict, the CLI, and the shipped models on real
photos and on photos of other things."""

from __future__ import annotations

import importlib
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mcviz import build_model, save_checkpoint
from mcviz.evaluate.ood import auroc, calibrate, halves, rates
from mcviz.explain import Explainer, OODCalibration, load_ood_calibration
from mcviz.explain.ood import SCORES, ood_path, ood_scores, save_ood_calibration
from mcviz.io.files import file_sha256

from .conftest import REPO, SHARED_DATA, make_folder_dataset, need_data

SHIPPED = REPO / "checkpoints"


def test_scores_match_their_definitions_on_hand_made_logits():
    z = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [10.0, -5.0, 0.0]])
    assert ood_scores(z, "max_logit").tolist() == [3.0, 0.0, 10.0]
    energy = [math.log(sum(math.exp(v) for v in row)) for row in z.tolist()]
    assert ood_scores(z, "energy").tolist() == pytest.approx(energy, rel=1e-6)
    assert ood_scores(z, "max_prob")[1].item() == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="unknown OOD score"):
        ood_scores(z, "entropy")
    assert set(SCORES) == {"max_logit", "energy", "max_prob"}


def test_auroc_equals_the_share_of_ordered_pairs():
    rng = np.random.default_rng(0)
    inside, outside = rng.normal(1, 1, 40).round(1), rng.normal(0, 1, 30).round(1)  # rounded: ties happen
    pairs = [(a > b) + 0.5 * (a == b) for a in inside for b in outside]
    assert auroc(inside, outside) == pytest.approx(sum(pairs) / len(pairs))
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auroc(np.array([0.0]), np.array([1.0])) == 0.0
    assert math.isnan(auroc(np.array([]), np.array([1.0])))


def test_calibration_sets_the_quantile_of_one_half_and_measures_the_other():
    torch.manual_seed(0)
    logits = torch.randn(400, 5) * 2
    cal = calibrate(logits, "f" * 64, dataset="cub", split="test", domain="birds", score="max_logit", quantile=0.05)
    s = ood_scores(logits, "max_logit").numpy()
    first, second = halves(400)
    assert len(first) == len(second) == 200 and not set(first) & set(second)
    assert cal.threshold == pytest.approx(np.quantile(s[first], 0.05), abs=1e-4)
    assert cal.false_alarm == pytest.approx((s[second] < cal.threshold).mean(), abs=1e-4)
    assert cal.calibration_images == cal.held_out_images == 200
    with pytest.raises(ValueError, match="quantile"):
        calibrate(logits, "f" * 64, dataset="cub", split="test", domain="", quantile=0.7)
    with pytest.raises(ValueError, match="too few"):
        calibrate(logits[:5], "f" * 64, dataset="cub", split="test", domain="")
    # photos far below every in-distribution score are all flagged; AUROC 1 for the scores that see the
    # shift (the softmax does not: max_prob is blind to it, which is why it is not the default)
    r = rates(logits, logits - 100, cal)
    assert r["detected"] == 1.0 and r["auroc"]["max_logit"] == r["auroc"]["energy"] == 1.0
    assert r["auroc"]["max_prob"] == pytest.approx(0.5)


def _tiny_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    model = build_model("small", 3, xi=2).eval()
    save_checkpoint(
        path,
        model,
        {"backbone": "small", "class_names": ["a", "b", "c"], "dataset": "folder", "input": {"crop": 32, "resize": 36}},
    )
    return path


def test_the_side_file_round_trips_and_ignores_other_weights_and_garbage(tmp_path):
    ck = _tiny_checkpoint(tmp_path / "m.safetensors")
    cal = OODCalibration(file_sha256(ck), "energy", 1.5, 0.03, "folder", "test", 10, 10, 0.1, "three things")
    assert save_ood_calibration(cal, ck) == ood_path(ck) == tmp_path / "m.ood.json"
    assert load_ood_calibration(ck) == cal
    save_ood_calibration(replace(cal, checkpoint_sha256="0" * 64), ck)  # made from other weights
    assert load_ood_calibration(ck) is None
    ood_path(ck).write_text("{not json")
    assert load_ood_calibration(ck) is None
    ood_path(ck).unlink()
    assert load_ood_calibration(ck) is None


def test_the_explainer_returns_the_verdict_with_every_prediction(tmp_path):
    ck = _tiny_checkpoint(tmp_path / "m.safetensors")
    img = torch.rand(3, 40, 40)
    from torchvision.transforms.functional import to_pil_image

    photo = to_pil_image(img)
    plain = Explainer.from_checkpoint(ck)
    preds = plain.predict(photo, 2)
    assert plain.ood is None and preds.ood is None and not preds.flagged and len(preds) == 2
    logits = plain.model.logits_from_features(plain.features(plain.prepare(photo)[0]))[0]
    score = float(torch.logsumexp(logits.detach().float(), 0))
    for threshold, flagged in ((score + 1, True), (score - 1, False)):
        save_ood_calibration(
            OODCalibration(file_sha256(ck), "energy", threshold, 0.03, "folder", "test", 10, 10, 0.0, "three things"),
            ck,
        )
        preds = Explainer.from_checkpoint(ck).predict(photo, 2)
        assert preds.flagged is flagged and preds.ood.score == pytest.approx(score, abs=1e-4)
        assert ("three things" in preds.ood.message()) is flagged
        assert preds.ood.as_dict()["in_distribution"] is not flagged


def test_calibrate_ood_and_eval_report_rates_from_the_cli(tmp_path, capsys):
    from mcviz.cli import main

    root = make_folder_dataset(tmp_path / "data", classes=3, per_class=16)  # 3 x 8 test photos
    ck = _tiny_checkpoint(tmp_path / "m.safetensors")
    other = tmp_path / "other"
    other.mkdir()
    from PIL import Image

    for i in range(4):
        Image.new("RGB", (50, 40), (40 * i, 200, 90)).save(other / f"flat{i}.png")
    (other / "broken.jpg").write_bytes(b"not an image")
    assert (
        main(
            [
                "calibrate-ood",
                str(ck),
                "--dataset",
                "folder",
                "--root",
                str(root),
                "--quantile",
                "0.1",
                "--ood-folder",
                str(other),
                "--workers",
                "0",
                "--json",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    rec = json.loads(out.out.strip().splitlines()[-1])
    assert rec["calibration"]["calibration_images"] + rec["calibration"]["held_out_images"] == 24
    assert rec["other"]["n_out"] == 4 and "skipped" in out.err  # the broken file is reported, not fatal
    assert load_ood_calibration(ck).threshold == rec["calibration"]["threshold"]
    assert (
        main(
            [
                "eval",
                str(ck),
                "--dataset",
                "folder",
                "--root",
                str(root),
                "--workers",
                "0",
                "--ood-folder",
                str(other),
                "--json",
            ]
        )
        == 0
    )
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["ood"]["n_in"] == 24 and ev["ood"]["n_out"] == 4 and 0 <= ev["ood"]["false_alarm"] <= 1
    assert main(["calibrate-ood", str(ck), "--dataset", "folder", "--root", str(root), "--score", "nope"]) == 2


# -- the shipped models on real photos ---------------------------------------------------------------
def other_photos(tmp_path_factory) -> list[Path]:
    return importlib.import_module("other_photos").write(tmp_path_factory.mktemp("other"))


@pytest.fixture(scope="module")
def others(tmp_path_factory) -> list[Path]:
    return other_photos(tmp_path_factory)


def _referees() -> list[str]:
    import settings  # the app's (tests/conftest.py puts app/ on the path)

    return sorted({"cub-mc-cc", "cars-mc-cc"} | {Path(n).stem for n in settings.OOD_REFEREES.values()})


@pytest.mark.parametrize("name", _referees())
def test_every_shipped_default_is_calibrated_and_flags_other_things(name, others):
    """The class-connected defaults and the app's referees (whose check judges every photo of their
    data set's models)."""
    ck = SHIPPED / f"{name}.safetensors"
    cal = load_ood_calibration(ck)
    assert cal is not None, f"{ck.name} ships no current NAME.ood.json (scripts/train_checkpoints.sh {name})"
    assert cal.false_alarm <= 0.05 and cal.score == "energy"
    ex = Explainer.from_checkpoint(ck)
    flagged = [ex.predict(p, 1).flagged for p in others]
    assert np.mean(flagged) >= 0.85, [p.name for p, f in zip(others, flagged) if not f]
    kinds = {p.name.split("-")[0] for p, f in zip(others, flagged) if f}
    assert {"person", "document", "texture", "scene"} <= kinds


def test_every_shipped_model_is_calibrated():
    for ck in sorted(SHIPPED.glob("*.safetensors")):
        assert load_ood_calibration(ck) is not None, f"{ck.name}: no current {ck.stem}.ood.json"


def test_bird_photos_pass_and_cars_are_flagged_under_the_bird_model(cub_root):
    cars = need_data("stanford_cars")
    ex = Explainer.from_checkpoint(SHIPPED / "cub-mc-cc.safetensors")
    birds = sorted((cub_root / "images").glob("*/*.jpg"))[::600][:15]
    autos = sorted((cars / "test").glob("*/*.jpg"))[::160][:15]
    assert sum(ex.predict(p, 1).flagged for p in birds) <= 1
    assert all(ex.predict(p, 1).flagged for p in autos)


def test_explain_on_a_portrait_warns_and_names_no_parts(tmp_path, others):
    from mcviz.cli import main

    portrait = next(p for p in others if p.name == "person-grace_hopper.png")
    out = tmp_path / "out"
    assert (
        main(["explain", str(SHIPPED / "cub-mc-cc.safetensors"), str(portrait), "--out", str(out), "--top-k", "1"]) == 0
    )
    rec = json.loads((out / f"{portrait.stem}.json").read_text())
    assert rec["ood"]["in_distribution"] is False and rec["ood"]["score"] < rec["ood"]["threshold"]
    assert rec["parts_in_image"] is None and "names no parts" in rec["parts_source"]
    assert "predicted_parts" not in rec
    from PIL import Image

    png = Image.open(out / f"{portrait.stem}.png").convert("RGB")
    top = np.asarray(png)[:40]
    red = (top[..., 0] > 150) & (top[..., 1] < 60) & (top[..., 2] < 60)
    assert red.mean() > 0.02  # the red banner across the top


def test_shared_data_is_where_the_tests_look():
    assert SHARED_DATA.name == "data"
