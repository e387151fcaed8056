"""Where a browser tab's main thread goes on an upload: the DevTools CPU profile of one tab uploading
CUB photos one after the other, summed per script and per function (per upload).

    python benchmarks/tab_profile.py [--uploads 4] [--data ../shared/data]

Starts the app (shipped checkpoints), opens one page in Debian's chromium, uploads a warm-up photo,
then profiles ``--uploads`` uploads (each timed until its maps are drawn, as app_load.py does).
"(program)" is the browser's own native work (layout, paint, image decoding); the scripts are
Streamlit's frontend bundles (react-dom, emotion's CSS-in-JS, Streamlit's markdown).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
from pathlib import Path

from app_load import APP, cub_photos, open_pages, upload_all
from serving import CHROMIUM, CHROMIUM_ARGS, running_app_process


async def profile(data: Path, uploads: int) -> collections.Counter:
    """Microseconds of main-thread samples per (function, script) over ``uploads`` uploads."""
    from playwright.async_api import async_playwright

    files = cub_photos(data, uploads + 1, Path(tempfile.mkdtemp(prefix="mcviz-prof-")))
    with running_app_process(APP, {}) as (url, _):
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            pages = await open_pages(browser, url, 1)
            await upload_all(pages, files[:1], 120)
            await asyncio.sleep(2)
            cdp = await pages[0].context.new_cdp_session(pages[0])
            await cdp.send("Profiler.enable")
            await cdp.send("Profiler.setSamplingInterval", {"interval": 200})
            await cdp.send("Profiler.start")
            for f in files[1:]:
                await upload_all(pages, [f], 120)
                await asyncio.sleep(1)
            prof = (await cdp.send("Profiler.stop"))["profile"]
            await browser.close()
    nodes = {n["id"]: n["callFrame"] for n in prof["nodes"]}
    spent: collections.Counter = collections.Counter()
    for sample, delta in zip(prof["samples"], prof["timeDeltas"]):
        frame = nodes[sample]
        spent[(frame["functionName"] or "(anonymous)", frame["url"].rsplit("/", 1)[-1])] += delta
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uploads", type=int, default=4)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = ap.parse_args()
    spent = asyncio.run(profile(Path(args.data), args.uploads))
    per = 1000.0 * args.uploads  # microseconds -> ms per upload
    busy = sum(v for (fn, _), v in spent.items() if fn != "(idle)")
    print(f"a tab's main thread per upload, sampled: {busy / per:.0f} ms busy")
    scripts: collections.Counter = collections.Counter()
    for (fn, url), v in spent.items():
        if fn != "(idle)":
            scripts[url or fn] += v
    for name, v in scripts.most_common(10):
        print(f"  {v / per:7.1f} ms  {name}")


if __name__ == "__main__":
    main()
