"""Tables and plots of the shipped checkpoints: checkpoints/README.md, docs/results.md, docs/accuracy.png.

    python scripts/results.py [--runs runs] [--localize --data ../shared/data]

Reads the metadata of checkpoints/*.safetensors, copies each run's metrics.jsonl to
docs/runs/ (so the plot can be remade from the repo), and with --localize runs
`mcviz localize` on the CUB checkpoints (docs/runs/<name>.localize.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mcviz.checkpoint import read_metadata  # noqa: E402

DOCS = REPO / "docs"
RUNS_DOC = DOCS / "runs"
TERMS = {"cub": "CUB-200-2011: non-commercial research and education only",
         "folder": "Stanford Cars: non-commercial research and education only"}
DATA_NAME = {"cub": "CUB-200-2011", "folder": "Stanford Cars"}


def rows():
    out = []
    for p in sorted((REPO / "checkpoints").glob("*.safetensors")):
        m = read_metadata(p)
        out.append((p, m))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default=str(REPO / "runs"))
    ap.add_argument("--localize", action="store_true")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = ap.parse_args()
    RUNS_DOC.mkdir(parents=True, exist_ok=True)
    ckpts = rows()
    for p, _ in ckpts:
        src = Path(args.runs) / p.stem / "metrics.jsonl"
        if src.exists():
            shutil.copy(src, RUNS_DOC / f"{p.stem}.metrics.jsonl")
        if args.localize and p.stem.startswith("cub-"):
            res = subprocess.run([sys.executable, "-m", "mcviz", "localize", str(p), "--root",
                                  str(Path(args.data) / "CUB_200_2011"), "--json"], capture_output=True, text=True,
                                 check=True)
            (RUNS_DOC / f"{p.stem}.localize.json").write_text(res.stdout.strip().splitlines()[-1] + "\n")

    lines = ["# Shipped checkpoints", "",
             "Trained by `scripts/train_checkpoints.sh` on the 2-core CPU (no GPU was available): the `small` "
             "backbone (a 4-stage ResNet, stride 8) with a 1x1 MC layer of 3 channels per class, 64 px "
             "(squashed to 73, random crop + flip), SGD lr 0.1 cosine, batch 32, 10 epochs, seed 0, from "
             "scratch, stored in float16. Accuracy is the **final epoch** on the full test split (not the best "
             "epoch). Regenerate this table with `python scripts/results.py`.", "",
             "| file | data set | backbone | variant | input | epochs | top-1 % | MC-branch top-1 % | mean h | size | data terms |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    cmds = []
    for p, m in ckpts:
        met = m.get("metrics") or {}
        lines.append(
            f"| `{p.name}` | {DATA_NAME.get(m.get('dataset'), m.get('dataset'))} | {m['backbone']} | {m.get('variant')} | "
            f"{m['input']['crop']} px | {met.get('epoch')} | {met.get('top1', float('nan')):.2f} | "
            f"{met.get('top1_mc', float('nan')):.2f} | {met.get('mean_h', float('nan')):.3f} | "
            f"{p.stat().st_size / 1e6:.1f} MB | {TERMS.get(m.get('dataset'), '')} |")
        cmds.append(f"- `{p.name}`: `{m.get('command', '')}`")
    lines += ["", "Exact commands (run from the repository root; `scripts/train_checkpoints.sh` runs them all "
              "and copies `runs/NAME/last.safetensors` here):", "", *cmds, "",
              "The photographs of CUB-200-2011 and Stanford Cars remain their owners'; the data sets are "
              "published for non-commercial research and education, and so are these models."]
    (REPO / "checkpoints" / "README.md").write_text("\n".join(lines) + "\n")

    # accuracy per evaluated epoch (paper Fig. 6 style)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, ds in zip(axes, ("cub", "cars")):
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
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(DOCS / "accuracy.png", dpi=110)
    print("wrote checkpoints/README.md, docs/accuracy.png, docs/runs/")


if __name__ == "__main__":
    main()
