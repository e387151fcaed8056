"""Tables and plots of the shipped checkpoints: checkpoints/README.md, docs/results.md, docs/accuracy.png.

    python scripts/results.py [--runs runs] [--localize --data ../shared/data]

Reads the metadata of checkpoints/*.safetensors, copies each run's metrics.jsonl to
docs/runs/ (so the plot can be remade from the repo), and with --localize runs
`mcviz localize` on the CUB checkpoints (docs/runs/<name>.localize.json).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import readme_figures
from results_models import (
    DATA_NAME,
    DOCS,
    REPO,
    RUNS_DOC,
    TERMS,
    default_model,
    fmt,
    localize_rows,
    localization,
    map_side,
    mean_top1,
    meets_target,
    options,
    recipe,
    rows,
    seed,
    shared,
    shipped_crop,
    soft_family,
    sort_key,
    two_seed_rows,
)
from results_levers import (
    SWEEP_TEXT,
    anchor_sweep_rows,
    backbone_text,
    copy_lever_runs,
    crop_rows,
    frozen_rows,
    lever_rows,
    mc_config_rows,
)
from results_class_head import CC_TEXT, cc_rows, cc_rule, grid_gaps
from part_locator_doc import locator_lines
from results_targets import targets


LEVER_TEXT = (
    "Measured on the 224 px recipe the models were shipped with before (a 1x1 layer and the head "
    "trained on a frozen body), which memorises its training views (train accuracy 0.99). Each row changes one "
    "thing of the row above it (or of the run it names), "
    "on cross-entropy alone; "
    "top-1 at the final epoch on the full test split. Views: cached views per training image (the "
    "evaluation crop, its mirror, then random resized crops and their mirrors). Minutes: training only, "
    "on this 2-core CPU (the runs were pinned to one core each while other work used the other); "
    "the caches are built once per data set and view count and are not included (the 4-view cache of "
    "block 5's outputs: about 35 minutes). With flip: `mcviz eval --flip`, the image and its mirror "
    "averaged. Train accuracy under mixup is against the first label of each blended pair. The source images of "
    "this copy of CUB are 160 px on their shorter side, squashed to 256: "
    "published fine-tuned numbers (76-78 % at 224 px) start from the full-size photographs."
)


CROP_TEXT = (
    "Resolution is the one lever that moved top-1. Part of it needs no training: the 224 px models "
    "(the frozen-body table above), trained on 224 px crops, already score higher on larger test crops of "
    "the same photos (`mcviz eval CKPT --crop PX`; the frozen ImageNet body then sees each bird larger and "
    "gives finer maps, 18x18 at 288 px). The 224 px column evaluates the file shipped then; the "
    "training-time numbers ran the float32 weights before they were stored as float16, hence `cub-ce`'s "
    "67.22 here against 67.35. Training at 288 px (`hc-v2-e4-s288`) gains more, and every shipped model "
    "is now trained that way."
)


FROZEN_TEXT = (
    "The models shipped before the rebuild: the same recipe at 224 px (14x14 maps); their records are in "
    "`docs/runs/frozen-224/`. Training at 288 px is the lever of the table below that moved top-1 "
    '(`hc-v2-e4-s288`); everything else is unchanged, so "change" is the resolution\'s gain, model by model, '
    'except for `cub-mc-anchor` and its second seed, whose MC-Loss weight also moved from mu = 1.5 to 0.3 ("The '
    "anchored variant's weight\" below; at 288 px and mu = 1.5 they scored 69.02 and 68.71 %). "
    "Localisation at 224 px counts peaks on the 14x14 grid; the tables above and below count them on 18x18."
)


MC_TEXT = (
    "Each configuration beside the CE run of the same recipe; localisation by `mcviz localize` (full "
    "CUB test split). The rule that picks the shipped MC-Loss configuration: top-1 within 0.5 of CE "
    "first, then the most distinct parts per image. (b) gives each class 6 or 7 channels: its distinct "
    "parts count against its own random column, not against the 3-channel rows; the 288 px rows have "
    "18x18 maps, and their random columns are those of that grid."
)


def acc_table(items) -> list[str]:
    """Accuracy and h of ``items`` ((Run, meta) pairs), one row each."""
    out = [
        "| model | shipped | variant | options | seed | top-1 % (CE head) | top-1 % (MC branch) | top-5 % "
        "| mean h (of 3) | shared channels |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p, m in items:
        met = m.metrics.as_dict()
        out.append(
            f"| `{p.stem}` | {'yes' if p.shipped else 'no (docs/runs)'} | {m.variant} | "
            f"{options(m) or '–'} | {seed(m)} | "
            f"{met.get('top1_head', float('nan')):.2f} | {met.get('top1_mc', float('nan')):.2f} | "
            f"{met.get('top5', float('nan')):.2f} | {met.get('mean_h', float('nan')):.3f} | {shared(m)} |"
        )
    return out


def seed_pairs(by: dict) -> list[str]:
    """One row per model trained with seeds 0 and 1."""
    pairs = []
    for name in by:
        if not name.endswith("-s1") and f"{name}-s1" in by:
            a, b = by[name], by[f"{name}-s1"]
            pairs.append(
                f"| `{name}` | {a['top1']:.2f} | {b['top1']:.2f} | {(a['top1'] + b['top1']) / 2:.2f} | "
                f"{a.get('top1_mc', float('nan')):.2f} | {b.get('top1_mc', float('nan')):.2f} | "
                f"{(a.get('mean_h', 0) + b.get('mean_h', 0)) / 2:.3f} |"
            )
    return pairs


def lever_sections(by: dict, default_mu: Optional[float]) -> list[str]:
    """Issue 19's tables: the CE levers, the test crops, the MC-Loss configurations and the
    anchored variant's weight (``by``: name -> metrics of the current models; ``default_mu``:
    the shipped default's MC-Loss weight)."""
    text: list[str] = []
    levers = lever_rows()
    ce_mean = mean_top1(by, ["cub-ce", "cub-ce-s1"])
    if levers:
        text += ["## Levers toward a fine-tuned network (CE, one at a time)", "", LEVER_TEXT, "", *levers, ""]
        backbone = backbone_text(ce_mean)
        text += [backbone, ""] if backbone else []
    crops = crop_rows()
    if crops:
        text += [CROP_TEXT, "", *crops, ""]
    configs = mc_config_rows()
    if configs:
        text += ["### MC-Loss as the paper fine-tunes it", "", MC_TEXT, "", *configs, ""]
    sweep = anchor_sweep_rows(ce_mean, default_mu)
    if sweep:
        text += ["### The anchored variant's weight", "", SWEEP_TEXT, "", *sweep, ""]
    cc = cc_rows(by)
    if cc:
        text += [
            "### The class-connected head",
            "",
            CC_TEXT,
            "",
            *cc,
            "",
            cc_rule(readme_figures.better_ce(ce_mean), by),
            "",
            grid_gaps(by),
            "",
        ]
    return text


