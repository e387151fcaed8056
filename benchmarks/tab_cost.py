"""What an upload costs one browser tab's main thread, this app against another revision's, with their
uploads interleaved: this machine's speed drifts by up to a third within an hour, so the two apps are
served at once and one tab of each uploads in turn (the order swapped every round).

    python benchmarks/tab_cost.py --before REV [--rounds 20] [--data ../shared/data]

Starts this app and the app of git revision REV (a temporary worktree, on that revision's library,
with this repository's checkpoints), opens one Explore page on each in Debian's chromium, lets each
upload two warm-up photos, then has them upload CUB test photos of different classes in turn. Each
upload is timed until its maps are drawn (as app_load.py does), and the tab's main-thread time is
Chromium's TaskDuration from before the upload to half a second after its maps are drawn. Prints the
median of each, split as app_load.py does, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
from contextlib import ExitStack
from pathlib import Path

from app_load import APP, REPO, _tab_line, cub_photos, open_pages, upload_all, worktree
from serving import CHROMIUM, CHROMIUM_ARGS, running_app_process


async def interleaved(apps: dict[str, tuple[Path, dict]], photos: list[Path], rounds: int) -> dict:
    """``{label: (main-thread metrics per upload, seconds to maps drawn per upload)}``."""
    from playwright.async_api import async_playwright

    with ExitStack() as stack:
        urls = {k: stack.enter_context(running_app_process(app, env))[0] for k, (app, env) in apps.items()}
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            pages = {k: (await open_pages(browser, url, 1))[0] for k, url in urls.items()}
            for page in pages.values():  # the model loads, then the tab has drawn the whole page once
                for warm in photos[:2]:
                    await upload_all([page], [warm], 120)
            out = {k: ([], []) for k in pages}
            for r in range(rounds):
                order = list(pages.items())[:: 1 if r % 2 == 0 else -1]
                for label, page in order:
                    busy = out[label][0]
                    out[label][1].extend(await upload_all([page], [photos[2 + r]], 120, busy))
                    await asyncio.sleep(0.3)
            await browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", metavar="REV", required=True, help="the git revision whose app to compare with")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mcviz-tab-cost-"))
    photos = cub_photos(Path(args.data), args.rounds + 2, tmp)
    env = {"MCVIZ_CHECKPOINTS": "", "MCVIZ_APP_NO_REPO_CHECKPOINTS": ""}
    old = worktree(args.before, tmp)
    try:
        # PYTHONPATH: that revision's app runs on that revision's mcviz, not the installed one
        before_env = {**env, "MCVIZ_CHECKPOINTS": str(REPO / "checkpoints"), "PYTHONPATH": str(old)}
        apps = {"as shipped": (APP, env), f"the app of {args.before}": (old / "app" / "main.py", before_env)}
        found = asyncio.run(interleaved(apps, photos, args.rounds))
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=False)
    print(f"one tab each, {args.rounds} CUB uploads each, interleaved")
    med = {}
    for label, (busy, walls) in found.items():
        med[label] = statistics.median(b["TaskDuration"] for b in busy)
        print(f"== {label}: upload to maps drawn: median {statistics.median(walls):.3f} s; {_tab_line(busy)}")
    new, (label, old_med) = med.pop("as shipped"), next(iter(med.items()))
    ratio = old_med / new
    print(f"== {label} -> as shipped: a tab's main thread per upload {old_med:.3f} s -> {new:.3f} s ({ratio:.2f}x)")


if __name__ == "__main__":
    main()
