"""The app in-process with streamlit's AppTest: every page, a real CUB photo, every bad file."""

import json
import os
import re
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from mcviz import build_model, save_checkpoint

from .badfiles import bad_files, photo
from .conftest import REPO, SHARED_DATA, interactive, markdown_tables, paragraphs

APP = str(REPO / "app" / "main.py")
NAMES = [f"Bird {i}" for i in range(200)]
TOP = -1  # Explore's class picker: "the top prediction", whichever class that is


def _save(path: Path, variant: str, seed: int, hparams: dict | None = None) -> None:
    torch.manual_seed(seed)
    m = build_model("small", 200, xi=3).eval()
    save_checkpoint(
        path,
        m,
        {
            "backbone": "small",
            "class_names": NAMES,
            "dataset": "cub",
            "variant": variant,
            "hparams": {"seed": seed, **(hparams or {})},
            "input": {"crop": 64, "resize": 73, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
            "metrics": {"top1": 1.0, "mean_h": 2.0, "epoch": 1},
            "command": "test",
        },
        dtype=torch.float16,
    )


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpts")
    _save(d / "aa-test-mc.safetensors", "mc", 0)
    _save(d / "ab-test-ce.safetensors", "ce", 1)
    (d / "zz-broken.safetensors").write_bytes(b"not a checkpoint")
    return d


@pytest.fixture
def app(ckpt_dir, monkeypatch):
    # only the test checkpoints: the shipped ones may or may not exist
    monkeypatch.setenv("MCVIZ_CHECKPOINTS", str(ckpt_dir))
    monkeypatch.setenv("MCVIZ_APP_NO_REPO_CHECKPOINTS", "1")
    at = interactive(AppTest.from_file(APP, default_timeout=180))
    at.run()
    assert not at.exception
    return at


def real_photo() -> tuple[str, bytes]:
    cub = SHARED_DATA / "CUB_200_2011"
    if cub.exists():
        rel = (cub / "images.txt").read_text().splitlines()[0].split()[1]
        return "bird.jpg", (cub / "images" / rel).read_bytes()
    if os.environ.get("MCVIZ_REQUIRE_DATA") == "1":
        pytest.fail(f"{cub} is required in CI")
    import io

    buf = io.BytesIO()
    photo(200, 150).save(buf, format="JPEG")
    return "generated.jpg", buf.getvalue()


def upload(at: AppTest, name: str, data: bytes, mime: str = "image/jpeg") -> AppTest:
    at.get("file_uploader")[0].upload(name, data, mime)
    return at.run()


def zmax(trace: dict) -> float:
    """The largest value of a heatmap trace's z (plotly sends numpy arrays as base64 typed arrays)."""
    import base64

    import numpy as np

    z = trace["z"]
    if isinstance(z, dict):
        return float(np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).max())
    return float(np.max(z))


def heatmaps(at: AppTest, i: int = 0) -> list[dict]:
    spec = json.loads(at.get("plotly_chart")[i].proto.spec)
    return [t for t in spec["data"] if t["type"] == "heatmap"]


def test_explore_shows_xi_maps_and_merged(app):
    assert "Upload a photo" in app.info[0].value
    at = upload(app, *real_photo())
    assert not at.exception and not at.error
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert titles == ["channel 0", "channel 1", "channel 2", "merged (max)"] or len(heatmaps(at)) == 4
    assert len(heatmaps(at)) == 3 + 1  # xi = 3 channel maps + the merged map
    # by default one colour scale of raw values for the class's maps, its top the strongest value
    maps = heatmaps(at)
    assert len({(h["zmin"], h["zmax"]) for h in maps}) == 1
    top = max(zmax(h) for h in maps)
    assert maps[0]["zmax"] == pytest.approx(top, rel=0.02) and maps[0]["zmin"] <= 0
    weakest = min(zmax(h) for h in maps[:3])
    assert [h["showscale"] for h in maps] == [False, False, False, True]
    assert spec["data"][-1]["colorbar"]["title"]["text"] == "activation"
    # each map on its own 0-1, labelled, one click away
    at.radio(key="explore_scale").set_value("map").run()
    own = heatmaps(at)
    assert all(h["zmin"] == 0 and h["zmax"] == 1 for h in own)
    assert all(zmax(h) > 0.8 for h in own[:3])  # each map reaches (about: the browser gets a coarser grid) its own top
    assert weakest <= top
    at.radio(key="explore_scale").set_value("class").run()
    line = next(m.value for m in at.markdown if m.value.startswith("**h** (channel diversity)"))
    h = float(re.search(r"\*\*([\d.]+)\*\*", line)[1])
    assert 1.0 <= h <= 3.0
    assert at.selectbox(key="explore_class").value is not None
    labels = [d.label for d in at.get("download_button")]
    assert labels == ["Download panel (PNG)", "Download numbers (JSON)"]
    # any class can be chosen by name; a CAM method at a chosen layer works
    at.selectbox(key="explore_class").set_value(17).run()
    assert any(s.value.startswith("Bird 17:") for s in at.subheader)
    at.selectbox(key="explore_method").set_value("gradcam").run()
    assert not at.exception and len(heatmaps(at)) == 4
    assert at.selectbox(key="explore_layer").value == "stage4"


