"""Many sessions at once: N browsers upload at the same moment to one `streamlit run`.

Starts the app on 127.0.0.1 (shipped checkpoints, default model), opens N pages in Debian's
chromium (Playwright), lets one warm-up upload load the model, then has every page upload
its own file at once and times each from the upload to its heat maps drawn (the figure of
that file, as tests/test_browser.py does). Scenarios: N different CUB test photos, and N
48-megapixel JPEGs generated here (each with its own bytes, so none is served from another
session's result). Prints the slowest and median times, the server's resident memory
(baseline before, peak during, polled from /proc every 50 ms), the server's CPU seconds per
upload, and each tab's main-thread time per upload (Chromium's TaskDuration, read through the
DevTools protocol before the upload and half a second after its maps are drawn). Loopback only; bounded by
--timeout per scenario.

    python benchmarks/app_load.py [--sessions 16] [--scenario cub 48mp] [--data ../shared/data] [--before REV]
                                   [--server-cores 0] [--rounds 1]

With --server-cores 0 the server runs on core 0 and the browsers on the others (taskset), and the
server's own timing (MCVIZ_TIMING=1, one line per script run: app/timing.py) gives the time from the
first upload's script run starting to the last one's maps being sent, and each stage's seconds.

With --before REV the same scenarios also run against the app of git revision REV (checked out in
a temporary worktree, on that revision's library, with this repository's checkpoints), and the
ratios are printed: the way to measure a change, with no switch for it in the app's code.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np
from serving import CHROMIUM, CHROMIUM_ARGS, running_app_process

APP = Path(__file__).resolve().parents[1] / "app" / "main.py"

REPO = Path(__file__).resolve().parents[1]

# The maps of the upload named n are drawn: their picture (captioned with the name) has loaded, or, on
# a revision that draws them with plotly, the figure whose meta names the upload has its heat maps.
DRAWN = (
    "n => [...document.querySelectorAll('[data-testid=stImage]')].some(d => "
    "d.textContent.includes('Maps computed for ' + n) && "
    "[...d.querySelectorAll('img')].some(i => i.complete && i.naturalWidth > 0)) || "
    "[...document.querySelectorAll('.js-plotly-plot')].some("
    "d => d.layout && d.layout.meta === n && d.querySelectorAll('.heatmaplayer').length >= 2)"
)
# Waits in the page for DRAWN without polling: 16 tabs each evaluating DRAWN every 50 ms took the cores
# the tabs and the server were being timed on. It checks again when the page changes or an image loads.
WHEN_DRAWN = (
    "n => new Promise(resolve => { const drawn = " + DRAWN + "; const check = () => { if (drawn(n)) { "
    "seen.disconnect(); document.removeEventListener('load', check, true); resolve(true); } }; "
    "const seen = new MutationObserver(check); "
    "seen.observe(document.body, {childList: true, subtree: true, characterData: true}); "
    "document.addEventListener('load', check, true); check(); })"
)
# Chromium's busy time of a tab, and the parts the DevTools Performance domain splits out of it
TAB_METRICS = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class MemoryWatch:
    """Peak resident memory of a process, polled in a thread."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid, self.every, self.peak = pid, every, 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                return
            time.sleep(self.every)

    def __enter__(self) -> "MemoryWatch":
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


