"""recipes.toml names every training run once: the training scripts and the results tables read it."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

import recipes
from mcviz.train.config import add_arguments, config_from_args

from .conftest import REPO


def _parse(args: list[str]):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return config_from_args(p.parse_args([*args, "--out", "runs/x"]), "mcviz train")


@pytest.mark.parametrize("fam", ["shipped", "runs"])
def test_every_recipe_is_a_valid_training_command(fam):
    for name in recipes.names(fam):
        cfg = _parse(recipes.args(name, data="/data", size="288"))
        assert cfg.root.startswith("/data/"), name
        assert cfg.seed == (1 if name.endswith("-s1") else 0), name  # the naming convention of second seeds


def test_groups_expand_and_a_later_flag_wins():
    a = recipes.args("cub-mc-cc", data="/d", size="224")
    assert a[:4] == ["--dataset", "cub", "--root", "/d/CUB_200_2011"] and "--image-size" in a
    cfg = _parse(a)
    assert (cfg.head, cfg.xi, cfg.freeze, cfg.image_size, cfg.distill_weight) == (
        "class-connected-avg",
        3,
        "block5",
        224,
        3.0,
    )
    # the lever runs' family: 224 px first, then the run's own 288
    assert _parse(recipes.args("cc-avg-x3-anchor-mu03-b6-kd3", data="/d")).image_size == 288
    with pytest.raises(KeyError):
        recipes.args("no-such-run")


def test_the_tables_name_runs_with_a_recipe_or_a_record():
    docs = REPO / "docs" / "runs"
    for t in recipes.load()["tables"]:
        for name in recipes.table(t):
            assert recipes.family(name) or list(docs.rglob(f"{name}.*")), f"{t}: {name}"
    for model, lever in recipes.lever_of_shipped().items():
        assert recipes.family(model) == "shipped" and recipes.family(lever) == "runs"


def test_the_training_scripts_hold_no_recipes_of_their_own():
    for script in ("train_levers.sh", "train_checkpoints.sh"):
        text = (REPO / "scripts" / script).read_text()
        assert "declare -A" not in text and "recipes.py" in text, script
        assert not re.search(
            r"--variant|--mu |--xi ", text.split("record()")[0] if "record()" in text else text.split("finished()")[0]
        ), script
    out = subprocess.run(
        [sys.executable, "scripts/recipes.py", "names", "shipped"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out.index("cub-ce") < out.index("cub-mc-cc") and out.index("cars-ce") < out.index(
        "cars-mc-cc"
    )  # teachers first


def test_a_class_connected_row_reads_its_configuration():
    import results_class_head

    assert results_class_head._columns("cc-avg-x3-anchor-mu03-b6-kd3-guide1") == (
        "avg",
        "3",
        "anchored + part-guided",
        0.3,
    )
    assert results_class_head._columns("cc-max-x3-anchor-mu03")[:3] == ("max", "3", "anchored")
    assert results_class_head._columns("cc-avg-x10-ce")[2] == "none (CE only)"


def test_the_scripts_import_each_other_without_a_circle():
    import ast

    mods = {p.stem: p for p in (REPO / "scripts").glob("*.py")}
    graph = {
        m: {
            a.name.split(".")[0]
            for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.Import, ast.ImportFrom))
            for a in (n.names if isinstance(n, ast.Import) else [ast.alias(n.module or "")])
        }
        & set(mods)
        for m, p in mods.items()
    }

    def reaches(a: str, b: str, seen: set) -> bool:
        return any(n == b or (n not in seen and reaches(n, b, seen | {n})) for n in graph[a])

    assert not [m for m in graph if reaches(m, m, set())]


def test_the_class_connected_rule_picks_the_most_stable_of_the_qualifying(monkeypatch):
    import results_class_head as r

    runs = {"a": (72.0, 2.9, 70.0, 40.0), "b": (72.0, 2.8, 80.0, 48.0), "c": (72.0, 2.95, 50.0, 60.0)}
    row = lambda n: runs[n.removesuffix("-s1")]  # noqa: E731 (both seeds alike)
    monkeypatch.setattr(r, "cc_runs", lambda: [(n, n + "-s1") for n in runs])
    monkeypatch.setattr(r, "_final", lambda n, by: ({"top1": row(n)[0]}, None))
    monkeypatch.setattr(r, "_localization", lambda n: {"distinct_parts": row(n)[1], "in_box": 0.95})
    monkeypatch.setattr(r, "_protocol", lambda n: {"consistency": row(n)[2], "stability": row(n)[3]})
    said = r.cc_rule(71.0)
    # c is the most stable but misses the consistency floor; b is more stable than a, with fewer parts
    assert "`b` (two-seed mean 72.00 %, 2.80 distinct parts, consistency 80.0 %, stability 48.0 %)" in said
    monkeypatch.setattr(r, "_protocol", lambda n: None)  # unmeasured: the most distinct parts, as before
    assert "`c` (two-seed mean 72.00 %, 2.95 distinct parts)" in r.cc_rule(71.0)
