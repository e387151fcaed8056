"""keep_freed_memory: freed tensor memory serves the next allocation instead of fresh pages."""

import platform
import resource

import pytest
import torch

from mcviz.memory import keep_freed_memory

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the knob exists in glibc only")
MB100 = 25_000_000  # float32 elements: far above glibc's largest mmap threshold (32 MiB)


def _faults_of_second_allocation() -> int:
    for _ in range(2):  # allocated, touched and freed (the heap settles after the first round)
        torch.ones(MB100)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(MB100)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc
def test_freed_memory_is_reused(monkeypatch):
    for var in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_"):
        monkeypatch.delenv(var, raising=False)
    try:
        assert keep_freed_memory(False)
        # glibc's default: a fresh mapping each time, one fault per 4 KiB page (24,414 pages)
        assert _faults_of_second_allocation() > 20_000
        assert keep_freed_memory(True)
        assert _faults_of_second_allocation() < 1_000
    finally:
        keep_freed_memory(True)


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