def big_jpeg(path: Path, seed: int, width: int = 8000, height: int = 6000) -> None:
    """A photo-like 48-megapixel JPEG: smooth colour fields plus fine noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((width, height), Image.BICUBIC)
    noise = Image.effect_noise((width, height), 12).convert("RGB")
    img = Image.blend(img, noise, 0.15)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=88)
    path.write_bytes(buf.getvalue() + bytes([seed % 256]))


def cub_photos(data: Path, n: int, folder: Path) -> list[Path]:
    """Copies (to ``folder``, for the upload) of n CUB test photos of n different classes."""
    lines = (data / "CUB_200_2011" / "images.txt").read_text().split("\n")
    split = dict(ln.split() for ln in (data / "CUB_200_2011" / "train_test_split.txt").read_text().split("\n") if ln)
    out, seen = [], set()
    for ln in lines:
        if not ln.strip():
            continue
        i, rel = ln.split()
        cls = rel.split("/")[0]
        if split[i] == "0" and cls not in seen:
            seen.add(cls)
            dst = folder / f"s{len(out)}-{Path(rel).name}"
            dst.write_bytes((data / "CUB_200_2011" / "images" / rel).read_bytes())
            out.append(dst)
            if len(out) == n:
                return out
    raise SystemExit(f"fewer than {n} CUB test classes under {data}")


def _copies(photo: Path, n: int) -> list[Path]:
    """n copies of ``photo`` with their own bytes (cold0-..., cold1-...), beside it."""
    data, out = photo.read_bytes(), []
    for i in range(n):
        out.append(photo.with_name(f"cold{i}-{photo.name}"))
        out[-1].write_bytes(data + bytes([i]))
    return out


async def open_pages(browser, url: str, n: int):
    pages = []
    for _ in range(n):
        page = await browser.new_page(viewport={"width": 1400, "height": 1400})
        await page.goto(url)
        await page.get_by_text("Upload a photo of a bird or a car").wait_for(timeout=120_000)
        pages.append(page)
    return pages


async def main_thread_s(page) -> dict[str, float]:
    """The tab's main-thread busy time so far (Chromium's TaskDuration, through the DevTools protocol),
    with its JavaScript (Streamlit's redraw and any plotly), layout and style parts."""
    cdp = getattr(page, "_mcviz_cdp", None)
    if cdp is None:
        cdp = page._mcviz_cdp = await page.context.new_cdp_session(page)
        await cdp.send("Performance.enable")
    metrics = {e["name"]: e["value"] for e in (await cdp.send("Performance.getMetrics"))["metrics"]}
    return {k: metrics.get(k, 0.0) for k in TAB_METRICS}


async def upload_all(pages, files: list[Path], timeout_s: float, main_thread: Optional[list] = None) -> list[float]:
    """Each page uploads its file at once; the wall time of each until its maps are drawn. With
    ``main_thread`` (a list), each tab's main-thread seconds for its upload are appended to it."""

    async def one(page, f: Path) -> float:
        busy0 = await main_thread_s(page) if main_thread is not None else {}
        t0 = time.perf_counter()
        await page.locator("input[type=file]").first.set_input_files(str(f))
        await asyncio.wait_for(page.evaluate(WHEN_DRAWN, f.name), timeout_s)
        wall = time.perf_counter() - t0
        if main_thread is not None:
            await asyncio.sleep(0.5)  # the tab finishes laying out what it drew
            busy = await main_thread_s(page)
            main_thread.append({k: busy[k] - busy0[k] for k in TAB_METRICS})
        return wall

    return list(await asyncio.gather(*(one(p, f) for p, f in zip(pages, files))))


def make_scenarios(args, uploads: int, tmp: Path) -> tuple[dict[str, list[Path]], Path]:
    """``uploads`` files for each of ``args.scenario`` (CUB test photos of different classes, 48-megapixel
    JPEGs), written to ``tmp``, and a CUB photo for the warm-up upload."""
    data, scenarios = Path(args.data), {}
    if "cub" in args.scenario:
        scenarios["cub"] = cub_photos(data, uploads, tmp)
    if "48mp" in args.scenario:
        scenarios["48mp"] = [tmp / f"big{i}.jpg" for i in range(uploads)]
        for i, f in enumerate(scenarios["48mp"]):
            big_jpeg(f, i)
    return scenarios, cub_photos(data, uploads + 1, tmp)[-1]


async def side_by_side(args, serve, env: dict, tmp: Path, what: str) -> None:
    """``await serve(env, app)`` (``{scenario: (seconds, peak MB)}``) on this app and, with ``args.before``,
    on that revision's (a worktree in ``tmp``, with this repository's checkpoints); then the ratios, the
    seconds named ``what``."""
    setups = {"as shipped": (env, APP)}
    if args.before:
        old = worktree(args.before, tmp)
        # PYTHONPATH: that revision's app runs on that revision's mcviz, not the installed one
        extra = {"MCVIZ_CHECKPOINTS": str(REPO / "checkpoints"), "PYTHONPATH": str(old)}
        setups[f"the app of {args.before}"] = ({**env, **extra}, old / "app" / "main.py")
    results = {}
    for label, (e, app) in setups.items():
        print(f"== {label}")
        results[label] = await serve(e, app)
    new = results.pop("as shipped")
    for label, old_r in results.items():
        print(f"== {label} -> as shipped")
        for name in new:
            print(
                f"  {name}: {what} {old_r[name][0]:.2f} s -> {new[name][0]:.2f} s "
                f"({old_r[name][0] / new[name][0]:.1f}x), peak memory {old_r[name][1]:.0f} MB -> {new[name][1]:.0f} MB"
            )
    if args.before:
        import subprocess

        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tmp / "before")], check=False)