@pytest.mark.parametrize("case", list(bad_files()))
def test_bad_uploads_then_a_good_one(app, case):
    name, data, refused = bad_files()[case]
    at = upload(app, name, data, "image/png")
    assert not at.exception
    if refused:
        assert at.error and "Cannot use this file" in at.error[0].value and name in at.error[0].value
        assert not at.get("plotly_chart")
    else:
        assert not at.error and len(heatmaps(at)) == 4
    at = upload(at, *real_photo())  # the app keeps working
    assert not at.exception and not at.error and len(heatmaps(at)) == 4


def test_compare_defaults_follow_the_papers_figure(tmp_path, monkeypatch):
    import settings
    import widgets

    made = {
        "a-ce": ("ce", 0, None),
        "b-v2": ("mc-v2", 0, None),
        "c-mc-seed1": ("mc", 1, None),
        "d-object": ("mc", 0, {"div_region": "object"}),
        "e-mc": ("mc", 0, None),
        "f-no-div": ("mc-no-div", 0, None),
    }
    for name, (variant, seed, hp) in made.items():
        _save(tmp_path / f"{name}.safetensors", variant, seed, hp)
    paths = sorted(tmp_path.glob("*.safetensors"))
    got = [p.stem for p in widgets.compare_defaults(paths, "cub", k=5)]
    assert got == ["e-mc", "a-ce", "f-no-div", "b-v2", "d-object"]
    assert widgets.compare_defaults(paths, "cars") == []
    # the app's default model leads when it is not one of the figure's (a diversity variant)
    monkeypatch.setattr(settings, "DEFAULT_CHECKPOINT", "d-object.safetensors")
    got = [p.stem for p in widgets.compare_defaults(paths, "cub")]
    assert got == ["d-object", "e-mc", "a-ce", "f-no-div", "b-v2", "c-mc-seed1"]


def test_compare_page(app):
    at = upload(app, *real_photo())
    at.switch_page("pages/compare.py").run()
    assert not at.exception and not at.error
    assert len(at.multiselect(key="compare_models").value) == 2
    assert len(at.get("plotly_chart")) == 2
    assert len(at.metric) == 2


