"""The app in a real browser: Debian's chromium driven by Playwright, against `streamlit run`."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .badfiles import bad_files
from .conftest import REPO
from .test_app import _save, real_photo

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        if os.environ.get("MCVIZ_REQUIRE_DATA") == "1":
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("no /usr/bin/chromium")
    ckpts = tmp_path_factory.mktemp("browser-ckpts")
    _save(ckpts / "aa-test-mc.safetensors", "mc", 0)
    _save(ckpts / "ab-test-ce.safetensors", "ce", 1)
    port = _free_port()
    env = dict(os.environ, MCVIZ_CHECKPOINTS=str(ckpts), MCVIZ_APP_NO_REPO_CHECKPOINTS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "app" / "main.py"), "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read().strip() == b"ok":
                    break
            except OSError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("streamlit did not become healthy")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def test_upload_heatmaps_compare_channels(server, browser, tmp_path):
    out = REPO / "test-output"
    out.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1900})
    page.goto(server)
    page.get_by_text("Upload a photo of a bird or a car").wait_for(timeout=120_000)
    name, data = real_photo()
    photo = tmp_path / name
    photo.write_bytes(data)
    # warm-up upload loads the model; the timed one measures upload-to-heat-maps
    page.locator("input[type=file]").first.set_input_files(str(photo))
    page.get_by_text(f"Maps computed for {name}").wait_for(timeout=120_000)
    page.get_by_role("heading", name="Predictions").wait_for()
    second = tmp_path / f"again-{name}"
    second.write_bytes(data + b"\0")  # same picture, new bytes: not served from the cache
    t0 = time.perf_counter()
    page.locator("input[type=file]").first.set_input_files(str(second))
    # this caption is written right after the chart, in the same run: the maps are there
    page.get_by_text(f"Maps computed for {second.name}").wait_for(timeout=60_000)
    page.locator(".js-plotly-plot .heatmaplayer").nth(3).wait_for(timeout=60_000)
    elapsed = time.perf_counter() - t0
    print(f"\nupload-to-heat-maps in the browser: {elapsed:.2f} s")
    (out / "browser-timing.json").write_text(json.dumps({"upload_to_heatmaps_s": round(elapsed, 3)}))
    assert page.locator(".js-plotly-plot .heatmaplayer").count() >= 4
    page.screenshot(path=str(out / "explore.png"), full_page=True)

    page.get_by_role("link", name="Compare").click()
    page.get_by_text("Compare models on one image").wait_for(timeout=60_000)
    page.locator(".js-plotly-plot").nth(1).wait_for(timeout=120_000)
    page.screenshot(path=str(out / "compare.png"), full_page=True)

    page.get_by_role("link", name="Channels").click()
    page.get_by_text("Channels of a class").wait_for(timeout=60_000)
    page.locator(".js-plotly-plot").nth(1).wait_for(timeout=120_000)
    page.screenshot(path=str(out / "channels.png"), full_page=True)

    page.get_by_role("link", name="Explore").click()
    fname, bad, _ = bad_files()["not an image"]
    badpath = tmp_path / fname
    badpath.write_bytes(bad)
    page.locator("input[type=file]").first.set_input_files(str(badpath))
    page.get_by_text("Cannot use this file").wait_for(timeout=60_000)
    page.screenshot(path=str(out / "bad-upload.png"), full_page=True)
    page.close()