async def run(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mcviz-load-"))
    scenarios, warm = make_scenarios(args, args.sessions * args.rounds, tmp)
    env = {"MCVIZ_CHECKPOINTS": "", "MCVIZ_APP_NO_REPO_CHECKPOINTS": ""}
    await side_by_side(args, lambda e, app: one_server(args, e, scenarios, warm, app), env, tmp, "slowest")


def worktree(rev: str, tmp: Path) -> Path:
    """A checkout of ``rev`` (without its checkpoints: it is given this repository's)."""
    import subprocess

    path = tmp / "before"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), rev], check=True, capture_output=True
    )
    return path


def _pin(pid: int, cores: str) -> None:
    """Every thread of process ``pid`` (and those it starts later) onto ``cores`` (e.g. "0")."""
    import subprocess

    subprocess.run(["taskset", "-a", "-cp", cores, str(pid)], check=True, capture_output=True)


def server_runs(log: Path, since: float) -> list[dict]:
    """The server's ``MCVIZ_TIMING`` lines (app/timing.py) of Explore runs that started after ``since``."""
    import json

    runs, text, decoder = [], log.read_text(), json.JSONDecoder()
    # the server's threads write at once: a line may hold another's start, so read each record where it begins
    at = text.find("mcviz-timing ")
    while at >= 0:
        try:
            r, _ = decoder.raw_decode(text, at + len("mcviz-timing "))
        except ValueError:
            r = None
        if r and r["page"] == "explore" and r["photo"] and r["start"] >= since:
            runs.append(r)
        at = text.find("mcviz-timing ", at + 1)
    return runs


def server_answer(runs: list[dict]) -> tuple[float, float, dict[str, float]]:
    """``(first run's start to last run's end, the slowest run, the median seconds of each stage)``
    of the runs that computed the uploads' maps (one per photo: its slowest run)."""
    by_photo: dict[str, dict] = {}
    for r in runs:
        if r["photo"] not in by_photo or r["wall_s"] > by_photo[r["photo"]]["wall_s"]:
            by_photo[r["photo"]] = r
    done = list(by_photo.values())
    span = max(r["start"] + r["wall_s"] for r in done) - min(r["start"] for r in done)
    stages = sorted({k for r in done for k in r["stages"]})
    return (
        span,
        max(r["wall_s"] for r in done),
        {k: statistics.median(r["stages"].get(k, 0.0) for r in done) for k in stages},
    )


def _tab_line(busy: list[dict]) -> str:
    med = {k: statistics.median(b[k] for b in busy) for k in TAB_METRICS}
    other = med["TaskDuration"] - med["ScriptDuration"] - med["LayoutDuration"] - med["RecalcStyleDuration"]
    return (
        f"a tab's main thread per upload: median {med['TaskDuration']:.3f} s (JavaScript {med['ScriptDuration']:.3f}, "
        f"layout {med['LayoutDuration']:.3f}, style {med['RecalcStyleDuration']:.3f}, other {other:.3f}: paint, "
        f"image decoding, garbage collection), most {max(b['TaskDuration'] for b in busy):.3f} s"
    )


