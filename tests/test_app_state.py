"""The app's state follows the photo and the model (issue 32): no widget shows a choice made for
another photo or model, one model choice is shared by the pages, Compare and Channels say which
photo they use, and the labels say what they are. Each test failed on the app before the fix."""

import io
import os
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from mcviz import build_model, save_checkpoint

from .conftest import REPO, SHARED_DATA, interactive, markdown_tables
from .test_app import APP, NAMES, TOP, _save, real_photo, upload


def _jpeg(seed: int, size=(320, 320)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    # smooth blobs rather than noise, so that different seeds give different predictions
    small = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
    Image.fromarray(small).resize(size, Image.BILINEAR).save(buf, format="JPEG")
    return buf.getvalue()


def _cars_model(path) -> None:
    torch.manual_seed(3)
    m = build_model("small", 196, xi=3).eval()
    save_checkpoint(
        path,
        m,
        {
            "backbone": "small",
            "class_names": [f"Car {i}" for i in range(196)],
            "dataset": "folder",
            "variant": "mc",
            "hparams": {"seed": 0},
            "input": {"crop": 64, "resize": 73, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
            "metrics": {"top1": 1.0, "mean_h": 2.0, "epoch": 1},
            "command": "mcviz train --dataset folder --root ../shared/data/stanford_cars",
        },
        dtype=torch.float16,
    )


@pytest.fixture(scope="module")
def two_data_sets(tmp_path_factory):
    d = tmp_path_factory.mktemp("state-ckpts")
    _save(d / "aa-bird-mc.safetensors", "mc", 0)
    _save(d / "ab-bird-ce.safetensors", "ce", 1)
    _cars_model(d / "ba-car-mc.safetensors")
    return d


@pytest.fixture
def app(two_data_sets, monkeypatch):
    monkeypatch.setenv("MCVIZ_CHECKPOINTS", str(two_data_sets))
    monkeypatch.setenv("MCVIZ_APP_NO_REPO_CHECKPOINTS", "1")
    at = interactive(AppTest.from_file(APP, default_timeout=180))
    at.run()
    assert not at.exception
    return at


def _photo_captions(at: AppTest) -> list[str]:
    return [c for im in at.get("image") for c in im.captions]


def _pick_model(at: AppTest, stem: str) -> AppTest:
    box = at.sidebar.selectbox(key="model")
    folder = box.value.parent
    return box.set_value(folder / f"{stem}.safetensors").run()


def _top(at: AppTest) -> str:
    return markdown_tables(at)[0]["class"].iloc[0]


def _explained(at: AppTest) -> str:
    return next(s.value for s in at.subheader if ": " in s.value and "channels" in s.value).split(":")[0]


def _photos_with_other_tops(at: AppTest):
    """Two photos that the first model predicts differently."""
    at = upload(at, "one.jpg", _jpeg(0))
    first = _top(at)
    for seed in range(1, 30):
        at = upload(at, f"other{seed}.jpg", _jpeg(seed))
        if _top(at) != first:
            return at, first
    pytest.fail("no two photos with different predictions")


def test_the_class_to_explain_is_each_new_photos_top_prediction(app):
    at, first = _photos_with_other_tops(app)
    assert _explained(at) == _top(at) != first
    # a pick holds for this photo...
    at.selectbox(key="explore_class").set_value(17).run()
    assert _explained(at) == "Bird 17"
    at.selectbox(key="explore_method").set_value("contribution").run()
    assert _explained(at) == "Bird 17"
    # ...and not for the next one
    at = upload(at, "third.jpg", _jpeg(99))
    assert _explained(at) == _top(at)
    # the picker says "the top prediction", whichever class that is: a new photo leaves it as it was
    assert at.selectbox(key="explore_class").value == TOP


def test_a_model_switch_relabels_everything(app):
    at = upload(app, *real_photo())
    at.selectbox(key="explore_class").set_value(17).run()
    at.multiselect(key="explore_off").set_value([51]).run()
    at = _pick_model(at, "ba-car-mc")
    assert not at.exception
    assert _top(at).startswith("Car ") and _explained(at) == _top(at)
    assert at.selectbox(key="explore_class").value == TOP
    assert at.multiselect(key="explore_off").value == []
    at.switch_page("pages/channels.py").run()
    assert not at.exception
    assert all(n.startswith("Car ") for n in at.dataframe[0].value["group of"] if n != "no class")


def test_one_model_choice_across_pages(app):
    app = _pick_model(app, "ab-bird-ce")
    chosen = app.sidebar.selectbox(key="model").value
    for page in ("pages/models.py", "pages/channels.py", "pages/compare.py", "pages/explore.py"):
        app.switch_page(page).run()
        assert not app.exception
        assert app.sidebar.selectbox(key="model").value == chosen, page
    app.switch_page("pages/models.py").run()
    marked = [r["model"] for r in app.dataframe[0].value.to_dict("records") if r[""] == "▶"]
    assert marked == [chosen.stem]


def test_compare_shows_its_photo_and_starts_from_the_sidebars_model(app):
    at = upload(app, "car.jpg", _jpeg(5))
    at = _pick_model(at, "ba-car-mc")
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert [p.stem for p in at.multiselect(key="compare_models").value] == ["ba-car-mc"]
    assert "current photo: car.jpg (uploaded)" in _photo_captions(at)
    assert not any("belly" in str(c.proto) for c in at.get("plotly_chart"))
    # back to a bird model: the bird models are the defaults again, the sidebar's first
    at = _pick_model(at, "ab-bird-ce")
    assert [p.stem for p in at.multiselect(key="compare_models").value][0] == "ab-bird-ce"
    assert {p.stem for p in at.multiselect(key="compare_models").value} == {"aa-bird-mc", "ab-bird-ce"}


def test_channels_starts_on_the_current_photos_class(app):
    at = upload(app, *real_photo())
    top = NAMES.index(_top(at))
    at.switch_page("pages/channels.py").run()
    assert at.selectbox(key="channels_class").value == top
    assert "current photo: bird.jpg (uploaded)" in _photo_captions(at)


def test_the_gallery_picker_shows_the_photo_in_use(app, monkeypatch):
    cub = SHARED_DATA / "CUB_200_2011"
    if not cub.exists():
        pytest.skip("needs the CUB gallery")
    monkeypatch.setenv("MCVIZ_DATA", str(SHARED_DATA))
    at = interactive(AppTest.from_file(APP, default_timeout=180))
    at.run()
    pick = at.selectbox(key="gallery_explore").options[2]
    at.selectbox(key="gallery_explore").set_value(pick).run()
    at.switch_page("pages/compare.py").run()
    assert at.selectbox(key="gallery_compare").value == pick
    at = upload(at, "mine.jpg", _jpeg(1))
    assert at.selectbox(key="gallery_compare").value == "—"


def test_one_upload_limit_and_one_list_of_formats(app):
    import settings

    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == settings.MAX_UPLOAD_MB
    assert settings.MAX_UPLOAD_BYTES == settings.MAX_UPLOAD_MB * 2**20
    up = app.get("file_uploader")[0]
    assert up.proto.label == "Upload a photo"  # the formats come from `type`, listed once by Streamlit
    assert sorted(up.proto.type) == sorted(f".{s}" for s in settings.ACCEPTED)


def test_a_tiny_photo_is_warned_about(app):
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 30, 30)).save(buf, format="PNG")
    at = upload(app, "dot.png", buf.getvalue(), "image/png")
    assert not at.exception
    assert any("1 x 1 px, less than half the 64 px" in w.value for w in at.warning)
    at = upload(at, *real_photo())
    assert not any("less than half" in w.value for w in at.warning)


