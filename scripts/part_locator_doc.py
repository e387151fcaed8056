"""docs/part-locator.md from the shipped part locator's records (issue 33).

    python scripts/part_locator_doc.py

Reads docs/runs/locator/: cub-parts.config.json and .metrics.jsonl (the training run),
cub-parts.eval.json (the last line of `mcviz locator eval ... --json`) and benchmark.txt (the output
of `python benchmarks/part_locator.py`), and the size of the shipped file.
"""

from __future__ import annotations

import json

from results_models import REPO, default_model

RUNS = REPO / "docs" / "runs" / "locator"
SHIPPED = REPO / "checkpoints" / "locator" / "cub-parts.safetensors"
DEFAULT = default_model()  # the app's default model

TRAIN_CMD = (
    "mcviz locator train --root ../shared/data/CUB_200_2011 --out runs/locator/cub-parts --epochs {epochs}"
    " && cp runs/locator/cub-parts/last.safetensors checkpoints/locator/cub-parts.safetensors"
)
EVAL_CMD = (
    "mcviz locator eval checkpoints/locator/cub-parts.safetensors --root ../shared/data/CUB_200_2011 "
    "--models {models} --json | tail -1 > docs/runs/locator/cub-parts.eval.json"
)

INTRO = """# The CUB part locator

A map titled with a channel's *usual* part says what its peaks hit on average over its class's test
images, not on the photo at hand. The part locator answers for the photo at hand: it predicts where
each of CUB's 15 parts of *this* bird is, whether each is visible, and the bird's box, and every
place that names a part under a peak for a photo uses it: Explore's and Compare's "In this image"
(marked as predicted; a gallery image shows the annotated parts beside the predicted ones), the
parts overlay (predicted parts in green with their visibility, hidden ones as grey rings),
`mcviz explain` (`parts_in_image` in the JSON, "this photo: ..." in the PNG) and `mcviz localize
--predicted-parts`. A Stanford Cars model gets no part names: the cars have no part annotations to
learn from, and the app says so.

**How it works** (`mcviz/core/part_locator.py`). A small head (three convolutions of {width}
channels) on the frozen ImageNet trunk every shipped model shares, reading the output of its block 5
(the tensors the models' training cache already holds, and that the app computes for every photo,
so a photo costs only the head). Each part is a heat map over the 18x18 grid, trained against a
Gaussian around the annotated point and read out by its expectation (a soft-argmax, which places a
part between cells){window}; a part's visibility comes from the features its own map pools, the box
from the whole map. Trained on CUB's training split (5,994 photos, the
evaluation crop and its mirror with left and right parts swapped) by `mcviz locator train`
(`mcviz/train/part_locator.py`); measured on the test split (5,794 photos, never seen in training)
by `mcviz locator eval` (`mcviz/evaluate/part_locator.py`).

**How it is measured.** PCK@0.1: a visible part counts as found when its prediction lies within
0.1 x the longer side of the bird's box, in the photo's own pixels (the crop's squash undone; a part
the 288 px centre crop cuts off counts as a miss). Visibility: predicted visible (probability >= 0.5)
against annotated visible *and* inside the crop. Box IoU in the photo's pixels. Naming agreement:
for each test photo and each channel of its true class, the part its peak is named after (the rule
of `mcviz localize`: the nearest visible part within 0.15 x the box diagonal, else "on the bird,
near no part", else "off the bird") from the predicted parts and box, against the same from the
annotations. The photos of this CUB copy are 160 px on their shorter side.
"""


def locator_lines() -> list[str]:
    """checkpoints/README.md's paragraph on the CUB part locator, when it is shipped."""
    path = SHIPPED
    if not path.exists():
        return []
    return [
        f"`locator/cub-parts.safetensors` ({path.stat().st_size / 1e6:.2f} MB): the CUB part locator, which "
        "predicts where each of the 15 parts of a bird photo is, whether it is visible, and the bird's box, from "
        "the block-5 output of the frozen trunk every model above shares; the app and `mcviz explain` name the "
        "part under each peak of a photo with it. `scripts/train_checkpoints.sh locator` trains it; its figures "
        "and commands are in `docs/part-locator.md`.",
        "",
    ]


