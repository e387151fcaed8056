"""SerialWork: one job at a time, in arrival order, identical jobs computed once."""

import threading
import time

import pytest

from serial_work import SerialWork


def test_concurrent_jobs_never_overlap_and_keep_arrival_order():
    work = SerialWork()
    inside, order, lock = [0], [], threading.Lock()
    peak = [0]

    def job(i):
        def fn():
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            order.append(i)
            time.sleep(0.02)
            with lock:
                inside[0] -= 1
            return i * 10

        return fn

    results = {}
    threads = []
    for i in range(8):
        t = threading.Thread(target=lambda i=i: results.__setitem__(i, work.run(("img", i), job(i))))
        threads.append(t)
        t.start()
        time.sleep(0.002)  # arrive in order 0..7
    for t in threads:
        t.join(10)
    assert results == {i: i * 10 for i in range(8)}
    assert peak[0] == 1 and work.max_running == 1
    assert order == list(range(8))
    assert work.computed == 8


def test_same_key_at_once_is_computed_once():
    work = SerialWork()
    calls = []
    gate = threading.Event()

    def slow():
        calls.append(1)
        gate.wait(5)
        return "maps"

    out = []
    threads = [threading.Thread(target=lambda: out.append(work.run("gallery.jpg", slow))) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join(10)
    assert out == ["maps"] * 6 and len(calls) == 1 and work.computed == 1
    # a caller just after gets the kept result
    assert work.run("gallery.jpg", lambda: pytest.fail("recomputed")) == "maps"


def test_an_error_reaches_every_waiter_and_is_not_kept():
    work = SerialWork()

    def bad():
        time.sleep(0.05)
        raise ValueError("corrupt image")

    errors = []

    def call():
        try:
            work.run("x", bad)
        except ValueError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == ["corrupt image"] * 3
    assert work.run("x", lambda: "ok now") == "ok now"  # a failure is not cached
    # and the queue still moves
    assert work.run("y", lambda: 1) == 1


def test_kept_results_are_bounded():
    work = SerialWork(keep=2)
    for k in "abc":
        work.run(k, lambda k=k: k)
    assert work.run("a", lambda: "again") == "again"  # evicted, computed anew
    assert work.run("c", lambda: pytest.fail("recomputed")) == "c"


def test_slots_cap_the_jobs_running_at_once():
    work = SerialWork(slots=2)
    gate = threading.Event()
    started = []

    def job(i):
        def fn():
            started.append(i)
            gate.wait(5)
            return i

        return fn

    threads = [threading.Thread(target=lambda i=i: work.run(i, job(i))) for i in range(5)]
    for t in threads:
        t.start()
        time.sleep(0.01)
    time.sleep(0.1)
    assert started == [0, 1]  # two at once, in arrival order
    gate.set()
    for t in threads:
        t.join(10)
    assert work.max_running == 2 and sorted(started) == list(range(5)) and started[:2] == [0, 1]
    with pytest.raises(ValueError):
        SerialWork(slots=0)


def test_protocol_clients_upload_at_once_and_each_gets_the_maps_of_its_photo(tmp_path):
    """benchmarks/server_load.py's clients (Streamlit's own protocol, no browser): two sessions upload
    different photos at the same moment, and each script run sends the maps picture of its own photo."""
    import asyncio

    import server_load  # benchmarks/ (tests/conftest.py)
    from app_load import APP, cub_photos
    from serving import running_app_process

    from .conftest import need_data

    data = need_data("CUB_200_2011").parent

    files = cub_photos(data, 4, tmp_path)

    async def go() -> list[float]:
        env = {"STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION": "false"}
        with running_app_process(APP, env) as (url, _):
            clients = [server_load.Client(url) for _ in files[:2]]
            await asyncio.gather(*(c.open() for c in clients))
            times = (await server_load.upload_together(clients, files[:2]))[0]
            # the app takes each file out of its uploader (a new one under a new key): nothing to replace
            assert not any(c.holding for c in clients)
            times += (await server_load.upload_together(clients, files[2:]))[0]
            await asyncio.gather(*(c.close() for c in clients))
            return times

    # Client.upload raises when no run draws the maps of its photo
    assert len(asyncio.run(go())) == 4
