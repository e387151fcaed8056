"""The app on the shipped models: honest with any photo (a portrait gets the out-of-distribution
warning and no bird parts), and the page fixes that came with it, each checked in-process."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from benchmarks.serving import free_port

from .conftest import REPO, interactive, markdown_tables, need_data
from .test_app import APP, real_photo, upload

CARS = "cars-mc-cc"


@pytest.fixture(scope="module")
def portrait(tmp_path_factory) -> tuple[str, bytes]:
    paths = importlib.import_module("other_photos").write(tmp_path_factory.mktemp("other"))
    p = next(p for p in paths if p.name == "person-grace_hopper.png")
    return p.name, p.read_bytes()


@pytest.fixture
def app(monkeypatch):
    need_data("CUB_200_2011")
    # the shipped checkpoints only, the default first
    monkeypatch.setenv("MCVIZ_CHECKPOINTS", "")
    monkeypatch.delenv("MCVIZ_APP_NO_REPO_CHECKPOINTS", raising=False)
    at = interactive(AppTest.from_file(APP, default_timeout=300))
    at.run()
    assert not at.exception
    return at


def _markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def _captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def _pick_model(at: AppTest, stem: str) -> AppTest:
    box = at.sidebar.selectbox(key="model")
    return box.set_value(box.value.parent / f"{stem}.safetensors").run()


def test_a_portrait_is_flagged_and_gets_no_bird_parts(app, portrait):
    at = upload(app, *portrait)
    assert not at.exception
    warnings = [e.value for e in at.error]
    assert any("200 bird species of CUB-200-2011" in w and "not reliable" in w for w in warnings), warnings
    text = _markdown(at)
    assert "parts predicted by the part locator" not in text and "no parts named" in text
    assert len(at.get("plotly_chart")) == 1  # the maps still show
    assert "explore_show_parts" not in [t.key for t in at.toggle]  # no parts to draw on her
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert any("not reliable" in e.value for e in at.error)
    assert "In this image (predicted parts)" not in _captions(at) and "No predicted parts" in _captions(at)


def test_a_bird_photo_is_explained_as_before(app):
    at = upload(app, *real_photo())
    assert not at.exception and not at.error
    assert "parts predicted by the part locator" in _markdown(at)


def test_evidence_explains_the_picked_class_beside_the_top_prediction(app):
    at = upload(app, *real_photo())
    top = markdown_tables(at)[0]["class"].iloc[0]
    names = at.selectbox(key="explore_class").options[1:]  # after "the top prediction"
    other = next(n for n in names if n != top)
    at.selectbox(key="explore_class").set_value(names.index(other)).run()
    text = _markdown(at)
    assert f"**picked: {other}**" in text and f"**top prediction: {top}**" in text
    # the effect ranking of a class-connected class holds its own channels only, and the toggle says how many
    assert at.toggle(key="explore_off_top").label == "and its top 3 channels by effect"
    at.toggle(key="explore_off_top").set_value(True).run()
    assert "3 channel(s) off" in _captions(at)


def test_h_is_explained_as_overlap_and_gradcam_says_when_it_equals_the_activation(app):
    at = upload(app, *real_photo())
    caption = _captions(at)
    assert "overlap" in caption and "peak in the same place" not in caption
    at.selectbox(key="explore_method").set_value("gradcam").run()
    assert any("gives the activation maps themselves" in i.value for i in at.info)
    layers = at.selectbox(key="explore_layer").options
    at.selectbox(key="explore_layer").set_value(layers[len(layers) // 2]).run()
    assert not any("gives the activation maps themselves" in i.value for i in at.info)


def test_compare_opens_on_the_class_picked_on_explore(app):
    at = upload(app, *real_photo())
    at.selectbox(key="explore_class").set_value(7).run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert at.selectbox(key="compare_class").value == 7


def test_a_car_model_gets_a_cars_gallery_no_blown_up_warning_and_no_empty_columns(app):
    need_data("stanford_cars")
    at = _pick_model(app, CARS)
    gallery = at.selectbox(key="gallery_explore")
    assert gallery.label == "...or pick a Stanford Cars test image"
    at = gallery.set_value(gallery.options[3]).run()
    assert not at.exception
    assert not any("blown up" in w.value for w in at.warning)
    assert not at.error  # a car of its own data set is not flagged
    tables = markdown_tables(at)
    evidence = [t for t in tables if "evidence" in t.columns]
    assert evidence and all(not any(c.startswith("usually") for c in t.columns) for t in evidence)
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert _captions(at).count("No part names for a car model") == 1


def test_models_table_leads_with_what_matters_and_says_how_each_was_trained(app):
    at = app.switch_page("pages/models.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table.columns[:5]) == ["", "model", "data set", "top-1 %", "head"]
    row = table[table["model"] == "cub-mc-cc"].iloc[0]
    assert "distilled from cub-ce" in row["training"] and "block5" in row["training"]
    other = table[table["model"] == "cub-mc-anchor"].iloc[0]
    assert "distilled" not in other["training"]
    commands = [c.value for c in at.code]
    assert commands and all(c.count("--image-size") <= 1 for c in commands)
    assert at.sidebar.selectbox(key="model").format_func(at.sidebar.selectbox(key="model").value).endswith(" %")


def test_channels_page_shows_no_bare_diagonal_and_a_whole_title(app):
    at = app.switch_page("pages/channels.py").run()
    assert not at.exception
    assert "No class x channel matrix" in _captions(at)
    at = _pick_model(at, "cub-mc-anchor")
    import json

    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    matrix = next(s for s in specs if s["data"][0]["type"] == "heatmap" and "class x channel" in str(s["layout"]))
    assert "<br>" in matrix["layout"]["title"]["text"]
    bars = next(s for s in specs if s["layout"].get("barmode") == "stack")  # the part bars
    assert bars["layout"]["xaxis"]["side"] == "top"


def test_part_colours_are_far_apart():
    from skimage.color import deltaE_ciede2000, rgb2lab

    from mcviz.explain.render import _PART_COLOURS

    lab = [rgb2lab(np.array([[[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)]]]))[0, 0] for c in _PART_COLOURS]
    closest = min(deltaE_ciede2000(a, b) for i, a in enumerate(lab) for b in lab[i + 1 :])
    assert len(_PART_COLOURS) == 17 and closest >= 20


def test_the_parts_overlay_stays_small_and_names_peaks_by_channel():
    from mcviz.explain.render import photo_with_parts

    crop = np.full((288, 288, 3), 90, np.uint8)
    ann = {"box": [20, 20, 200, 200], "parts": [[100, 100, 1], [104, 102, 1]], "part_names": ["beak", "throat"]}
    img = photo_with_parts(crop, ann, [(100, 100), (150, 60)], ["ch 417", "ch 418"])
    assert img.width == 576  # 2x, not blown up to a column's width
    red = np.asarray(img)[..., 0] > 200
    assert red.any()


def test_start_script_takes_the_port_from_the_environment():
    port = free_port()
    env = {**os.environ, "STREAMLIT_SERVER_PORT": str(port), "STREAMLIT_SERVER_HEADLESS": "true"}
    proc = subprocess.Popen(
        ["bash", str(REPO / "scripts" / "start.sh"), "--server.address", "127.0.0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read().strip() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the app did not answer on STREAMLIT_SERVER_PORT")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert Path(REPO / ".venv").exists()


def test_each_channel_carries_its_consistency_and_stability(app):
    import json

    at = upload(app, *real_photo())
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    titles = [a["text"] for a in spec["layout"]["annotations"]][:3]
    assert all("consistent" in t and "stable" in t for t in titles), titles
    assert "**Consistent channels**" in _markdown(at) and "Huang et al. 2023" in _markdown(at)
    at.switch_page("pages/channels.py").run()
    table = at.dataframe[0].value
    assert "stability" in table.columns and table["stability"].str.endswith("%").all()