def write_results(ckpts) -> None:
    """docs/results.md: accuracy, h and localisation of the models, beside the paper and the targets."""
    ckpts = sorted(ckpts, key=sort_key)
    cub = [(p, m) for p, m in ckpts if m.dataset == "cub"]
    cars = [(p, m) for p, m in ckpts if m.dataset != "cub"]
    by = {p.stem: m.metrics.as_dict() for p, m in ckpts}
    plain = {m.variant: m.metrics.as_dict() for p, m in cub if seed(m) == 0 and not options(m) and p.shipped}
    cols = [
        ("ce", "CE"),
        ("mc", "MC-Loss"),
        ("mc-v2", "MC-Loss-V2"),
        ("mc-no-div", "minus L_div"),
        ("mc-no-cwa", "minus CWA"),
        ("mc-no-dis", "minus L_dis"),
        ("mc-ccap", "CCAP (Sec. III)"),
        ("mc-soft", "soft labels"),
    ]
    ours = " | ".join(fmt(plain.get(v, {}).get("top1")) for v, _ in cols)
    ours_mc = " | ".join(fmt(plain.get(v, {}).get("top1_mc")) if v != "ce" else "–" for v, _ in cols)
    pairs = seed_pairs(by)
    crop = shipped_crop(ckpts)
    text = [
        "# Results",
        "",
        "Everything here is produced by commands in this repository: the models by "
        "`scripts/train_checkpoints.sh`, these tables and `docs/accuracy.png` by "
        "`python scripts/results.py --localize`. Accuracy is the **final epoch's**, on the full test split "
        "(the official code reports the best epoch; we do not). The earlier 64 px from-scratch models and "
        "their numbers: `docs/from-scratch/`.",
        "",
        "## Recipe",
        "",
        "No GPU was available to this work: every model was trained on the project's 2-core CPU. "
        + recipe(crop)
        + " `python benchmarks/finetune_speed.py` times this recipe against fine-tuning the whole network. "
        "Within a table only the variant, its options and the seed change.",
        "",
        "## CUB-200-2011",
        "",
        *acc_table(cub),
        "",
        "Beside the paper's Tables VI-VIII (top-1 %; ours: seed 0, final epoch; the paper: best epoch as its "
        "code reports):",
        "",
        "| | " + " | ".join(t for _, t in cols) + " |",
        "|---|" + "---|" * len(cols),
        f"| ours, Lite0 ImageNet, {crop} px, frozen trunk, 4 epochs (CE head) | {ours} |",
        f"| ours, predicting from the MC branch | {ours_mc} |",
        "| paper, VGG16 from scratch, CUB | 28.53 | 65.98 | 65.20 | 64.52 | 63.36 | 26.94 | – | – |",
        "| paper, ResNet18 from scratch, CUB | 45.70 | 59.41 | – | – | – | – | – | – |",
        "| paper, ResNet50 ImageNet-pretrained, 448 px, CUB (Table VIII) | – | 87.3 | – | – | – | – | – | 87.8 |",
        "",
        "The paper describes cross-channel average pooling (CCAP) as the alternative to its max pooling "
        "(Sec. III) without a figure for it; its Table VII gives MC-Loss minus L_dis.",
        "",
    ]
    if pairs:
        text += [
            "### Two seeds",
            "",
            "| model | top-1 % seed 0 | seed 1 | mean | MC branch seed 0 | seed 1 | mean h |",
            "|---|---|---|---|---|---|---|",
            *pairs,
            "",
        ]
    frozen = frozen_rows(by)
    if frozen:
        text += [
            "### Frozen body at 224 px (the models shipped before the 288 px rebuild)",
            "",
            FROZEN_TEXT,
            "",
            *frozen,
            "",
        ]
    text += lever_sections(by, next((m.hparams.get("mu") for p, m in ckpts if p.stem == default_model()), None))
    if cars:
        text += [
            "## Stanford Cars",
            "",
            *acc_table(cars),
            "",
            "Paper, Stanford Cars (from scratch): VGG16 CE 76.59, MC-Loss 90.85; ResNet18 CE 79.12, MC-Loss 87.47.",
            "",
        ]
    text += [
        "## Do the channels find parts? (`mcviz localize`)",
        "",
        "For each CUB test image (all 5,794) and its true class, each of the class's channels' peak "
        f"({map_side(crop)}x{map_side(crop)} maps) is matched to the nearest visible annotated part within 0.15 "
        "x the bird box's diagonal; "
        "random peaks on the same grid, as many per image as the class has channels, give the chance level "
        "(soft-label classes own up to 6 channels: compare them with their own random column).",
        "",
        *localize_rows(cub),
        "",
        "Stanford Cars: the copy in `../shared/data` holds each car already cropped to its annotated box, so "
        '"peaks inside the car" is 1.0 for every model by construction and is not reported.',
        "",
        *targets(by, cub, cars),
        "",
        "![accuracy per evaluated epoch](accuracy.png)",
        "",
    ]
    (DOCS / "results.md").write_text("\n".join(text) + "\n")