def test_part_labels_never_overlap():
    from PIL import Image as PILImage, ImageDraw

    from mcviz.explain.render import _overlaps, place_labels

    names = [
        "back",
        "beak",
        "belly",
        "breast",
        "crown",
        "forehead",
        "left eye",
        "left leg",
        "left wing",
        "nape",
        "right eye",
        "right leg",
        "right wing",
        "tail",
        "throat",
    ]
    rng = np.random.default_rng(0)
    points = [(140 + rng.integers(0, 25), 140 + rng.integers(0, 25), n) for n in names]  # a crowded head
    draw = ImageDraw.Draw(PILImage.new("RGB", (288, 288)))
    boxes = [b for _, _, b in place_labels(draw, points, [], (288, 288))]
    assert not any(_overlaps(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    assert all(0 <= b[0] and 0 <= b[1] and b[2] <= 288 and b[3] <= 288 for b in boxes)


def test_explore_shows_a_class_connected_prediction_as_its_channels_evidence(tmp_path, monkeypatch):
    """Issue 31: the predicted class and the runner-up as their channels' evidence, which adds up
    to their scores (within 1e-4, said on the page); other heads keep the measured effect."""
    import re

    torch.manual_seed(0)
    m = build_model("small", 200, xi=3, head="class-connected-avg").eval()
    with torch.no_grad():
        m.head[-1].weight.uniform_(-2, 2)
        m.head[-1].bias.uniform_(-1, 1)
    save_checkpoint(
        tmp_path / "cc.safetensors",
        m,
        {
            "backbone": "small",
            "class_names": NAMES,
            "dataset": "cub",
            "variant": "mc",
            "hparams": {"seed": 0},
            "input": {"crop": 64, "resize": 73, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
            "metrics": {"top1": 1.0, "mean_h": 2.0, "epoch": 1},
            "command": "test",
        },
    )
    monkeypatch.setenv("MCVIZ_CHECKPOINTS", str(tmp_path))
    monkeypatch.setenv("MCVIZ_APP_NO_REPO_CHECKPOINTS", "1")
    at = interactive(AppTest.from_file(APP, default_timeout=180))
    at.run()
    at = upload(at, *real_photo())
    assert not at.exception
    assert any("each channel's evidence" in s.value for s in at.subheader)
    sums = [m.value for m in at.markdown if "bias" in m.value and "the model's score" in m.value]
    assert len(sums) == 2  # the predicted class and the runner-up
    for text in sums:
        total, score, gap = re.search(
            r"= \*\*(-?[\d.]+)\*\*; the model's score is (-?[\d.]+) \(they differ by ([\d.e+-]+)\)", text
        ).groups()
        assert abs(float(total) - float(score)) <= 1e-4 and float(gap) <= 1e-4
    tables = [t for t in markdown_tables(at) if "evidence" in t.columns]
    assert len(tables) == 2 and all(len(t) == 3 for t in tables)  # xi = 3 own channels each
    # each channel's part in this photo (the part locator's), beside the part it usually hits
    from mcviz.core.part_locator import CUB_PARTS
    from mcviz.evaluate.parts import NO_PART, OFF_BIRD

    assert all(set(t["in this photo"]) <= {*CUB_PARTS, NO_PART, OFF_BIRD} for t in tables)


def test_the_served_app_watches_no_source_files():
    """Streamlit's source watcher runs per session: with 16 sessions it cost each upload about 0.35
    CPU-s and held every answer back (docs/performance.md). The served app is not edited while it runs."""
    server = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())["server"]
    assert server["fileWatcherType"] == "none" and server["runOnSave"] is False


def test_every_way_of_serving_the_app_keeps_two_malloc_arenas():
    """A thread per session, an arena per thread, a peak per arena: 16 sessions of 48 MP photos held
    1.9-2.0 GB, two arenas 1.6 GB (docs/performance.md). glibc reads it when the process starts."""
    assert 'export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"' in (REPO / "scripts" / "start.sh").read_text()
    assert "ENV MALLOC_ARENA_MAX=2" in (REPO / "Dockerfile").read_text()
    from benchmarks.serving import running_app_process

    with running_app_process(Path(APP), {"MCVIZ_CHECKPOINTS": "", "MCVIZ_APP_NO_REPO_CHECKPOINTS": "1"}) as (_, proc):
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
    assert b"MALLOC_ARENA_MAX=2" in environ or os.environ.get("MALLOC_ARENA_MAX")


def _follow_page():
    import streamlit as st
    import widgets

    ctx = st.session_state.get("ctx", "photo 1")
    st.session_state["will_hold"] = widgets.followed("pick", ctx, 0)
    widgets.follow("pick", ctx, 0)
    st.selectbox("pick", [0, 1, 2], key="pick")


def test_follow_resets_a_pick_for_a_new_context_only_and_followed_says_so_beforehand():
    at = AppTest.from_function(_follow_page).run()
    assert at.selectbox(key="pick").value == 0 and at.session_state["will_hold"] == 0
    at = at.selectbox(key="pick").set_value(2).run()
    assert at.selectbox(key="pick").value == 2 and at.session_state["will_hold"] == 2  # the pick stands
    at.session_state["ctx"] = "photo 2"
    at = at.run()
    assert at.selectbox(key="pick").value == 0 and at.session_state["will_hold"] == 0  # a new photo: reset


def test_an_upload_empties_the_uploader(app):
    """Streamlit's single-file uploader reruns the page twice when a file replaces another (once with
    the old file removed): the app takes each file out of the uploader, so the next upload is one run."""
    at = upload(app, *real_photo())
    up = at.get("file_uploader")[0]
    assert up.value is None  # a fresh uploader: nothing for the next upload to replace
    assert not at.exception and "bird.jpg" in _photo_captions(at)  # the photo is in use
    at = upload(at, "mine.jpg", _jpeg(1))
    assert at.get("file_uploader")[0].value is None
    assert "mine.jpg" in _photo_captions(at)


def test_explore_draws_its_maps_once_a_run(app, monkeypatch):
    """The class section computes from what its pickers will hold before it draws them (the page then
    reaches the tab in one burst); a wrong guess would compute and draw the maps twice in a run."""
    import mcviz.explain.maps_image as maps_image
    import mcviz.explain.render as render

    drawn = []
    for module, name in ((render, "class_maps_figure"), (maps_image, "class_maps_image")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, **k: drawn.append(1) or _real(*a, **k))

    def once(at):
        assert not at.exception and len(drawn) == 1, (at.exception, len(drawn))
        drawn.clear()
        return at

    at = once(upload(app, *real_photo()))
    at = once(at.selectbox(key="explore_class").set_value(3).run())
    at = once(at.selectbox(key="explore_method").set_value("gradcam").run())
    at = once(at.selectbox(key="explore_layer").set_value(at.selectbox(key="explore_layer").options[0]).run())
    at = once(at.slider(key="explore_opacity").set_value(0.8).run())
    at = once(at.radio(key="explore_scale").set_value("map").run())
    at = once(at.toggle(key="explore_interactive").set_value(False).run())
    at = once(at.slider(key="explore_topk").set_value(3).run())
    at = once(upload(at, "mine.jpg", _jpeg(1)))  # a new photo: its top prediction again
    assert at.selectbox(key="explore_class").value == TOP
