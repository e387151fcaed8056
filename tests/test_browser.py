"""The app in a real browser: Debian's chromium driven by Playwright, against `streamlit run`."""

import json
import os
import time
from pathlib import Path

import pytest

from benchmarks.serving import CHROMIUM, CHROMIUM_ARGS, running_app

from .badfiles import bad_files
from .conftest import REPO
from .test_app import real_photo

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        if os.environ.get("MCVIZ_REQUIRE_DATA") == "1":
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("no /usr/bin/chromium")
    # The shipped checkpoints only: the timing is for the app's default model.
    with running_app(REPO / "app" / "main.py", {"MCVIZ_CHECKPOINTS": "", "MCVIZ_APP_NO_REPO_CHECKPOINTS": ""}) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _pick_option(page, box, n: int, tries: int = 3) -> None:
    """Open a selectbox and click its n-th option; a rerun that lands between the two closes the list,
    so open it again (a busy machine makes that likely)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for k in range(tries):
        box.click()
        try:
            page.get_by_role("option").nth(n).click(timeout=15_000)
            return
        except PlaywrightTimeout:
            if k == tries - 1:
                raise
            page.keyboard.press("Escape")
            page.wait_for_timeout(1000)


# The maps of the upload named ``n`` are drawn: their picture, captioned with its name, has loaded.
MAPS_DRAWN = (
    "n => [...document.querySelectorAll('[data-testid=stImage]')].some(d => "
    "d.textContent.includes('Maps computed for ' + n) && "
    "[...d.querySelectorAll('img')].some(i => i.complete && i.naturalWidth > 0))"
)


def test_upload_heatmaps_compare_channels(server, browser, tmp_path):
    out = REPO / "test-output"
    out.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1900})
    page.goto(server)
    page.get_by_text("Upload a photo of a bird or a car").wait_for(timeout=120_000)
    name, data = real_photo()
    photo = tmp_path / name
    photo.write_bytes(data)
    # A warm-up upload; then, once the page has settled, the timed uploads measure
    # upload-to-heat-maps with the model loaded.
    page.locator("input[type=file]").first.set_input_files(str(photo))
    drawn = MAPS_DRAWN
    page.wait_for_function(drawn, arg=name, timeout=120_000)
    page.get_by_role("heading", name="Predictions").wait_for()
    page.wait_for_load_state("networkidle")
    times = []
    for i in range(5):
        again = tmp_path / f"again{i}-{name}"
        again.write_bytes(data + bytes([i]))  # same picture, new bytes: not served from the cache
        page.wait_for_timeout(1000)  # a user's pause between uploads
        t0 = time.perf_counter()
        page.locator("input[type=file]").first.set_input_files(str(again))
        # the maps of this upload are drawn: the picture captioned with the file's name has loaded
        page.wait_for_function(drawn, arg=again.name, timeout=60_000)
        times.append(time.perf_counter() - t0)
        page.get_by_text(f"Maps computed for {again.name}").wait_for(timeout=60_000)
    elapsed = sorted(times)[len(times) // 2]
    print(
        f"\nupload-to-heat-maps in the browser (model loaded): median {elapsed:.2f} s of "
        + ", ".join(f"{t:.2f}" for t in times)
    )
    assert page.locator(".js-plotly-plot").count() == 0  # a picture, not an interactive figure
    # an uploaded photo (not from the gallery): the part under each peak, from the predicted parts
    page.get_by_text("(parts predicted by the part locator):").wait_for(timeout=60_000)
    page.screenshot(path=str(out / "explore.png"), full_page=True)

    # switch the class's top channels (by effect) off and on again: only the head runs. The default is
    # class-connected: its top channels by effect are the class's own, none of another class's zeros
    import re

    # the channel pickers are in a popover (a closed one costs a tab nothing per upload)
    choose = page.get_by_role("button", name=re.compile("Choose channels"))
    choose.scroll_into_view_if_needed()
    choose.click()
    toggle = page.get_by_text(re.compile(r"and its top \d+ channels by effect"))
    n_off = int(re.search(r"top (\d+)", toggle.text_content()).group(1))
    assert n_off == 3
    off = f"{n_off} channel(s) off"
    off_times = []
    for _ in range(5):
        page.wait_for_timeout(500)
        t0 = time.perf_counter()
        toggle.click()
        page.get_by_text(off).wait_for(timeout=30_000)
        off_times.append(time.perf_counter() - t0)
        page.wait_for_timeout(300)
        toggle.click()
        page.get_by_text(off).wait_for(state="detached", timeout=30_000)
    toggle.click()
    page.get_by_text(off).wait_for(timeout=30_000)
    assert page.locator("[data-testid=stMetric]").filter(has_text="P(").count() == 1
    median_off = sorted(off_times)[len(off_times) // 2]
    print(
        f"switch-off to new probability in the browser: median {median_off:.2f} s of "
        + ", ".join(f"{t:.2f}" for t in off_times)
    )
    (out / "browser-timing.json").write_text(
        json.dumps(
            {"upload_to_heatmaps_s": [round(t, 3) for t in times], "switch_off_s": [round(t, 3) for t in off_times]}
        )
    )
    page.screenshot(path=str(out / "explore-switch-off.png"), full_page=True)
    toggle.click()
    page.get_by_text(off).wait_for(state="detached", timeout=30_000)
    page.keyboard.press("Escape")  # closes the popover

    # a CUB gallery image: every channel map names its part, and the peaks are named in this image
    page.get_by_text("...or pick a CUB test image").wait_for(timeout=60_000)
    _pick_option(page, page.locator("[data-testid=stSelectbox]").filter(has_text="pick a CUB test image"), 1)
    page.get_by_text("(CUB's annotated parts):").wait_for(timeout=120_000)
    # the uploader no longer names the uploaded file once a gallery image is in use
    from playwright.sync_api import expect

    expect(page.get_by_text(again.name)).to_have_count(0, timeout=60_000)
    assert page.get_by_text("peaks ").count() >= 2  # the annotated and the predicted parts
    # the Display popover: one more prediction listed (the slider lies in the maps' section, the table
    # above it, so the whole page is drawn again), then the interactive figure, whose titles carry each
    # channel's usual part
    page.get_by_role("button", name=re.compile("Display")).click()
    assert page.locator("table").first.locator("tbody tr").count() == 5
    page.get_by_role("slider").nth(1).focus()  # Overlay opacity, Top-k predictions
    page.keyboard.press("ArrowRight")
    expect(page.locator("table").first.locator("tbody tr")).to_have_count(6, timeout=60_000)
    page.locator("label").filter(has_text="Interactive maps").first.click()
    page.keyboard.press("Escape")
    page.locator(".js-plotly-plot .heatmaplayer").nth(3).wait_for(timeout=120_000)
    titles = page.locator(".js-plotly-plot .annotation-text").all_text_contents()
    assert any("usually" in t and "%" in t for t in titles), titles  # "channel 474", "usually the crown, 46 %"
    page.screenshot(path=str(out / "explore-parts.png"), full_page=True)

    page.get_by_role("link", name="Compare").click()
    page.get_by_text("Compare models on one image").wait_for(timeout=60_000)
    page.get_by_text("maps computed for").nth(1).wait_for(timeout=120_000)  # one picture per model
    page.get_by_text("In this image (predicted parts):").first.wait_for(timeout=120_000)
    page.locator("label").filter(has_text="Interactive maps").first.click()
    page.locator(".js-plotly-plot").nth(1).wait_for(timeout=120_000)
    titles = page.locator(".js-plotly-plot .annotation-text").all_text_contents()
    assert any("usually" in t and "%" in t for t in titles), titles
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


def test_state_follows_the_photo_and_the_model_in_a_browser(server, browser, tmp_path):
    """Issue 32's state bugs as a user meets them: a class picked for one photo is not kept for the
    next, and the model picked on Explore is still the model after a visit to another page."""
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    page.goto(server)
    page.get_by_text("Upload a photo of a bird or a car").wait_for(timeout=120_000)
    name, data = real_photo()
    first = tmp_path / f"first-{name}"
    first.write_bytes(data)
    page.locator("input[type=file]").first.set_input_files(str(first))
    page.get_by_text(f"Maps computed for {first.name}").wait_for(timeout=120_000)
    box = page.get_by_role("combobox", name="Class to explain")
    predicted = page.locator("table").filter(has_text="probability").locator("td").first.inner_text()
    assert box.input_value() == "the top prediction"
    page.get_by_role("heading", name=f"{predicted}: 3 channels").wait_for(timeout=60_000)
    box.click()
    box.fill("Blue Jay")
    page.get_by_role("option", name="Blue Jay", exact=True).click()
    page.get_by_role("heading", name="Blue Jay: 3 channels").wait_for(timeout=60_000)
    # a new photo: its own top class, not Blue Jay
    second = tmp_path / f"second-{name}"
    second.write_bytes(data + b"\0")
    page.locator("input[type=file]").first.set_input_files(str(second))
    page.get_by_text(f"Maps computed for {second.name}").wait_for(timeout=120_000)
    page.get_by_role("heading", name=f"{predicted}: 3 channels").wait_for(timeout=60_000)
    assert box.input_value() == "the top prediction" and predicted != "Blue Jay"
    # a model picked on Explore is the model on Models and back on Explore
    model = page.get_by_role("combobox", name="Model")
    model.click()
    model.fill("cars-mc-anchor")
    page.get_by_role("option").filter(has_text="cars-mc-anchor").click()
    page.get_by_text("Stanford Cars · MC-Loss, anchored L_div").wait_for(timeout=120_000)
    page.get_by_role("link", name="Models").click()
    page.get_by_text("Every checkpoint this app finds").wait_for(timeout=60_000)
    assert model.input_value().startswith("cars-mc-anchor")
    page.get_by_role("link", name="Explore").click()
    page.get_by_text(f"Maps computed for {second.name}").wait_for(timeout=120_000)
    assert model.input_value().startswith("cars-mc-anchor")
    # the class box names a car now, the car model's prediction for this photo
    car = page.locator("table").filter(has_text="probability").locator("td").first.inner_text()
    assert box.input_value() == "the top prediction" and car != predicted
    page.get_by_role("heading", name=f"{car}: 3 channels").wait_for(timeout=60_000)
    page.close()


def test_a_portrait_gets_the_warning_and_no_bird_parts_in_a_browser(server, browser, tmp_path):
    """Issue 38's first finding as a user meets it: a portrait under the default bird model."""
    import importlib

    portrait = next(
        p
        for p in importlib.import_module("other_photos").write(tmp_path / "other")
        if p.name == "person-grace_hopper.png"
    )
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    page.goto(server)
    page.get_by_text("Upload a photo of a bird or a car").wait_for(timeout=120_000)
    page.locator("input[type=file]").first.set_input_files(str(portrait))
    page.get_by_text(f"Maps computed for {portrait.name}").wait_for(timeout=120_000)
    page.get_by_text("the 200 bird species of CUB-200-2011").first.wait_for(timeout=60_000)
    page.get_by_text("no parts named").wait_for(timeout=60_000)
    assert page.get_by_text("(parts predicted by the part locator):").count() == 0
    page.get_by_role("link", name="Compare").click()
    page.get_by_text("Compare models on one image").wait_for(timeout=60_000)
    page.get_by_text("No predicted parts").first.wait_for(timeout=120_000)
    assert page.get_by_text("In this image (predicted parts):").count() == 0
    page.close()
