"""Starting the app in the background for the tests, the screenshots and the benchmarks, and the
flags of the Debian chromium that drives it. Not used by the app itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "free_port", "running_app", "running_app_process"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(app: Path, env: Optional[dict] = None, timeout: float = 120) -> Iterator[str]:
    """``streamlit run APP`` (the app's ``main.py``) on 127.0.0.1; yields its URL; kills its
    process group after."""
    with running_app_process(app, env, timeout) as (url, _):
        yield url


@contextmanager
def running_app_process(
    app: Path, env: Optional[dict] = None, timeout: float = 120, log: Optional[Path] = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """As :func:`running_app`, yielding ``(url, server process)`` (e.g. to watch its memory); with
    ``log`` the server's stderr goes to that file (e.g. its ``MCVIZ_TIMING`` lines)."""
    err = open(log, "w") if log else subprocess.DEVNULL
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(app),
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        # as scripts/start.sh serves it: two malloc arenas for all the sessions' threads
        env={"MALLOC_ARENA_MAX": "2", **os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=err,
        # from the repository root, where Streamlit reads .streamlit/config.toml (the upload limit)
        cwd=str(Path(app).resolve().parent.parent),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read().strip() == b"ok":
                    break
            except OSError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("streamlit did not become healthy")
            time.sleep(0.5)
        yield url, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if log:
            err.close()
