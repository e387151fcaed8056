"""Branch an anchored run at its anchor epoch, to try several post-anchor settings for the
price of one pre-anchor phase.

    python scripts/fork_run.py runs/SRC runs/DST [--div-anchor-sd S] [--lam-warmup W] [--lam L]
    mcviz train --resume runs/DST

SRC must be a `--div-anchor K` run stopped at or before epoch K (a copy of its folder taken
then). Before epoch K lambda is 0 whatever --lam, --div-anchor-sd and --lam-warmup say, so the
first K epochs of a run with the new options are exactly SRC's (training is deterministic:
tests/test_training.py checks that a resumed run matches an uninterrupted one). DST gets
SRC's state with the new options, and a `command` that trains the same weights from scratch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import shutil
from pathlib import Path

from mcviz.io.files import atomic_write_bytes
from mcviz.train.config import TrainConfig
from mcviz.train.state import load_state, save_state

# Options that act only from the anchor epoch on.
AFTER_ANCHOR = {
    "div_anchor_sd": ("--div-anchor-sd", float),
    "lam_warmup": ("--lam-warmup", int),
    "lam": ("--lam", float),
}


def fork(src: Path, dst: Path, changes: dict) -> TrainConfig:
    state = load_state(src)
    cfg = json.loads(state["config"])
    epoch, k = int(state["epoch"]), int(cfg.get("div_anchor", 0))
    if not k:
        raise SystemExit(f"{src} is not a --div-anchor run")
    if epoch > k:
        raise SystemExit(f"{src} is at epoch {epoch}, past its anchor ({k}): too late to branch")
    if (dst / "state.pt").exists():
        raise SystemExit(f"{dst} already holds a run")
    flags = []
    for key, value in changes.items():
        cfg[key] = value
        flags += [AFTER_ANCHOR[key][0], str(value)]
    cfg["out"] = str(dst)
    cfg["command"] = cfg["command"] + " " + " ".join(shlex.quote(a) for a in ["--out", str(dst), *flags])
    new = TrainConfig(**cfg)  # validates the combination
    state["config"] = json.dumps(dataclasses.asdict(new))
    dst.mkdir(parents=True, exist_ok=True)
    save_state(dst / "state.pt", state)
    rows = [line for line in (src / "metrics.jsonl").read_text().splitlines() if json.loads(line)["epoch"] <= epoch]
    atomic_write_bytes(dst / "metrics.jsonl", "".join(r + "\n" for r in rows).encode())
    (dst / "config.json").write_text(json.dumps(dataclasses.asdict(new), indent=2))
    shutil.copy(src / "last.safetensors", dst / "last.safetensors")
    return new


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    for key, (flag, typ) in AFTER_ANCHOR.items():
        ap.add_argument(flag, dest=key, type=typ)
    args = ap.parse_args()
    changes = {k: getattr(args, k) for k in AFTER_ANCHOR if getattr(args, k) is not None}
    new = fork(args.src, args.dst, changes)
    print(f"{args.dst}: resume with `mcviz train --resume {args.dst}`; same weights as `{new.command}`")


if __name__ == "__main__":
    main()