def _fmt_pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def main() -> None:
    cfg = json.loads((RUNS / "cub-parts.config.json").read_text())
    rows = [json.loads(l) for l in (RUNS / "cub-parts.metrics.jsonl").read_text().splitlines() if l.strip()]
    ev = json.loads((RUNS / "cub-parts.eval.json").read_text())
    bench = (RUNS / "benchmark.txt").read_text().strip() if (RUNS / "benchmark.txt").exists() else ""
    extra = None
    for line in bench.splitlines():
        if line.startswith("extra per photo"):
            extra = float(line.split(":")[1].split("ms")[0])
    size = SHIPPED.stat().st_size / 1e6
    ckpt_total = sum(p.stat().st_size for p in (REPO / "checkpoints").rglob("*") if p.is_file()) / 1e6
    naming = ev.get("naming", {})
    default_naming = naming.get(DEFAULT)
    t = ["| target | measured | met |", "|---|---|---|"]

    def row(what, measured, ok):
        t.append(f"| {what} | {measured} | {'yes' if ok else '**no**'} |")

    row("PCK@0.1 >= 75 % over visible parts", _fmt_pct(ev["pck"]), ev["pck"] >= 0.75)
    row("visibility accuracy >= 85 %", _fmt_pct(ev["visibility_accuracy"]), ev["visibility_accuracy"] >= 0.85)
    row("box IoU >= 0.70", f"{ev['box_iou']:.3f}", ev["box_iou"] >= 0.70)
    if default_naming is not None:
        row(
            f"naming agreement >= 80 % of the default model's (`{DEFAULT}`) peaks",
            _fmt_pct(default_naming),
            default_naming >= 0.80,
        )
    if extra is not None:
        row("extra time per photo in the app <= 30 ms (`benchmarks/part_locator.py`)", f"{extra:.1f} ms", extra <= 30)
    row("`checkpoints/` <= 100 MB", f"{ckpt_total:.1f} MB (the locator: {size:.2f} MB)", ckpt_total <= 100)

    per = ["| part | PCK@0.1 |", "|---|---|"] + [f"| {k} | {_fmt_pct(v)} |" for k, v in ev["pck_per_part"].items()]
    names = ["| model | naming agreement |", "|---|---|"] + [f"| `{k}` | {_fmt_pct(v)} |" for k, v in naming.items()]
    minutes = sum(r["train_time_s"] for r in rows) / 60
    models = " ".join(f"checkpoints/{k}.safetensors" for k in naming)
    from mcviz.io.locator_file import load_locator

    head = load_locator(SHIPPED)[0]
    w = head.window
    window = (
        (
            f", over the {2 * w + 1}x{2 * w + 1} cells around the map's peak (the read-out picked on the training "
            "split: the full expectation pulls a part toward a second mode, the other leg or wing)"
        )
        if w
        else ""
    )
    worst = ev.get("naming_confusions", {}).get(DEFAULT, [])
    why = (
        [
            "",
            f"Where `{DEFAULT}`'s names disagree most often (named from the annotations -> from the prediction, "
            "share of all its peaks): " + "; ".join(f"{a} -> {b} {100 * s:.1f} %" for a, b, s in worst) + ". Most "
            "disagreements are a neighbouring part (the nearest-part rule flips where a peak lies about halfway "
            "between two annotated points), the other leg or wing, or a "
            "peak at the edge of the bird, where the box decides between on and off the bird.",
        ]
        if worst
        else []
    )
    text = [
        INTRO.format(width=head.width, window=window),
        "## Targets (CUB test split, all 5,794 photos)",
        "",
        *t,
        "",
        "## PCK@0.1 per part",
        "",
        *per,
        "",
        "## Naming agreement of each shipped CUB model's peaks",
        "",
        *names,
        *why,
        "",
        "## Commands",
        "",
        f"- Train ({cfg['epochs']} epochs, {minutes:.0f} minutes on one core of the 2-core CPU once the block-5 "
        f"cache of the training split exists; `scripts/train_checkpoints.sh` builds it): "
        f"`{TRAIN_CMD.format(epochs=cfg['epochs'])}`",
        f"- Measure: `{EVAL_CMD.format(models=models)}`",
        "- Per photo in the app: `python benchmarks/part_locator.py > docs/runs/locator/benchmark.txt`",
        "- This page: `python scripts/part_locator_doc.py`",
        "",
    ]
    if bench:
        text += ["## Time per photo", "", "```", bench, "```", ""]
    text += [
        "Trained on CUB-200-2011's annotations: non-commercial research and education only, like the data set.",
        "",
    ]
    (REPO / "docs" / "part-locator.md").write_text("\n".join(text))
    print("wrote docs/part-locator.md")


if __name__ == "__main__":
    main()
