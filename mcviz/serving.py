"""Serving the app: model work shared by many users of one server (the app's sessions), and
starting the app in the background (tests, screenshots, benchmarks).

Eight forward passes at once on a 2-core machine each get a sliver of the cores, and all of
them finish late. :class:`SerialWork` runs the jobs of all sessions a few at a time (``slots``),
in the order they arrived, and computes a job that several sessions ask for at the same moment
(the same gallery photo) only once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import OrderedDict
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator, Optional

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "SerialWork", "running_app", "running_app_process", "serving_threads"]


def serving_threads() -> int:
    """torch's thread count for serving: ``$MCVIZ_THREADS``, else one per core (the queue lets
    only a few jobs run at once, so each may use them all)."""
    n = os.environ.get("MCVIZ_THREADS")
    return max(1, int(n) if n else (os.cpu_count() or 1))


class SerialWork:
    """Run jobs one at a time (or ``slots`` at a time) in arrival order; identical keys share
    one computation.

    ``run(key, fn)`` returns ``fn()``. While a job with the same ``key`` is queued or running,
    a later caller waits for its result instead of queueing a second computation; the last
    ``keep`` results are kept for callers that arrive just after.
    """

    def __init__(self, keep: int = 32, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError("slots must be >= 1")
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._serving = 0  # the next ticket allowed to start
        self._slots = slots
        self._pending: dict[Hashable, Future] = {}
        self._done: OrderedDict[Hashable, Future] = OrderedDict()
        self._keep = keep
        self.computed = 0  # jobs actually run (for tests and the benchmark)
        self.max_running = 0
        self._running = 0

    def run(self, key: Hashable, fn: Callable[[], Any]) -> Any:
        with self._cond:
            fut = self._done.get(key) or self._pending.get(key)
            if fut is not None:
                if key in self._done:
                    self._done.move_to_end(key)
                owner = False
            else:
                fut = Future()
                self._pending[key] = fut
                ticket = self._next_ticket
                self._next_ticket += 1
                owner = True
        if not owner:
            return fut.result()
        with self._cond:
            self._cond.wait_for(lambda: self._serving == ticket and self._running < self._slots)
            self._serving += 1
            self._running += 1
            self._cond.notify_all()
            self.max_running = max(self.max_running, self._running)
        try:
            fut.set_result(fn())
        except BaseException as exc:  # the waiting callers get the same error
            fut.set_exception(exc)
        finally:
            with self._cond:
                self._running -= 1
                self.computed += 1
                self._pending.pop(key, None)
                if fut.exception() is None:
                    self._done[key] = fut
                    while len(self._done) > self._keep:
                        self._done.popitem(last=False)
                self._cond.notify_all()
        return fut.result()


# -- the app in the background ---------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run"]


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
def running_app_process(app: Path, env: Optional[dict] = None,
                        timeout: float = 120) -> Iterator[tuple[str, subprocess.Popen]]:
    """As :func:`running_app`, yielding ``(url, server process)`` (e.g. to watch its memory)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        # from the repository root, where Streamlit reads .streamlit/config.toml (the upload limit)
        cwd=str(Path(app).resolve().parent.parent), start_new_session=True)
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
