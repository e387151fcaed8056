"""Opt-in timing of the server's work (``MCVIZ_TIMING=1``): one line per script run on stderr,

    mcviz-timing {"page": "explore", "photo": "3f2a...", "start": 1796.2e6, "wall_s": 0.21, "cpu_s": 0.25,
                  "stages": {...}}

with the run's start (the clock's time) and its wall time from its start to its end, the
process's CPU seconds meanwhile (every thread: torch's too), and the wall seconds of each stage:
``decode``, ``network`` (the forward pass, the class scores and the out-of-distribution check),
``maps``, ``locator``, ``pooled``, ``figure`` (drawing the maps) and ``send`` (handing the page's
elements to Streamlit, which serialises them). ``benchmarks/app_load.py --server-only`` reads these
lines. Off, every call here costs one attribute test.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional

ON = os.environ.get("MCVIZ_TIMING") == "1"
_run = threading.local()  # a script run executes in one thread


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def begin(page: str) -> None:
    """The start of a script run of ``page``."""
    if ON:
        _run.now = {"page": page, "photo": None, "t": time.perf_counter(), "at": time.time(), "cpu": _cpu()}
        _run.now |= {"stages": {}, "stack": []}


def photo(digest: Optional[str]) -> None:
    """The photo the run works on (its digest), once it is known."""
    run = getattr(_run, "now", None) if ON else None
    if run is not None:
        run["photo"] = digest


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Add the wall time of the block to the run's ``name`` stage, less that of the stages inside it
    (the maps' loader decoding the photo counts as ``decode``)."""
    run = getattr(_run, "now", None) if ON else None
    if run is None:
        yield
        return
    frame = [time.perf_counter(), 0.0]  # start, time of the stages inside
    run["stack"].append(frame)
    try:
        yield
    finally:
        run["stack"].pop()
        took = time.perf_counter() - frame[0]
        run["stages"][name] = run["stages"].get(name, 0.0) + took - frame[1]
        if run["stack"]:
            run["stack"][-1][1] += took


def end() -> None:
    """Write the run's line (nothing when off or when no run began in this thread)."""
    run = getattr(_run, "now", None) if ON else None
    if run is None:
        return
    _run.now = None
    line = {
        "page": run["page"],
        "photo": run["photo"],
        "start": round(run["at"], 4),  # the clock's time, to line up the runs of many sessions
        "wall_s": round(time.perf_counter() - run["t"], 4),
        "cpu_s": round(_cpu() - run["cpu"], 4),
        "stages": {k: round(v, 4) for k, v in run["stages"].items()},
    }
    print("mcviz-timing " + json.dumps(line), file=sys.stderr, flush=True)
