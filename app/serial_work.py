"""Model work shared by the app's sessions on one server.

Eight forward passes at once on a 2-core machine each get a sliver of the cores, and all of
them finish late. :class:`SerialWork` runs the jobs of all sessions a few at a time (``slots``),
in the order they arrived, and computes a job that several sessions ask for at the same moment
(the same gallery photo) only once.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any, Callable, Hashable

__all__ = ["SerialWork", "serving_threads"]


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
