"""The server on its own: N protocol-level clients upload at the same moment to one `streamlit run`.

Each client speaks Streamlit's own protocol (the websocket at ``/_stcore/stream`` and the upload route,
with the protobuf messages of ``streamlit.proto``), as the browser's frontend does, but draws nothing.
So the server is timed without renderers sharing its cores:

- every client opens a session and runs the Explore page once (what a new tab does);
- one warm-up upload loads the model;
- all clients upload their photos at the same moment, as the browser's single-file uploader does: where
  the uploader holds a file, a rerun with it removed; then the file, sent to the server's upload route;
  then the rerun with the file. Each is timed from its first request to the end of the script run that
  sent the maps picture of its photo (``script_finished``).

Scenarios: N different CUB test photos, and N 48-megapixel JPEGs (each with its own bytes).
Prints the slowest and median answer, the span from the first request to the last answer, the
server's CPU seconds per upload and its peak resident memory, and, from the server's own timing
(``MCVIZ_TIMING=1``, app/timing.py; a revision without it prints none), when its script runs ended
and the median seconds of each stage.

    python benchmarks/server_load.py [--sessions 16] [--scenario cub 48mp] [--data ../shared/data] [--before REV]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Optional

from app_load import APP, MemoryWatch, cpu_s, make_scenarios, rss_mb, server_answer, server_runs, side_by_side
from serving import running_app_process

_ids = itertools.count()


class Client:
    """One session of the app, driven through Streamlit's protocol (no rendering)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws = None
        self.session_id = ""
        self.page_hash = ""
        self.uploader = ""  # the widget id of the page's file uploader, as last drawn
        self.holding = False  # whether that uploader holds the file this client sent last

    async def open(self) -> None:
        import websockets

        self.ws = await websockets.connect(
            self.url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"], max_size=None
        )
        await self._rerun([])
        await self.finish()

    async def _send(self, **fields) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        await self.ws.send(BackMsg(**fields).SerializeToString())

    async def _rerun(self, widgets: list) -> None:
        from streamlit.proto.ClientState_pb2 import ClientState
        from streamlit.proto.WidgetStates_pb2 import WidgetStates

        state = ClientState(page_script_hash=self.page_hash, widget_states=WidgetStates(widgets=widgets))
        await self._send(rerun_script=state)

    async def finish(self, name: Optional[str] = None) -> bool:
        """Read the server's messages until the script run ends; whether it sent the maps of ``name``."""
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        drawn = False
        while True:
            msg = ForwardMsg()
            msg.ParseFromString(await self.ws.recv())
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                self.session_id = msg.new_session.initialize.session_id
                self.page_hash = msg.new_session.page_script_hash
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                el = msg.delta.new_element
                if el.WhichOneof("type") == "file_uploader":
                    self.uploader = el.file_uploader.id
                elif el.WhichOneof("type") == "imgs" and name:
                    drawn |= any(f"Maps computed for {name}" in i.caption for i in el.imgs.imgs)
            elif kind == "script_finished" and msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                return drawn

    async def file_urls(self, path: Path):
        """Ask for the URLs of a file to upload."""
        from streamlit.proto.Common_pb2 import FileURLsRequest
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        rid = f"r{next(_ids)}"
        req = FileURLsRequest(request_id=rid, file_names=[path.name], session_id=self.session_id)
        await self._send(file_urls_request=req)
        while True:
            msg = ForwardMsg()
            msg.ParseFromString(await self.ws.recv())
            if msg.WhichOneof("type") == "file_urls_response" and msg.file_urls_response.response_id == rid:
                return msg.file_urls_response.file_urls[0]

    async def upload(self, path: Path, urls) -> float:
        """Upload the file as the browser's single-file uploader does; seconds until the run that draws its
        maps ends. Where the uploader holds a file, the browser first reruns the page with it removed, then
        sends the new file to the upload route and reruns the page with it."""
        from streamlit.proto.Common_pb2 import FileUploaderState, UploadedFileInfo
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        t0 = time.perf_counter()
        uploader = self.uploader
        if self.holding:
            await self._rerun([WidgetState(id=uploader, file_uploader_state_value=FileUploaderState())])
        data = path.read_bytes()
        await asyncio.to_thread(_put, self.url + urls.upload_url, path.name, data)
        info = UploadedFileInfo(file_id=urls.file_id, name=path.name, size=len(data), file_urls=urls)
        await self._rerun(
            [WidgetState(id=uploader, file_uploader_state_value=FileUploaderState(uploaded_file_info=[info]))]
        )
        for _ in range(3):  # the run of the emptied uploader may end first
            if await self.finish(info.name):
                self.holding = self.uploader == uploader  # an app that empties its uploader draws a new one
                return time.perf_counter() - t0
        raise RuntimeError(f"no run drew the maps of {info.name}")

    async def close(self) -> None:
        await self.ws.close()


