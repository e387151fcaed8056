"""What the operator decides: where checkpoints and data are read from, the default model, upload
limits, and how this process shares its CPU. Read from the environment; no Streamlit widgets."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Optional

from mcviz.data import IMAGE_SUFFIXES
from mcviz.io.locator_file import default_locator_path
from serial_work import serving_threads

APP_DIR = Path(__file__).resolve().parent
REPO = APP_DIR.parent

# The class-connected MC-Loss model the rule of docs/results.md picks ("The class-connected head"):
# a class's score is its own channels' evidence alone, so the maps the app shows for a class are what
# decided it; within 0.5 of cross-entropy's accuracy (two seeds), with each of a class's channels
# pulled toward a part of its own (it learned from CUB's part annotations; cub-mc-cc is the recipe
# without them), trained also on noisy copies of its views, and its maps blurred by a fixed Gaussian of
# one cell (a step of the model), so that a channel's peak stays on its part when the photo changes a little.
DEFAULT_CHECKPOINT = "cub-mc-cc-guided-blur.safetensors"
# The model whose out-of-distribution check judges every photo for the models of its data set, where
# their own check passes it: a class-connected model's check is far sharper than an official head's
# (docs/ood.md), and "is this a bird?" is a question about the photo, not about the model. For birds
# it is the default itself (class-connected too, and as sharp: docs/ood.md), so that an upload to the
# default runs one model, not two.
OOD_REFEREES = {"cub": DEFAULT_CHECKPOINT, "cars": "cars-mc-cc.safetensors"}
# the CUB part locator (mcviz.core.part_locator): names the part under each peak of any bird photo
# (io's default: $MCVIZ_PART_LOCATOR, else the shipped one; the CLI asks the same function)
PART_LOCATOR = default_locator_path()
ACCEPTED = [s.lstrip(".") for s in IMAGE_SUFFIXES]
# Streamlit's server.maxUploadSize (.streamlit/config.toml, scripts/start.sh) is set to the same
# number, so the uploader's own "Limit 25MB per file" is the one the app enforces.
MAX_UPLOAD_MB = 25
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
# Photos are decoded no larger than this on their shorter side: enough for a 448 px model
# (squashed to 512) and for display; a 48-megapixel JPEG then decodes at 1/8 scale.
DECODE_SIDE = 512

# Which folders of the server's disk visitors may name: by default none (only checkpoints/,
# $MCVIZ_CHECKPOINTS and $MCVIZ_DATA, which the operator chose). The operator opens the sidebar's
# "Folders" inputs by starting the app with MCVIZ_APP_FOLDERS=1.
FOLDERS_ENV = "MCVIZ_APP_FOLDERS"

_configured = False


def configure_process() -> None:
    """Once per server process: freeze the objects the imports made, and size torch's threads."""
    global _configured
    if _configured:
        return
    # Streamlit runs a full gc.collect() after every script run (runner.postScriptGC); with
    # torch, plotly and scipy loaded that scan takes ~0.7 s on this machine, and an upload makes
    # two runs. Freezing what the imports created moves it out of the collector's reach, so
    # the collection scans only what the runs allocate (~0.1 ms). .streamlit/config.toml also
    # turns the per-run collection off when the app is started from the repository.
    gc.freeze()
    # Model work of every session goes through one queue (loaders.work_queue), a few jobs at a
    # time with all cores: concurrent sessions then share the machine instead of oversubscribing it.
    import torch

    from mcviz.memory import keep_freed_memory

    torch.set_num_threads(serving_threads())
    keep_freed_memory()  # each upload's batch reuses the last one's memory: see mcviz.memory
    _configured = True


def folders_allowed() -> bool:
    """Whether visitors may point the app at folders of the server (the operator's choice)."""
    return os.environ.get(FOLDERS_ENV) == "1"


def checkpoint_dirs(visitor_dir: str = "") -> list[Path]:
    """checkpoints/ of the repo, then $MCVIZ_CHECKPOINTS (os.pathsep-separated), then the visitor's
    folder (used only when the operator allows it)."""
    dirs = [] if os.environ.get("MCVIZ_APP_NO_REPO_CHECKPOINTS") == "1" else [REPO / "checkpoints"]
    for d in os.environ.get("MCVIZ_CHECKPOINTS", "").split(os.pathsep):
        if d.strip():
            dirs.append(Path(d.strip()))
    if visitor_dir and folders_allowed():
        dirs.append(Path(visitor_dir))
    return dirs


def data_dir(visitor_dir: str = "") -> Optional[Path]:
    """The folder that holds ``CUB_200_2011/`` for the gallery: the visitor's (when allowed), else
    $MCVIZ_DATA, else ``../shared/data`` beside the repository; None when there is none."""
    d = (visitor_dir if folders_allowed() else "") or os.environ.get("MCVIZ_DATA", "")
    if not d:
        default = REPO.parent / "shared" / "data"
        return default if default.is_dir() else None
    p = Path(d)
    return p if p.is_dir() else None