def write_diversity(ckpts) -> None:
    """docs/diversity.md: does L_div spread a class's channels over the bird's parts?"""
    cub = {p.stem: (p, m) for p, m in ckpts if m.dataset == "cub"}
    rows = [
        "| model | L_div | seed | top-1 % | MC branch % | mean h (paper's, of 3) | peaks in the box | "
        "peaks near a part | distinct parts / image (of 3) | target met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = cub["cub-mc"][1].metrics.top1 if "cub-mc" in cub else None
    crop = shipped_crop(ckpts)
    side = map_side(crop)
    tried = [n for n in cub if cub[n][1].variant in ("mc", "mc-no-div", "ce", "mc-v2", "mc-no-cwa")]
    tried.sort(key=lambda n: sort_key(cub[n]))
    rnd = None
    for n in tried:
        p, m = cub[n]
        r = localization(p)
        met = m.metrics.as_dict()
        if not r:
            continue
        rnd = r
        what = {
            "ce": "none (cross-entropy only)",
            "mc-no-div": "none (MC-Loss minus L_div)",
            "mc-v2": "true class only (V2)",
            "mc-no-cwa": "paper's, no CWA",
        }.get(m.variant, "paper's")
        if options(m):
            what = options(m)
        ok = meets_target(met["top1"], r["in_box"], r["distinct_parts"], base)
        rows.append(
            f"| `{n}` | {what} | {seed(m)} | {met['top1']:.2f} | {met.get('top1_mc', float('nan')):.2f} | "
            f"{met.get('mean_h', float('nan')):.3f} | {r['in_box']:.3f} | {r['near_part']:.3f} | "
            f"{r['distinct_parts']:.3f} | {'yes' if ok else 'no'} |"
        )
    if rnd:
        rows.append(
            f"| random peaks | – | – | – | – | – | {rnd['random_in_box']:.3f} | {rnd['random_near_part']:.3f} | "
            f"{rnd['random_distinct_parts']:.3f} | – |"
        )
    seeds_rows, met_two = two_seed_rows(cub)
    pics = []
    fig_dir = DOCS / "diversity"
    models = [d.name for d in sorted(fig_dir.iterdir())] if fig_dir.exists() else []
    if models:
        first = sorted((fig_dir / models[0]).glob("*.png"))
        for img in first:
            pics += [f"**{img.stem}** (true class):", ""]
            for mdl in models:
                if (fig_dir / mdl / img.name).exists():
                    pics += [f"`{mdl}`:", "", f"![{mdl} {img.stem}](diversity/{mdl}/{img.name})", ""]
    keep = (DOCS / "diversity.md").read_text() if (DOCS / "diversity.md").exists() else ""
    marker = "<!-- generated below by scripts/results.py -->"
    head = keep.split(marker)[0].rstrip() if marker in keep else "# Do MC-Loss channels find parts?"
    text = [
        head,
        "",
        marker,
        "",
        "## Numbers",
        "",
        f"CUB test split (5,794 images), the true class's 3 channels, {side}x{side} maps at {crop} px, hit "
        "radius 0.15 x "
        "the box diagonal (`mcviz localize`); top-1 at the final epoch; h is always the paper's (all "
        "positions), whatever the model trained on. Target: at least 1.8 distinct parts per image, at "
        f"least 0.75 of the peaks in the box, top-1 no worse than plain MC-Loss's ({fmt(base)} %).",
        "",
        *rows,
        "",
        *seeds_rows,
        ("Meeting the target over two seeds: " + ", ".join(f"`{n}`" for n in met_two) + ".")
        if met_two
        else "No diversity variant meets the target over two seeds.",
        "",
        "## Pictures",
        "",
        "Made by `python scripts/diversity_figures.py` (which runs `mcviz explain --class <true class>` "
        "on the same CUB test images for each model): the photo, each of the true class's channels "
        "(+ marks the peak) and the merged map.",
        "",
        *pics,
    ]
    (DOCS / "diversity.md").write_text("\n".join(text).rstrip() + "\n")


def write_soft_labels(ckpts) -> None:
    """The generated part of docs/soft-labels.md: the soft-label models against MC-Loss."""
    cub = [(p, m) for p, m in ckpts if m.dataset == "cub"]
    by = {p.stem: m for p, m in cub}
    runs = [r for r in (soft_family(cub), soft_family(cub, "cub-mc-soft-paper")) if r]
    path = DOCS / "soft-labels.md"
    if "cub-mc-soft-paper" in by and len(runs) < 2 and path.exists():
        # its rankings need the checkpoint itself, which lives in runs/ (not in the repository)
        print("docs/soft-labels.md kept: runs/cub-mc-soft-paper/last.safetensors is not on this machine")
        return
    marker = "<!-- generated below by scripts/results.py -->"
    keep = path.read_text() if path.exists() else "# Soft channel labels"
    text = [keep.split(marker)[0].rstrip(), "", marker, ""]
    if runs:
        mc = by["cub-mc"].metrics.as_dict() if "cub-mc" in by else {}
        cols = [f"`{name}`" for name, _, _ in runs]
        text += [
            "## Result on CUB (seed 0, the recipe of `docs/results.md`)",
            "",
            "| | " + " | ".join(cols) + " | `cub-mc` (MC-Loss) |",
            "|---|" + "---|" * (len(runs) + 1),
        ]

        def row(label, cells, mc_cell="–"):
            text.append(f"| {label} | " + " | ".join(cells) + f" | {mc_cell} |")

        metas = [by[name] for name, _, _ in runs]
        row("Eq. 10-11", ["divided by N (ours)" if m.hparam("soft_norm") else "as in the paper" for m in metas])
        row("top-1 % (final epoch)", [f"{t:.2f}" for _, _, t in runs], fmt(mc.get("top1")))
        row("MC-branch top-1 %", [fmt(m.metrics.top1_mc) for m in metas], fmt(mc.get("top1_mc")))
        row("channels shared between classes", [shared(m) for m in metas], "0")
        row("top-10 channels shared by two classes of one family", [f"{f['family']:.2f}" for _, f, _ in runs])
        row("... by two classes, all pairs", [f"{f['random']:.2f}" for _, f, _ in runs])
        row("ratio (target >= 2)", [f"{f['ratio']:.2f}" for _, f, _ in runs])
        row("ratio, ranking by the raw labels instead", [f"{f['raw_ratio']:.2f}" for _, f, _ in runs])
        f0 = runs[0][1]
        text += [
            "",
            f"Families are classes whose names end in the same word (the gulls, the warblers, ...: "
            f"{f0['family_pairs']} pairs of {f0['pairs']}); the top-10 lists are those of "
            '`mcviz.explain.top_channels(..., by="soft-labels")` (the Channels page\'s soft-label view): each '
            "class's channels by the specificity of "
            "their soft label; "
            "`mcviz.core.soft_labels.family_sharing` computes the last rows.",
            "",
        ]
    path.write_text("\n".join(text).rstrip() + "\n")


def localize_missing(ckpts, data: Path) -> None:
    """Run `mcviz localize` (full CUB test split) for every CUB model whose result is older."""
    for p, _ in ckpts:
        if p.path is None or not p.stem.startswith("cub-"):
            continue
        loc = RUNS_DOC / f"{p.stem}.localize.json"
        if loc.exists() and loc.stat().st_mtime > p.path.stat().st_mtime:
            continue
        res = subprocess.run(
            [sys.executable, "-m", "mcviz", "localize", str(p.path), "--root", str(data / "CUB_200_2011"), "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        loc.write_text(res.stdout.strip().splitlines()[-1] + "\n")


def portable(command: str, name: str) -> str:
    """A stored training command as train_checkpoints.sh runs it from the repository root: the data
    under ../shared/data and the run in runs/NAME, whatever folders the machine that trained it used."""
    command = re.sub(r"--root \S*/shared/data/", "--root ../shared/data/", command)
    return re.sub(r"--out \S+", f"--out runs/{name}", command)


def write_checkpoints_readme(ckpts) -> None:
    lines = [
        "# Shipped checkpoints",
        "",
        "Trained by `scripts/train_checkpoints.sh` on the 2-core CPU (no GPU was available). "
        + recipe(shipped_crop(ckpts))
        + " Stored in float16 and without the frozen body (three quarters of the network): loading rebuilds it "
        "from the weights package and refuses it unless its digest matches the one recorded at training "
        "(`packaged_body` in the metadata). Accuracy is the **final epoch** on the full test split (not the "
        "best epoch). "
        "Second seeds are reported in `docs/results.md` and `docs/runs/`, not shipped. Regenerate this "
        "table with `python scripts/results.py`.",
        "",
        "| file | data set | backbone | variant | options | seed | input | maps | epochs | top-1 % | "
        "MC-branch top-1 % | mean h | size | data terms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    cmds = []
    total = 0
    shipped = [(p, m) for p, m in ckpts if p.shipped]
    for p, m in sorted(shipped, key=lambda it: (it[1].dataset != "cub", sort_key(it))):
        met = m.metrics.as_dict()
        size = p.path.stat().st_size
        total += size
        cells = map_side(m.input["crop"], m.backbone)
        lines.append(
            f"| `{p.path.name}` | {DATA_NAME.get(m.dataset, m.dataset)} | {m.backbone} "
            f"{'(ImageNet)' if m.hparam('pretrained') else ''} | {m.variant} | "
            f"{options(m) or '–'} | {seed(m)} | {m.input['crop']} px | {cells}x{cells} | {met.get('epoch')} | "
            f"{met.get('top1', float('nan')):.2f} | {met.get('top1_mc', float('nan')):.2f} | "
            f"{met.get('mean_h', float('nan')):.3f} | {size / 1e6:.1f} MB | {TERMS.get(m.dataset, '')} |"
        )
        cmds.append(f"- `{p.path.name}`: `{portable(m.command, p.stem)}`")
    side = [f for f in (REPO / "checkpoints").iterdir() if f.suffix in (".json", ".png")]
    lines += [
        "",
        f"All {len(shipped)} files: {total / 1e6:.1f} MB.",
        "",
        "Beside each checkpoint: `NAME.ranking.json`, every channel's effect on every class (`mcviz rank`; "
        "the app's Channels page ranks by it), and for the CUB models `NAME.parts.json` / `.parts.png`, the "
        "part each channel looks at (`mcviz parts`), and their part consistency and stability (`mcviz "
        "consistency`, where measured); every model's out-of-distribution threshold, `NAME.ood.json` (`mcviz "
        "calibrate-ood`, `docs/ood.md`); the default model also ships its channel atlas "
        f"(`mcviz atlas`). These {len(side)} files: {sum(f.stat().st_size for f in side) / 1e6:.1f} MB.",
        "",
        "Exact commands (run from the repository root; `scripts/train_checkpoints.sh` runs them all "
        "and copies `runs/NAME/last.safetensors` here):",
        "",
        *cmds,
        "",
        *locator_lines(),
        "The photographs of CUB-200-2011 and Stanford Cars remain their owners'; the data sets are "
        "published for non-commercial research and education, and so are these models.",
    ]
    (REPO / "checkpoints" / "README.md").write_text("\n".join(lines) + "\n")


def plot_accuracy() -> None:
    """docs/accuracy.png: test top-1 per evaluated epoch (paper Fig. 6 style)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [ds for ds in ("cub", "cars") if any(RUNS_DOC.glob(f"{ds}-*.metrics.jsonl"))] or ["cub"]
    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 3.6), squeeze=False)
    for ax, ds in zip(axes[0], sets):
        for f in sorted(RUNS_DOC.glob(f"{ds}-*.metrics.jsonl")):
            pts = [json.loads(l) for l in f.read_text().splitlines()]
            pts = [(r["epoch"], r["top1"]) for r in pts if "top1" in r]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=f.name.split(".")[0])
        ax.set_title({"cub": "CUB-200-2011", "cars": "Stanford Cars"}[ds])
        ax.set_xlabel("epoch")
        ax.set_ylabel("test top-1 %")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(DOCS / "accuracy.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default=str(REPO / "runs"))
    ap.add_argument("--localize", action="store_true")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = ap.parse_args()
    RUNS_DOC.mkdir(parents=True, exist_ok=True)
    ckpts = rows(Path(args.runs))
    copy_lever_runs(Path(args.runs))
    for p, _ in ckpts:
        src = Path(args.runs) / p.stem / "metrics.jsonl"
        if src.exists():
            shutil.copy(src, RUNS_DOC / f"{p.stem}.metrics.jsonl")
    if args.localize:
        localize_missing(ckpts, Path(args.data))
    write_checkpoints_readme(ckpts)
    write_results(ckpts)
    write_diversity(ckpts)
    write_soft_labels(ckpts)
    plot_accuracy()
    readme_figures.main()
    print(
        "wrote checkpoints/README.md, docs/results.md, docs/diversity.md, docs/soft-labels.md, "
        "docs/accuracy.png, docs/runs/"
    )


if __name__ == "__main__":
    main()
