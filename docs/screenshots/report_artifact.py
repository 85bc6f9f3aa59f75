"""Screenshot of a run's report artifact in the Prefect UI: docs/screenshots/report-artifact.png.

Run from the repository root, with lmpipe installed in the active environment::

    .venv/bin/python docs/screenshots/report_artifact.py

It needs ``prefect`` (with its UI, as pip installs it), ``lmpipe``, headless Chromium
(``chromium`` or ``chromium-browser`` on PATH, or ``$CHROMIUM``) and, to shrink the picture,
Pillow; no network. It starts a temporary ``prefect server start`` (its ``PREFECT_HOME`` in a
temporary folder), runs a small experiment against it (The Time Machine: n = 1..3, one small
GRU trained for one epoch; 70 s or so on 2 cores) into a temporary ``--home``, finds the
per-corpus report artifact through the REST API, checks that every figure is embedded (no
relative image link), and photographs the UI's page of that artifact through the DevTools
protocol, once its figures have loaded. The server and the browser are stopped however it ends.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from websockets.sync.client import connect  # websockets: a dependency of prefect
from websockets.sync.connection import Connection

PNG = Path(__file__).resolve().parent / "report-artifact.png"
EXPERIMENT = "screenshot"
KEY = f"ppl-report-{EXPERIMENT}-timemachine-char"  # lmpipe.lm.report.artifacts.report_artifacts
CONFIG = f"""
name = "{EXPERIMENT}"
corpora = ["timemachine"]
[ngram]
orders = [1, 2, 3]
methods = ["witten-bell", "kn", "mkn"]
[neural]
architectures = ["gru"]
hidden = 64
epochs = 1
"""
WIDTH, HEIGHT, SHOWN_WIDTH = 1400, 2400, 1000  # the browser's viewport; the PNG's width
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tool(name: str) -> str:
    """``name``'s command, next to this Python's first (its virtual environment's)."""
    found = shutil.which(
        name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    if found is None:
        raise SystemExit(f"{name} is not installed in this environment")
    return found


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"{process.args!r} exited ({process.returncode}) before {url} answered"
            )
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2):
                return
        time.sleep(0.25)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def started(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``args`` in a session of its own, stopped (with its children) on the way out."""
    with open(log, "wb") as out:
        p = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)  # fmt: skip
    try:
        yield p
    finally:
        p.terminate()  # the leader first, so that it stops (and reaps) its own children
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)  # whatever of the session outlived it


def prefect_env(**settings: str) -> dict[str, str]:
    """This environment without the user's Prefect settings (profile, database, API), plus
    ``settings``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | settings


def api(base: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}{path}", data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def run_experiment(tmp: Path, api_url: str) -> dict[str, Any]:
    (tmp / "experiment.toml").write_text(CONFIG, encoding="utf-8")
    env = prefect_env(PREFECT_API_URL=api_url, PREFECT_HOME=str(tmp / "prefect"))
    cmd = [tool("lmpipe"), "run", "--config", str(tmp / "experiment.toml"),
           "--home", str(tmp / "home"), "--json"]  # fmt: skip
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def report_artifact(base: str, run_id: str) -> dict[str, Any]:
    """The newest artifact of ``KEY``, checked: made by a flow run of this server, in this run,
    with its figures embedded."""
    found = api(base, "/artifacts/filter", {"artifacts": {"key": {"any_": [KEY]}},
                                            "sort": "CREATED_DESC", "limit": 1})  # fmt: skip
    if not found:
        raise SystemExit(f"no artifact {KEY!r} on the server: the flow did not report to it")
    art: dict[str, Any] = found[0]
    flow_run = api(base, f"/flow_runs/{art['flow_run_id']}")
    if f"experiment:{EXPERIMENT}" not in flow_run["tags"] or run_id not in art["description"]:
        raise SystemExit(f"artifact {art['id']} is not from run {run_id}")
    links = IMAGE_LINK.findall(art["data"])
    relative = [t for t in links if not t.startswith(("data:", "http://", "https://"))]
    if relative:
        raise SystemExit(f"artifact {KEY} links images the UI cannot load: {relative}")
    if not any(t.startswith("data:image/png;base64,") for t in links):
        raise SystemExit(f"artifact {KEY} has no embedded figure")
    return art


class DevTools:
    """The smallest client of Chromium's DevTools protocol: one page, calls in order."""

    def __init__(self, ws: Connection) -> None:
        self.ws, self.n = ws, 0

    def __call__(self, method: str, **params: Any) -> dict[str, Any]:
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while (m := json.loads(self.ws.recv())).get("id") != self.n:
            pass  # events
        if "error" in m:
            raise SystemExit(f"DevTools {method}: {m['error']}")
        result: dict[str, Any] = m["result"]
        return result

    def value(self, expression: str) -> Any:
        result = self("Runtime.evaluate", expression=expression, returnByValue=True)["result"]
        return result.get("value")


# True once the markdown has rendered and each of its images has loaded (none broken)
RENDERED = """(() => { const imgs = [...document.querySelectorAll('img[src^="data:image/png"]')];
  return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); })()"""


def screenshot(url: str, tmp: Path, timeout: float = 90.0) -> bytes:
    browser = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if browser is None:
        raise SystemExit("no headless Chromium: install chromium or set $CHROMIUM")
    port = free_port()
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", f"--window-size={WIDTH},{HEIGHT}", f"--remote-debugging-port={port}",
            f"--user-data-dir={tmp / 'chromium'}", "about:blank"]  # fmt: skip
    with started(args, dict(os.environ), tmp / "chromium.log") as p:
        wait_for(f"http://127.0.0.1:{port}/json/version", p)
        pages = api(f"http://127.0.0.1:{port}", "/json/list")
        page = next(t for t in pages if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
            cdp = DevTools(ws)
            cdp("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT,
                deviceScaleFactor=1, mobile=False)  # fmt: skip
            cdp("Page.navigate", url=url)
            deadline = time.monotonic() + timeout
            while not cdp.value(RENDERED):
                if time.monotonic() > deadline:
                    text = str(cdp.value("document.body.innerText"))[:300]
                    raise SystemExit(f"the UI did not render {url} in {timeout:.0f} s: {text!r}")
                time.sleep(0.5)
            time.sleep(1.0)  # layout settles after the last image
            return base64.b64decode(cdp("Page.captureScreenshot", format="png")["data"])


def shrink(png: bytes) -> bytes:
    """The screenshot at ``SHOWN_WIDTH`` pixels wide, in a 256-colour palette (as it is
    without Pillow)."""
    try:
        from PIL import Image
    except ImportError:
        return png
    import io

    img = Image.open(io.BytesIO(png)).convert("RGB")
    img = img.resize(
        (SHOWN_WIDTH, round(img.height * SHOWN_WIDTH / img.width)), Image.Resampling.LANCZOS
    )
    out = io.BytesIO()
    img.quantize(256, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
    return out.getvalue()


def main() -> None:
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lmpipe-screenshot-") as name:
        tmp = Path(name)
        port = free_port()
        base = f"http://127.0.0.1:{port}/api"
        # the UI's pages call the API at PREFECT_UI_API_URL (default: port 4200, not --port)
        env = prefect_env(PREFECT_HOME=str(tmp / "prefect"), PREFECT_UI_API_URL=base)
        server = [tool("prefect"), "server", "start", "--host", "127.0.0.1",
                  "--port", str(port), "--analytics-off"]  # fmt: skip
        with started(server, env, tmp / "server.log") as p:
            wait_for(f"{base}/health", p)
            print(f"Prefect server at http://127.0.0.1:{port}", flush=True)
            out = run_experiment(tmp, base)
            art = report_artifact(base, str(out["run_id"]))
            png = shrink(screenshot(f"http://127.0.0.1:{port}/artifacts/artifact/{art['id']}", tmp))
        PNG.write_bytes(png)
    print(f"artifact key: {art['key']}")
    print(f"artifact id: {art['id']}")
    print(f"artifact size: {len(art['data'].encode())} bytes")
    print(f"screenshot: {PNG} ({len(png)} bytes, {time.monotonic() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
