"""keep_freed_memory: freed tensor memory serves the next allocation instead of fresh pages."""

import os
import platform
import subprocess
import sys

import pytest

from mcviz.memory import keep_freed_memory

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the knob exists in glibc only")
MB100 = 25_000_000  # float32 elements: far above glibc's largest mmap threshold (32 MiB)


_PROBE = (
    """
import resource, sys, torch
from mcviz.memory import keep_freed_memory
assert keep_freed_memory(sys.argv[1] == "keep")
faults = []
for _ in range(8):  # allocated, touched, freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(%d)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults)
"""
    % MB100
)


def _faults(mode: str) -> list[int]:
    """Page faults of eight 100 MB allocations in a row, in a fresh interpreter: in a process with
    many threads (this test session's servers and loaders) glibc may move the main thread to a
    secondary arena, whose heaps are at most 64 MiB, so a 100 MB block is mapped afresh whatever
    the setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], env=env, capture_output=True, text=True, check=True)
    return [int(v) for v in out.stdout.split()]


@glibc
def test_freed_memory_is_reused():
    # glibc's default: a fresh mapping each time, one fault per 4 KiB page (24,414 pages)
    assert min(_faults("default")) > 20_000
    # kept: the heap grows over the first allocations, then a freed block serves the next one
    kept = _faults("keep")
    assert max(kept[-3:]) < 1_000, kept


@glibc
def test_user_malloc_settings_are_kept(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "65536")
    assert not keep_freed_memory(True)
    assert keep_freed_memory(True, respect_env=False)


def test_cli_switches_it_on(monkeypatch, tmp_path):
    import mcviz.cli as cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda *a, **k: calls.append(a) or True)
    missing = str(tmp_path / "missing.safetensors")
    assert cli.main(["eval", missing, "--dataset", "cub", "--root", str(tmp_path)]) == 2
    assert calls == [()]