def test_channels_page(app):
    at = app.switch_page("pages/channels.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == 10 and list(table.columns) == ["rank", "channel", "own", "score", "group of"]
    # no ranking file here: the linearised head, said so, and how to get the effect ranking
    assert at.radio(key="channels_source").value == "linearised-head"
    assert any("mcviz rank" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) == 2  # bar chart + class x channel heat map
    at.selectbox(key="channels_class").set_value(5).run()
    assert not at.exception and len(at.dataframe[0].value) == 10


def test_channels_page_ranks_by_effect_when_the_file_is_there(tmp_path, monkeypatch):
    from mcviz.io.checkpoint import load_checkpoint
    from mcviz.explain.rankings import EffectRanking, save_effect_ranking
    from mcviz.io.files import file_sha256

    ck = tmp_path / "ranked.safetensors"
    _save(ck, "mc", 0)
    model, _ = load_checkpoint(ck)
    effects = torch.zeros(200, 600)
    effects[5, [15, 16, 17, 40, 41, 42, 43, 44, 45, 46]] = torch.arange(10.0, 0.0, -1.0)  # class 5 owns 15-17
    save_effect_ranking(EffectRanking(file_sha256(ck), "cub", "test", 400, effects, torch.zeros(600)), ck)
    monkeypatch.setenv("MCVIZ_CHECKPOINTS", str(tmp_path))
    monkeypatch.setenv("MCVIZ_APP_NO_REPO_CHECKPOINTS", "1")
    at = interactive(AppTest.from_file(APP, default_timeout=180))
    at.run()
    at.switch_page("pages/channels.py").run()
    assert at.radio(key="channels_source").value == "effect"
    at.selectbox(key="channels_class").set_value(5).run()
    table = at.dataframe[0].value
    assert table["channel"].tolist()[:4] == [15, 16, 17, 40]
    assert table["own"].tolist()[:4] == ["★", "★", "★", ""]
    assert any("drops the class's logit" in c.value for c in at.caption)
    assert any("3 of the top 10 are the class's own channels" in c.value for c in at.caption)
    # the Explore page's switch-off control can now take the class's top 10 by effect
    at.switch_page("pages/explore.py").run()
    at = upload(at, *real_photo())
    at.selectbox(key="explore_class").set_value(5).run()
    assert not at.toggle(key="explore_off_top").proto.disabled
    at.toggle(key="explore_off_top").set_value(True).run()
    assert not at.exception
    assert "10 channel(s) off: ch 15, ch 16, ch 17, ch 40, ch 41" in " ".join(c.value for c in at.caption)


def test_channels_ranked_by_activation_on_real_cub(ckpt_dir, monkeypatch, cub_root):
    monkeypatch.setenv("MCVIZ_CHECKPOINTS", str(ckpt_dir))
    monkeypatch.setenv("MCVIZ_APP_NO_REPO_CHECKPOINTS", "1")
    monkeypatch.setenv("MCVIZ_DATA", str(cub_root.parent))
    at = interactive(AppTest.from_file(APP, default_timeout=180))
    at.run()
    at.switch_page("pages/channels.py").run()
    radio = at.radio(key="channels_source")
    assert radio.options == ["linearised head weights", "mean activation over the class's CUB test images"]
    radio.set_value("activation").run()
    assert not at.exception
    assert "mean activation" in at.caption[0].value and len(at.dataframe[0].value) == 10


def test_models_page_lists_and_reports_broken(app):
    at = app.switch_page("pages/models.py").run()
    assert not at.exception
    rows = at.dataframe[0].value
    assert set(rows["model"]) == {"aa-test-mc", "ab-test-ce"}
    assert any("zz-broken.safetensors" in e.value for e in at.error)


def test_a_huge_upload_is_decoded_small_and_explained(app):
    """A 24-megapixel JPEG costs what a small one does: decoded at a fraction of its size."""
    import io

    import numpy as np
    from PIL import Image

    import loaders
    import settings

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).resize((6000, 4000))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    from photo import Photo

    decoded, err = loaders.decode(Photo.uploaded(buf.getvalue(), "huge.jpg"))
    assert err is None and settings.DECODE_SIDE <= min(decoded.size) < 2 * settings.DECODE_SIDE
    app.get("file_uploader")[0].upload("huge.jpg", buf.getvalue(), "image/jpeg")
    app.run()
    assert not app.exception and not app.error
    assert app.get("plotly_chart")


def _profile_for(ckpt: Path) -> None:
    """A part profile beside ``ckpt``: channel c looks at part c % 15 in 50 % of its peaks."""
    from mcviz.evaluate.parts import NO_PART, OFF_BIRD, PartProfiles, _from_counts, profile_path
    from mcviz.io.files import file_sha256

    parts = [f"part{p}" for p in range(15)]
    cats = [*parts, NO_PART, OFF_BIRD]
    rows = []
    for c in range(600):
        counts = [0] * 17
        counts[c % 15], counts[16] = 5, 5
        rows.append(_from_counts(c, counts, cats, 15))
    profile_path(ckpt).write_text(PartProfiles(file_sha256(ckpt), "test", 10, 0.15, 10, cats, rows, rows).to_json())


