"""Keep freed tensor memory inside the process instead of handing it back to the kernel.

glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap``
and returns it with ``munmap`` when freed. A batch of 64 images at 224 px makes activations of
~100 MB per layer, so every layer of every batch maps new pages and the kernel zero-fills them
one page fault at a time: measured on this machine, lite0 inference at batch 64 spent more
system time than user time (12.9 s against 11.6 s), and ``mcviz eval`` ran at half speed.
With mmap off and a high trim threshold the freed blocks stay in the heap and the next batch
reuses them (system time 0.0 s at batch 16). The price is a resident size that stays at the
peak of the run, which a command that ends anyway, or a server that runs the same models
again, pays already.

The main thread gets this; a thread that glibc has moved to a secondary arena (under lock
contention) keeps mapping blocks over that arena's 64 MiB heaps, whatever the setting.

Only glibc has these knobs; elsewhere :func:`keep_freed_memory` does nothing. Anyone who tunes
glibc through its own environment variables (``MALLOC_MMAP_MAX_``, ``MALLOC_TRIM_THRESHOLD_``...)
keeps their settings.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["keep_freed_memory"]

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# glibc's defaults, restored by keep_freed_memory(False)
_DEFAULT_MMAP_MAX = 65536
_DEFAULT_TRIM = 128 * 1024
_KEEP_TRIM = 1 << 30  # hand memory back only when a GiB lies free at the top of the heap

_ENV = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def _mallopt():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None


def keep_freed_memory(enabled: bool = True, respect_env: bool = True) -> bool:
    """Make the freed memory of one batch serve the next (``enabled``), or restore glibc's defaults.

    Returns whether the setting was applied: False off glibc, or when ``respect_env`` and the
    user set one of glibc's ``MALLOC_*`` tuning variables. Forked data-loader workers inherit it.
    """
    mallopt = _mallopt()
    if mallopt is None or (respect_env and any(v in os.environ for v in _ENV)):
        return False
    mmap_max, trim = (0, _KEEP_TRIM) if enabled else (_DEFAULT_MMAP_MAX, _DEFAULT_TRIM)
    return bool(mallopt(_M_MMAP_MAX, mmap_max)) and bool(mallopt(_M_TRIM_THRESHOLD, trim))