async def one_server(args, env: dict, scenarios: dict, warm: Path, app: Path = APP) -> dict:
    """Start the app with ``env``, run every scenario; ``{scenario: (slowest s, peak MB)}``. With
    ``args.server_cores`` the server runs on those cores and the browsers on the others, and the
    server's own timing lines give its answer to the simultaneous uploads."""
    from playwright.async_api import async_playwright

    out = {}
    log = Path(tempfile.mkdtemp(prefix="mcviz-server-")) / "server.log"
    if args.server_cores:
        env = {**env, "MCVIZ_TIMING": "1", "MCVIZ_THREADS": str(len(args.server_cores.split(",")))}
    with running_app_process(app, env, log=log) as (url, proc):
        if args.server_cores:
            _pin(proc.pid, args.server_cores)
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            pages = await open_pages(browser, url, args.sessions)
            t = (await upload_all(pages[:1], [warm], args.timeout))[0]
            print(
                f"{args.sessions} sessions on {url}; warm-up upload (model load) {t:.1f} s; {os.cpu_count()} cores"
                + (f"; server on core(s) {args.server_cores}, browsers on the others" if args.server_cores else "")
            )
            # every page's first upload also loads the page's scripts in that tab: timed on its own
            cold = await upload_all(pages, _copies(warm, len(pages)), args.timeout)
            print(
                f"  first upload of {len(pages)} new sessions at once: "
                f"slowest {max(cold):5.2f} s, median {statistics.median(cold):5.2f} s"
            )
            for name, files in scenarios.items():
                base, cpu0, busy, since = rss_mb(proc.pid), cpu_s(proc.pid), [], time.time()
                times = []
                with MemoryWatch(proc.pid) as mem:
                    for r in range(args.rounds):  # each round: every tab uploads its next photo at once
                        n = len(pages)
                        times += await upload_all(pages, files[r * n : (r + 1) * n], args.timeout, busy)
                cpu = cpu_s(proc.pid) - cpu0
                mb = sum(f.stat().st_size for f in files) / len(files) / 1e6
                print(
                    f"  {name:5s} ({mb:.2f} MB per file): slowest {max(times):5.2f} s, median "
                    f"{statistics.median(times):5.2f} s, fastest {min(times):5.2f} s; server memory "
                    f"{base:.0f} MB before, peak {mem.peak:.0f} MB; server CPU {cpu:.1f} s "
                    f"({cpu / len(files):.3f} s per upload); {_tab_line(busy)}"
                )
                if args.server_cores:
                    span, slowest, stages = server_answer(server_runs(log, since))
                    print(
                        f"        the server alone: {len(files)} uploads answered in {span:.2f} s (first script run's "
                        f"start to last one's end; slowest run {slowest:.2f} s); median seconds per run: "
                        + ", ".join(f"{k} {v:.3f}" for k, v in stages.items())
                    )
                out[name] = (max(times), mem.peak)
                await asyncio.sleep(2)
            await browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=16)
    ap.add_argument("--scenario", nargs="+", choices=["cub", "48mp"], default=["cub", "48mp"])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--timeout", type=float, default=120, help="seconds each scenario may take")
    ap.add_argument(
        "--rounds", type=int, default=1, help="uploads per tab and scenario, one round after the other (medians)"
    )
    ap.add_argument("--before", metavar="REV", help="also run the app of git revision REV, and print the ratios")
    ap.add_argument(
        "--server-cores",
        metavar="CORES",
        help="pin the server to these cores (taskset list, e.g. 0) and the browsers to the others, and report "
        "the server's own answer time from its MCVIZ_TIMING lines",
    )
    args = ap.parse_args()
    if not 1 <= args.sessions <= 16:
        raise SystemExit("--sessions must be 1..16")
    if args.server_cores:
        server = {int(c) for c in args.server_cores.split(",")}
        others = set(os.sched_getaffinity(0)) - server
        if not others:
            raise SystemExit("--server-cores must leave a core for the browsers")
        os.sched_setaffinity(0, others)  # the browsers started from here run on the other cores
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