def test_part_names_on_every_page_for_a_cub_gallery_image(tmp_path, monkeypatch, cub_root):
    _save(tmp_path / "parts-mc.safetensors", "mc", 0)
    _profile_for(tmp_path / "parts-mc.safetensors")
    monkeypatch.setenv("MCVIZ_CHECKPOINTS", str(tmp_path))
    monkeypatch.setenv("MCVIZ_APP_NO_REPO_CHECKPOINTS", "1")
    monkeypatch.setenv("MCVIZ_DATA", str(cub_root.parent))
    at = interactive(AppTest.from_file(APP, default_timeout=180))
    at.run()
    at.selectbox(key="gallery_explore").set_value(at.selectbox(key="gallery_explore").options[1]).run()
    assert not at.exception and not at.error
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    cls = NAMES.index(markdown_tables(at)[0]["class"].iloc[0])  # the class explained: the top prediction
    # an average over the class's test images, and said to be one
    assert titles[0] == f"channel {3 * cls}<br>usually the part{(3 * cls) % 15}, 50 %"
    assert any("average, not this photo" in c.value for c in at.caption)
    # this image's annotated parts: each channel's peak is named
    said = [p for p in paragraphs(at) if "In this image" in p]
    assert [("predicted" in m, m.count("peaks ")) for m in said] == [(True, 3), (False, 3)]
    at.toggle(key="explore_show_parts").set_value(True).run()
    # the photo, and the photo with its annotated parts beside the one with its predicted parts
    assert not at.exception and len(at.get("image")) >= 3
    # Compare: one row per model, part names in the titles and under the maps
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "<br>usually the part" in spec["layout"]["annotations"][0]["text"]
    assert any(
        "In this image (predicted parts):" in c.value and "In this image (CUB's annotated parts):" in c.value
        for c in at.caption
    )
    # Channels: the part bars and the class x part matrix
    at.switch_page("pages/channels.py").run()
    assert not at.exception and len(at.get("plotly_chart")) == 4
    # a stale profile (other weights) is ignored
    _save(tmp_path / "parts-mc.safetensors", "mc", 1)
    at = interactive(AppTest.from_file(APP, default_timeout=180))
    at.run()
    at.switch_page("pages/channels.py").run()
    assert not at.exception and len(at.get("plotly_chart")) == 2
    assert any("No part profiles" in i.value for i in at.info)


def test_switching_channels_off_changes_the_probability(app):
    """The Explore page's switch-off control: only the head runs again, the class's probability
    moves, and without an effect ranking the top-10 option is disabled."""
    at = upload(app, *real_photo())
    at.selectbox(key="explore_class").set_value(0).run()
    assert any("Switch channels off" in s.value for s in at.subheader)
    assert at.toggle(key="explore_off_top").proto.disabled  # the test checkpoints ship no ranking file
    off = at.multiselect(key="explore_off")
    assert off.options == ["ch 0", "ch 1", "ch 2"]
    metrics_before = len(at.metric)
    at = off.set_value([0, 1, 2]).run()
    assert not at.exception
    assert len(at.metric) == metrics_before + 3  # probability, exact score, prediction
    prob = next(m for m in at.metric if m.label.startswith("P("))
    assert prob.delta is not None and prob.delta != "+0.0 points"
    assert "3 channel(s) off: ch 0, ch 1, ch 2" in [c.value for c in at.caption]


def test_folder_inputs_only_when_the_operator_allows_them(ckpt_dir, monkeypatch, tmp_path):
    """Visitors cannot point the server at folders of its disk unless MCVIZ_APP_FOLDERS=1."""
    import settings

    monkeypatch.setenv("MCVIZ_CHECKPOINTS", str(ckpt_dir))
    monkeypatch.setenv("MCVIZ_APP_NO_REPO_CHECKPOINTS", "1")
    monkeypatch.delenv(settings.FOLDERS_ENV, raising=False)
    at = interactive(AppTest.from_file(APP, default_timeout=180))
    at.run()
    assert not at.exception
    assert not [t for t in at.text_input if t.key in ("extra_checkpoint_dir", "data_dir")]
    assert not any(e.label == "Folders" for e in at.sidebar.expander)
    # a value smuggled into the session is ignored too
    other = tmp_path / "elsewhere"
    other.mkdir()
    _save(other / "zz-elsewhere.safetensors", "mc", 2)
    at.session_state["extra_checkpoint_dir"] = str(other)
    at.run()
    assert "zz-elsewhere" not in str(at.sidebar.selectbox(key="model").options)

    monkeypatch.setenv(settings.FOLDERS_ENV, "1")
    at = interactive(AppTest.from_file(APP, default_timeout=180))
    at.run()
    inputs = {t.key for t in at.text_input}
    assert {"extra_checkpoint_dir", "data_dir"} <= inputs
    at.text_input(key="extra_checkpoint_dir").input(str(other)).run()
    assert not at.exception
    assert any("zz-elsewhere" in o for o in at.sidebar.selectbox(key="model").options)


