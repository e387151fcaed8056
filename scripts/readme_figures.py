"""Fills the generated figures of the README and the docs pages in :data:`FILES` (between
``<!-- figures:NAME -->`` and ``<!-- /figures -->``) from the shipped checkpoints' recorded metrics and
run records, so that they cannot drift from them.

Usage: python scripts/readme_figures.py        (scripts/results.py runs it too)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import recipes
from results_levers import recorded
from results_models import RUNS_DOC, default_model

from mcviz.io import CheckpointMeta, read_metadata
from mcviz.io.describe import training_name

REPO = Path(__file__).resolve().parents[1]

MARK = re.compile(r"(<!-- figures:(\w+) -->)(.*?)(<!-- /figures -->)", re.S)


def _top1(prefix: str) -> list[tuple[str, float]]:
    out = []
    for p in sorted((REPO / "checkpoints").glob(f"{prefix}-*.safetensors")):
        top1 = read_metadata(p).metrics.top1
        if top1 is not None:
            out.append((p.stem, float(top1)))
    return out


def summary() -> str:
    cub, cars = _top1("cub"), _top1("cars")
    default = default_model()
    d = dict(cub)
    lo, hi = min(v for _, v in cub), max(v for _, v in cub)
    clo, chi = min(v for _, v in cars), max(v for _, v in cars)
    return (
        f"CUB top-1 {lo:.1f}-{hi:.1f} %, the app's default `{default}` {d[default]:.2f} %; Stanford Cars "
        f"{clo:.1f}-{chi:.1f} %; final epoch, full test split"
    )


def default_training() -> str:
    meta = read_metadata(REPO / "checkpoints" / f"{default_model()}.safetensors")
    return f"`{default_model()}`: {training_name(meta)}"


def ood() -> str:
    """The check's figures of the default bird and car models, the app's referees of their data sets
    (docs/runs/ood/, scripts/ood_doc.py)."""
    said = []
    for name, what in ((default_model(), "bird"), ("cars-mc-cc", "car")):
        rec = json.loads((REPO / "docs" / "runs" / "ood" / f"{name}.json").read_text())
        other, cal = rec["other"], rec["calibration"]
        said.append(
            f"{what} model `{name}`: {other['detected']:.0%} of {other['n_out']} photos of other things "
            f"flagged, {cal['false_alarm']:.1%} of its own held-out test photos"
        )
    return "; ".join(said)


def _final_top1(run: str):
    """The final epoch's top-1 of a lever run, read as the lever table reads it (None while unfinished)."""
    return next((final["top1"] for *_, final in recorded((run,)) if final is not None), None)


def _kept_top1(name: str):
    """The recorded top-1 of a second seed kept in runs/ and described in docs/runs/NAME.meta.json."""
    kept = RUNS_DOC / f"{name}.meta.json"
    return CheckpointMeta.from_dict(json.loads(kept.read_text())).metrics.top1 if kept.exists() else None


def better_ce(plain_mean):
    """The better of plain CE's two-seed mean and the two-seed mean of CE with the default's levers
    (``ce-s288-b6-kd3``, its control): the bar a class-connected configuration is held to."""
    control = [_final_top1("ce-s288-b6-kd3"), _final_top1("ce-s288-b6-kd3-s1")]
    if None in control:
        return plain_mean
    mean = sum(control) / 2
    return mean if plain_mean is None else max(plain_mean, mean)


def ce_control() -> str:
    """The default against CE with the same levers (block 6 trained, distilled from cub-ce)."""
    lever = recipes.lever_of_shipped().get(default_model())  # the default's configuration as a lever run
    runs = (lever, recipes.second_seed(lever)) if lever else ()
    default = [v for v in map(_final_top1, runs) if v is not None]
    control = [v for v in (_final_top1("ce-s288-b6-kd3"), _final_top1("ce-s288-b6-kd3-s1")) if v is not None]
    plain = [float(read_metadata(REPO / "checkpoints" / "cub-ce.safetensors").metrics.top1)]
    second = _kept_top1("cub-ce-s1")  # the shipped CE recipe's second seed
    plain += [second] if second is not None else []

    def said(vals):
        return " / ".join(f"{v:.2f}" for v in vals) + (f" (mean {sum(vals) / len(vals):.2f})" if len(vals) > 1 else "")

    text = f"`{default_model()}` {said(default)} %, plain CE (`cub-ce`) {said(plain)} %"
    if control:
        text += (
            f", CE with the default's levers (block 6 trained, distilled from `cub-ce`: `ce-s288-b6-kd3`) "
            f"{said(control)} % ({len(control)} seed{'s' if len(control) > 1 else ''})"
        )
    else:
        text += "; CE with the default's levers not measured yet"
    return text


FIGURES = {"summary": summary, "default_training": default_training, "ood": ood, "ce_control": ce_control}


def fill(text: str) -> str:
    """``text`` with every marked figure recomputed (an unknown name is an error)."""

    def one(m: re.Match) -> str:
        if m.group(2) not in FIGURES:
            raise KeyError(f"unknown README figure {m.group(2)!r}")
        return f"{m.group(1)}{FIGURES[m.group(2)]()}{m.group(4)}"

    return MARK.sub(one, text)


# the pages that carry generated figures
FILES = ("README.md", "docs/app.md", "docs/findings.md")


def main() -> None:
    for name in FILES:
        path = REPO / name
        path.write_text(fill(path.read_text()))
    print(f"figures filled in {', '.join(FILES)}")


if __name__ == "__main__":
    main()
