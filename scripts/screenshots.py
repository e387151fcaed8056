"""Screenshots of every app page, on the shipped checkpoints, into docs/screenshots/.

    python -m scripts.screenshots [--data ../shared/data]     (from the repository root)

Starts the app, drives Debian's chromium with Playwright, uploads a CUB test photo and shows the
parts the part locator predicts on it (explore-predicted-parts.png) and, for a class-connected
default, the prediction as its channels' evidence (explore-evidence.png), then picks a gallery image
to show its annotated parts beside the predicted ones (explore-parts.png) on every page, and
switches that class's top channels off (explore-switch-off.png); last, a portrait, which gets the
out-of-distribution warning and no bird parts (explore-ood.png).
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from benchmarks.serving import CHROMIUM, CHROMIUM_ARGS, running_app

REPO = Path(__file__).resolve().parents[1]


def explore_pages(page, photo: Path, out: Path, gallery_option: int) -> None:
    """Explore: an upload with its maps, its evidence and its predicted parts; a gallery image with its
    annotated parts; that class's top 10 channels switched off."""
    page.locator("input[type=file]").first.set_input_files(str(photo))
    page.get_by_text(f"Maps computed for {photo.name}").wait_for(timeout=120_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "explore.png"))
    # the default model is class-connected: the class picked and the top prediction as their channels' evidence
    evidence = page.get_by_text("Why this prediction: each channel's evidence")
    if evidence.count():
        evidence.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(out / "explore-evidence.png"))
    # an uploaded photo: the part locator's parts, and the part each channel's peak hits in it
    page.get_by_text("(parts predicted by the part locator):").wait_for(timeout=120_000)
    page.get_by_text("Show the parts on the photo").click()
    page.get_by_text("parts predicted by the part locator (green").wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    page.get_by_text("(parts predicted by the part locator):").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(out / "explore-predicted-parts.png"), full_page=True)
    # a gallery image: its annotated parts beside the predicted ones (the toggle stays on)
    gallery = page.locator("[data-testid=stSelectbox]").filter(has_text="pick a CUB test image")
    gallery.evaluate("e => e.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(500)
    gallery.click()
    page.get_by_role("option").nth(gallery_option).click()
    page.get_by_text("(CUB's annotated parts):").wait_for(timeout=120_000)
    page.get_by_text("CUB's annotated parts (blue)").wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    page.get_by_text("(parts predicted by the part locator):").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(out / "explore-parts.png"), full_page=True)
    # the class's top channels by effect switched off: the new prediction beside the old (the pickers
    # are in the "Choose channels" popover, closed again for the picture)
    page.get_by_role("button", name=re.compile("Choose channels")).click()
    toggle = page.get_by_text(re.compile(r"and its top \d+ channels by effect"))
    n = re.search(r"top (\d+)", toggle.text_content()).group(1)
    toggle.click()
    page.get_by_text(f"{n} channel(s) off").wait_for(timeout=60_000)
    page.keyboard.press("Escape")
    page.wait_for_timeout(1500)
    page.get_by_text("Switch channels off").scroll_into_view_if_needed()
    page.screenshot(path=str(out / "explore-switch-off.png"))


def portrait_page(page, out: Path) -> None:
    """A portrait under the default bird model: the warning, the maps, and no bird parts."""
    from scripts.other_photos import write  # run as `python -m scripts.screenshots` from the repository root

    with tempfile.TemporaryDirectory() as tmp:
        portrait = next(p for p in write(tmp) if p.name == "person-grace_hopper.png")
        page.locator("input[type=file]").first.set_input_files(str(portrait))
        page.get_by_text(f"Maps computed for {portrait.name}").wait_for(timeout=120_000)
    page.get_by_text("no parts named").wait_for(timeout=60_000)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "explore-ood.png"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--image-line", type=int, default=1040, help="line of CUB images.txt to upload")
    ap.add_argument("--gallery", type=int, default=3, help="gallery option to pick for the part pictures")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    cub = Path(args.data) / "CUB_200_2011"
    rel = (cub / "images.txt").read_text().splitlines()[args.image_line - 1].split()[1]
    photo = cub / "images" / rel
    out = REPO / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with (
        running_app(REPO / "app" / "main.py", {"MCVIZ_DATA": str(args.data)}) as url,
        sync_playwright() as p,
        tempfile.TemporaryDirectory(),
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        page.goto(url)
        page.get_by_text("Upload a photo of a bird or a car").wait_for(timeout=120_000)
        explore_pages(page, photo, out, args.gallery)
        portrait_page(page, out)
        for name, marker in (
            ("Compare", "Compare models on one image"),
            ("Channels", "Channels of a class"),
            ("Models", "Every checkpoint this app finds"),
        ):
            page.get_by_role("link", name=name).click()
            page.get_by_text(marker).first.wait_for(timeout=60_000)
            page.wait_for_timeout(1000)
            # until the script has finished (the header's "Stop" button goes away)
            page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=120_000)
            page.wait_for_timeout(2000)
            page.screenshot(path=str(out / f"{name.lower()}.png"), full_page=name in ("Compare", "Channels"))
        browser.close()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