def test_an_uploaded_bird_gets_the_part_under_every_peak_and_a_car_model_says_why_not(monkeypatch):
    """A photo that is not from the gallery (no annotations): the part locator names the part under each
    channel's peak, on Explore and Compare, marked as predicted; a Stanford Cars model names none and says why."""
    monkeypatch.delenv("MCVIZ_CHECKPOINTS", raising=False)
    monkeypatch.delenv("MCVIZ_APP_NO_REPO_CHECKPOINTS", raising=False)
    at = interactive(AppTest.from_file(APP, default_timeout=240))
    at.run()
    name, data = real_photo()
    upload(at, "my-bird.jpg", data)
    assert not at.exception and not at.error
    said = [p for p in paragraphs(at) if "In this image" in p]
    assert len(said) == 1 and "predicted by the part locator" in said[0] and said[0].count("peaks ") == 3
    at.toggle(key="explore_show_parts").set_value(True).run()
    assert not at.exception and any("predicted by the part locator" in c for im in at.get("image") for c in im.captions)
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert any("In this image (predicted parts):" in c.value for c in at.caption)
    at.switch_page("pages/explore.py").run()
    box = at.sidebar.selectbox(key="model")
    box.set_value(box.value.parent / "cars-ce.safetensors").run()
    assert not at.exception
    assert not [p for p in paragraphs(at) if "In this image" in p]
    assert any("Stanford Cars has none" in c.value for c in at.caption)


def test_explore_and_compare_draw_pictures_by_default(ckpt_dir, monkeypatch):
    """Without the interactive toggle the maps are one server-rendered JPEG per class (per model on
    Compare), captioned with the upload's name; the toggle brings back the plotly figure."""

    monkeypatch.setenv("MCVIZ_CHECKPOINTS", str(ckpt_dir))
    monkeypatch.setenv("MCVIZ_APP_NO_REPO_CHECKPOINTS", "1")
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at = upload(at, *real_photo())
    assert not at.exception and not at.get("plotly_chart")
    captions = [c for im in at.get("image") for c in im.captions]
    assert sum(c.startswith("Maps computed for") for c in captions) == 1
    assert at.toggle(key="explore_interactive").value is False
    at.toggle(key="explore_interactive").set_value(True).run()
    assert not at.exception and len(heatmaps(at)) == 4
    at.switch_page("pages/compare.py").run()
    assert not at.exception and not at.get("plotly_chart")
    assert any("maps computed for" in c for im in at.get("image") for c in im.captions)


def test_the_maps_picture_matches_the_figure():
    """The picture: one panel per channel and the merged map, in rows of ``per_row``, the colour bar of
    the shared scale, each peak's white '+', and the same scales as the figure."""
    import io

    import numpy as np
    from PIL import Image

    from mcviz.explain.explainer import ClassMaps
    from mcviz.explain.maps_image import class_maps_image

    raw = np.zeros((3, 64, 64), np.float32)
    raw[0, 10, 10], raw[1, 40, 20], raw[2, 50, 50] = 3.0, 1.0, 2.0
    cm = ClassMaps(
        0,
        "a",
        [0, 1, 2],
        raw,
        raw / raw.max(axis=(1, 2), keepdims=True),
        raw.max(0),
        raw.max(0) / 3,
        [(10, 10), (20, 40), (50, 50)],
        1.5,
    )
    photo = np.full((64, 64, 3), 128, np.uint8)
    one = Image.open(io.BytesIO(class_maps_image(cm, photo, panel=64)))
    two = Image.open(io.BytesIO(class_maps_image(cm, photo, panel=64, per_row=2)))
    own = Image.open(io.BytesIO(class_maps_image(cm, photo, panel=64, scale="map")))
    assert one.format == "JPEG" and one.width > 4 * 64 and two.height > 2 * 64 > one.height - 40
    assert own.width < one.width  # no colour bar for maps scaled to their own 0-1
    a = np.asarray(one.convert("RGB")).astype(int)
    head = one.height - 64 - 16  # the panels sit under their titles (and a margin below)
    assert a[head + 10, 8 + 10].min() > 200  # the first channel's peak: the white '+'
    with pytest.raises(ValueError):
        class_maps_image(cm, photo, scale="log")
