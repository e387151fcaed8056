import json

import pytest
import torch

from mcviz import build_model, save_checkpoint
from mcviz.cli import main

from .badfiles import bad_files
from .test_data import make_cub


def _ckpt(path, classes, crop=64):
    torch.manual_seed(0)
    m = build_model("small", len(classes), xi=3).eval()
    save_checkpoint(
        path,
        m,
        {
            "backbone": "small",
            "class_names": classes,
            "dataset": "cub",
            "variant": "mc",
            "input": {
                "crop": crop,
                "resize": int(crop * 8 / 7),
                "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225],
            },
        },
    )
    return path


def test_explain_writes_panels_and_skips_bad_files(tmp_path, capsys):
    ck = _ckpt(tmp_path / "m.safetensors", ["A", "B", "C", "D"])
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for case in ("cmyk", "animated gif", "not an image", "truncated"):
        name, data, _ = bad_files()[case]
        (imgs / name).write_bytes(data)
    rc = main(["explain", str(ck), str(imgs), "--out", str(tmp_path / "out"), "--top-k", "2"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "2 image(s) explained" in out and "2 missing or unreadable skipped" in out
    assert "notes.png" in err and "cut.jpg" in err
    js = json.loads((tmp_path / "out" / "cmyk.json").read_text())
    assert len(js["predictions"]) == 2 and len(js["classes"]) == 2 and len(js["classes"][0]["channels"]) == 3
    png = (tmp_path / "out" / "cmyk.png").read_bytes()
    assert png[:4] == b"\x89PNG"
    rc = main(
        [
            "explain",
            str(ck),
            str(imgs / "cmyk.jpg"),
            "--out",
            str(tmp_path / "o2"),
            "--method",
            "gradcam",
            "--layer",
            "stage3",
        ]
    )
    assert rc == 0 and (tmp_path / "o2" / "cmyk.png").exists()
    assert main(["explain", str(ck), str(imgs), "--out", str(tmp_path / "o3"), "--layer", "nope"]) == 2


def test_explain_chosen_classes_by_name_or_index(tmp_path, capsys):
    ck = _ckpt(tmp_path / "m.safetensors", ["Black footed Albatross", "Laysan Albatross", "Sooty Albatross", "Crow"])
    name, data, _ = bad_files()["cmyk"]
    (tmp_path / name).write_bytes(data)
    rc = main(
        ["explain", str(ck), str(tmp_path / name), "--out", str(tmp_path / "o"), "--class", "laysan", "--class", "3"]
    )
    assert rc == 0
    js = json.loads((tmp_path / "o" / "cmyk.json").read_text())
    assert [c["class"] for c in js["classes"]] == ["Laysan Albatross", "Crow"]
    assert [c["channels"] for c in js["classes"]] == [[3, 4, 5], [9, 10, 11]]
    capsys.readouterr()
    assert main(["explain", str(ck), str(tmp_path / name), "--out", str(tmp_path / "o"), "--class", "albatross"]) == 2
    assert "matches 3 classes" in capsys.readouterr().err
    assert main(["explain", str(ck), str(tmp_path / name), "--out", str(tmp_path / "o"), "--class", "7"]) == 2
    capsys.readouterr()
    assert main(["explain", str(ck), str(tmp_path / name), "--out", str(tmp_path / "o"), "--class", "Cro"]) == 0
    assert (
        main(["explain", str(ck), str(tmp_path / name), "--out", str(tmp_path / "o"), "--class", "Laysen Albatros"])
        == 2
    )
    assert "did you mean 'Laysan Albatross' or" in capsys.readouterr().err


def test_explain_reports_a_missing_path_and_goes_on(tmp_path, capsys):
    ck = _ckpt(tmp_path / "m.safetensors", ["A", "B", "C", "D"])
    name, data, _ = bad_files()["cmyk"]
    (tmp_path / name).write_bytes(data)
    rc = main(["explain", str(ck), str(tmp_path / "gone.jpg"), str(tmp_path / name), "--out", str(tmp_path / "o")])
    out, err = capsys.readouterr()
    assert rc == 0 and (tmp_path / "o" / "cmyk.png").exists()
    assert "gone.jpg: no such file or folder" in err and "1 missing or unreadable skipped" in out
    assert main(["explain", str(ck), str(tmp_path / "gone.jpg"), "--out", str(tmp_path / "o")]) == 2


def test_explain_names_the_usual_part_of_each_channel(tmp_path, capsys):
    from .test_app import _profile_for, _save

    ck = tmp_path / "parts.safetensors"
    _save(ck, "mc", 0)
    name, data, _ = bad_files()["cmyk"]
    (tmp_path / name).write_bytes(data)
    assert main(["explain", str(ck), str(tmp_path / name), "--out", str(tmp_path / "plain"), "--class", "0"]) == 0
    _profile_for(ck)
    assert main(["explain", str(ck), str(tmp_path / name), "--out", str(tmp_path / "o"), "--class", "0"]) == 0
    js = json.loads((tmp_path / "o" / "cmyk.json").read_text())
    assert js["classes"][0]["usual_parts"] == [
        "usually the part0, 50 %",
        "usually the part1, 50 %",
        "usually the part2, 50 %",
    ]
    assert "usual_parts" not in json.loads((tmp_path / "plain" / "cmyk.json").read_text())["classes"][0]
    # the panel grew the lines that name the parts
    from PIL import Image

    assert Image.open(tmp_path / "o" / "cmyk.png").height > Image.open(tmp_path / "plain" / "cmyk.png").height


def test_localize_on_fixture_and_its_arithmetic(tmp_path, capsys):
    from mcviz.evaluate.localization import _score

    # two peaks in the box near parts 0 and 1, one outside the box
    peaks = torch.tensor([[[10.0, 10.0], [30.0, 30.0], [90.0, 90.0]]])
    box = torch.tensor([[0.0, 0.0, 40.0, 40.0]])
    parts = torch.zeros(1, 15, 3)
    parts[0, 0] = torch.tensor([11.0, 10.0, 1.0])
    parts[0, 1] = torch.tensor([29.0, 31.0, 1.0])
    parts[0, 2] = torch.tensor([90.0, 90.0, 0.0])  # invisible: never hit
    assert _score(peaks, box, parts, radius=0.15) == (2, 2, 2, 0)
    same = torch.tensor([[[10.0, 10.0], [12.0, 10.0], [90.0, 90.0]]])
    assert _score(same, box, parts, radius=0.15) == (2, 2, 1, 1)

    root = make_cub(tmp_path / "CUB")
    ck = _ckpt(tmp_path / "m.safetensors", [f"Bird {i}" for i in range(3)])
    rc = main(["localize", str(ck), "--root", str(root), "--workers", "0", "--json"])
    out = capsys.readouterr().out
    assert rc == 0 and "peaks in the box" in out
    r = json.loads(out.strip().splitlines()[-1])
    assert r["images"] == 3 and r["peaks"] == 9 and 0 <= r["in_box"] <= 1 and r["xi"] == 3


def test_localize_class_mismatch_is_clear(tmp_path, capsys):
    root = make_cub(tmp_path / "CUB")
    ck = _ckpt(tmp_path / "m.safetensors", ["A", "B"])
    assert main(["localize", str(ck), "--root", str(root), "--workers", "0"]) == 2
    assert "2 classes" in capsys.readouterr().err


def test_sanity_randomisation_changes_maps(tmp_path, capsys):
    from .badfiles import photo

    ck = _ckpt(tmp_path / "m.safetensors", ["A", "B", "C"])
    img = tmp_path / "p.png"
    photo(80, 60, seed=3).save(img)
    rc = main(["sanity", str(ck), str(img), "--methods", "activation", "eigencam", "--json"])
    out = capsys.readouterr().out
    assert rc == 0 and "verdict" in out
    res = json.loads(out.strip().splitlines()[-1])
    stages = [r["randomised"] for r in res["rows"] if r["method"] == "activation"]
    assert stages[:2] == ["head", "mc_layer"] and stages[-1] == "stem"
    # the head is not on the activation path: randomising it leaves the maps unchanged
    first = [r for r in res["rows"] if r["method"] == "activation"][0]
    assert first["spearman"] == pytest.approx(1.0)
    assert res["verdict"]["activation"] == "pass"


def test_atlas_and_the_channels_page_shows_it(tmp_path, capsys, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from .conftest import REPO

    root = make_cub(tmp_path / "CUB")
    ckdir = tmp_path / "ck"
    ckdir.mkdir()
    ck = _ckpt(ckdir / "m.safetensors", [f"Bird {i}" for i in range(3)])
    rc = main(["atlas", str(ck), "--dataset", "cub", "--root", str(root), "--top", "2", "--workers", "0"])
    assert rc == 0
    atlas = json.loads(ck.with_suffix(".atlas.json").read_text())
    assert atlas["images"] == 3 and len(atlas["channels"]) == 9
    e = atlas["channels"]["0"][0]
    x0, y0, x1, y1 = e["box"]
    assert 0 <= x0 < x1 <= 200 and 0 <= y0 < y1 <= 100  # fixture images are 200 x 100
    monkeypatch.setenv("MCVIZ_CHECKPOINTS", str(ckdir))
    monkeypatch.setenv("MCVIZ_APP_NO_REPO_CHECKPOINTS", "1")
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/channels.py").run()
    assert not at.exception
    assert any("activate each channel" in s.value for s in at.subheader)
    assert len(at.get("image")) >= 1