def _put(url: str, name: str, data: bytes) -> None:
    """The browser's upload: one multipart form with the file."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(
        url, data=body, method="PUT", headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        r.read()


async def upload_together(clients: list[Client], files: list[Path]) -> tuple[list[float], float, float]:
    """Every client gets its file's URLs, then all upload at once: each one's answer time, the span from
    the first request to the last answer, and the clock's time of the requests."""
    urls = await asyncio.gather(*(c.file_urls(f) for c, f in zip(clients, files)))
    t0, at = time.perf_counter(), time.time()
    times = await asyncio.gather(*(c.upload(f, u) for c, f, u in zip(clients, files, urls)))
    return list(times), time.perf_counter() - t0, at


async def one_server(args, env: dict, scenarios: dict, warm: Path, app: Path = APP) -> dict:
    """Start the app with ``env``, run every scenario; ``{scenario: (slowest s, peak MB)}``."""
    out = {}
    log = Path(tempfile.mkdtemp(prefix="mcviz-server-")) / "server.log"
    with running_app_process(app, {**env, "MCVIZ_TIMING": "1"}, log=log) as (url, proc):
        clients = [Client(url) for _ in range(args.sessions)]
        t = time.perf_counter()
        await asyncio.gather(*(c.open() for c in clients))
        opened = time.perf_counter() - t
        t = time.perf_counter()
        await clients[0].upload(warm, await clients[0].file_urls(warm))
        print(
            f"{args.sessions} protocol clients on {url} (pages opened together in {opened:.2f} s); "
            f"warm-up upload (model load) {time.perf_counter() - t:.1f} s"
        )
        for name, files in scenarios.items():
            base, cpu0, since = rss_mb(proc.pid), cpu_s(proc.pid), time.time()
            with MemoryWatch(proc.pid) as mem:
                times, span, asked = await upload_together(clients, files)
            cpu = cpu_s(proc.pid) - cpu0
            print(
                f"  {name:5s}: {len(files)} uploads answered in {span:.2f} s (slowest {max(times):.2f} s, median "
                f"{statistics.median(times):.2f} s, fastest {min(times):.2f} s); server CPU {cpu / len(files):.3f} s "
                f"per upload (sending the files included); memory {base:.0f} MB before, peak {mem.peak:.0f} MB"
            )
            runs = server_runs(log, since)
            if runs:  # the server's own timing (app/timing.py): when its script runs ended, against the answers
                ran, slowest, stages = server_answer(runs)
                first = min(r["start"] for r in runs) - asked
                last = max(r["start"] + r["wall_s"] for r in runs) - asked
                print(
                    f"        its script runs: the first started {first:.2f} s after the requests, the last ended "
                    f"after {last:.2f} s ({ran:.2f} s from first start to last end), slowest run {slowest:.2f} s; "
                    "median seconds per run: " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items())
                )
            out[name] = (span, mem.peak)
            await asyncio.sleep(1)
        await asyncio.gather(*(c.close() for c in clients))
    return out


async def run(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mcviz-server-load-"))
    scenarios, warm = make_scenarios(args, args.sessions, tmp)
    # the protocol clients send no XSRF token (a browser reads it from a cookie)
    env = {
        "MCVIZ_CHECKPOINTS": "",
        "MCVIZ_APP_NO_REPO_CHECKPOINTS": "",
        "STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION": "false",
    }
    await side_by_side(args, lambda e, app: one_server(args, e, scenarios, warm, app), env, tmp, "answered in")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=16)
    ap.add_argument("--scenario", nargs="+", choices=["cub", "48mp"], default=["cub", "48mp"])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--before", metavar="REV", help="also run the app of git revision REV, and print the ratios")
    args = ap.parse_args()
    if not 1 <= args.sessions <= 64:
        raise SystemExit("--sessions must be 1..64")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
