"""The checkpoints shipped in checkpoints/ load, describe themselves, and fit their data."""

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from mcviz import load_checkpoint
from mcviz.data import EvalTransform, build

from .conftest import REPO, need_data

SHIPPED = sorted((REPO / "checkpoints").glob("*.safetensors"))


def test_folder_size_under_100_mb():
    assert sum(p.stat().st_size for p in (REPO / "checkpoints").rglob("*") if p.is_file()) <= 100e6


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_checkpoint(path: Path):
    model, meta = load_checkpoint(path)
    m = meta.metrics
    assert m.final_epoch and m.epoch == meta.hparam("epochs")
    assert meta.command.startswith("mcviz train") and len(meta.class_names) == model.num_classes
    assert path.name in (REPO / "checkpoints" / "README.md").read_text()
    sub, ds = ("CUB_200_2011", "cub") if meta.dataset == "cub" else ("stanford_cars", "folder")
    data = build(ds, need_data(sub), "test", EvalTransform.from_config(meta.input))
    assert data.classes == meta.class_names
    x = torch.stack([data[i][0] for i in range(4)])
    with torch.no_grad():
        assert model(x).shape == (4, len(data.classes))
        # real models: ImageNet-pretrained, with maps of 14 x 14 or finer (the paper's)
        assert meta.hparam("pretrained") and min(model.features(x).shape[-2:]) >= 14


def test_app_opens_on_its_default_model():
    from settings import DEFAULT_CHECKPOINT

    assert (REPO / "checkpoints" / DEFAULT_CHECKPOINT).exists(), "the app's default model is not shipped"
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=120)
    at.run()
    assert not at.exception
    assert at.selectbox(key="model").value.name == DEFAULT_CHECKPOINT


def test_the_default_model_is_class_connected_and_within_half_a_point_of_ce():
    """Issue 31's rule picked a class-connected default: its score is its own channels' evidence, and
    its recorded top-1 (final epoch, full test split) is within 0.5 of the shipped CE model's."""
    from settings import DEFAULT_CHECKPOINT

    model, meta = load_checkpoint(REPO / "checkpoints" / DEFAULT_CHECKPOINT)
    assert model.class_connected
    ce = load_checkpoint(REPO / "checkpoints" / f"{meta.dataset}-ce.safetensors")[1]
    assert meta.metrics.top1 >= ce.metrics.top1 - 0.5


def test_the_readme_figures_are_the_recorded_ones():
    """The README's generated figures (scripts/readme_figures.py) match the shipped checkpoints."""
    import readme_figures

    text = (REPO / "README.md").read_text()
    assert "<!-- figures:summary -->" in text and "<!-- figures:default_training -->" in text
    for name in readme_figures.FILES:
        page = (REPO / name).read_text()
        assert readme_figures.fill(page) == page, f"{name}: run python scripts/readme_figures.py"
