"""Take the README's screenshots of a running local stack in headless Chromium.

    ./platform up                               # the stack, with one pipeline pass done
    .venv/bin/python docs/screenshots.py        # writes docs/*.png

Needs Debian's ``chromium`` package (``/usr/bin/chromium``, or set ``CHROMIUM``). The
browser is driven over the Chrome DevTools Protocol with the ``websockets`` package the
API already depends on, so nothing else is installed. Airflow's login is done the way
its UI does it: a token from ``POST /auth/token`` in the ``_token`` cookie.

Pages: the Airflow grid of ``score_customers``, the MLflow page of the newest training
run's evaluation plots, and the scoring API's OpenAPI docs.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess  # nosec B404 - starts the local Chromium binary only
import sys
import tempfile
import time
import urllib.request
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs"
STATE = Path(os.environ.get("PLATFORM_STATE_DIR", ROOT / ".platform"))
AIRFLOW = f"http://127.0.0.1:{os.environ.get('PLATFORM_AIRFLOW_PORT', '8080')}"
MLFLOW = f"http://127.0.0.1:{os.environ.get('PLATFORM_MLFLOW_PORT', '5000')}"
API = f"http://127.0.0.1:{os.environ.get('PLATFORM_API_PORT', '8000')}"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-port=0"]


def _json(url: str, data: dict[str, Any] | None = None) -> Any:
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:  # nosec B310 - loopback http only
        return json.load(resp)


class Page:
    """One browser tab over CDP: navigate, wait, capture."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    def shoot(self, url: str, out: Path, *, settle: float, width: int = 1440,
              height: int = 900, ready_js: str | None = None) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 60
        while ready_js:
            got = self.call("Runtime.evaluate", expression=ready_js, returnByValue=True)
            if got.get("result", {}).get("value"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url}: the page never showed what {ready_js!r} looks for")
            time.sleep(0.5)
        time.sleep(settle)
        shot = self.call("Page.captureScreenshot", format="png")
        out.write_bytes(base64.b64decode(shot["data"]))
        print(f"wrote {out.relative_to(ROOT)} ({out.stat().st_size // 1024} KiB) from {url}")


@contextmanager
def chromium() -> Generator[Page]:
    from websockets.sync.client import connect

    binary = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    profile = Path(tempfile.mkdtemp(prefix="shots-"))
    proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],  # nosec B603
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(100):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        port = port_file.read_text().splitlines()[0]
        tabs = _json(f"http://127.0.0.1:{port}/json/list")
        tab = next(t for t in tabs if t.get("type") == "page")
        with connect(tab["webSocketDebuggerUrl"], max_size=64 * 2**20) as ws:
            page = Page(ws)
            page.call("Page.enable")
            page.call("Network.enable")
            yield page
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(profile, ignore_errors=True)


def airflow(page: Page) -> None:
    secrets = json.loads((STATE / "secrets.json").read_text())
    token = _json(f"{AIRFLOW}/auth/token",
                  {"username": "admin", "password": secrets["admin_password"]})["access_token"]
    page.call("Network.setCookie", name="_token", value=token, url=AIRFLOW)
    page.shoot(f"{AIRFLOW}/dags/score_customers", OUT / "airflow-grid.png", settle=4,
               ready_js="document.body.innerText.includes('publish')")


def mlflow(page: Page) -> None:
    exps = _json(f"{MLFLOW}/api/2.0/mlflow/experiments/search", {"max_results": 50})
    exp = next(e for e in exps["experiments"] if e["name"] == "creditrisk-pd")
    runs = _json(f"{MLFLOW}/api/2.0/mlflow/runs/search", {
        "experiment_ids": [exp["experiment_id"]], "max_results": 20,
        "order_by": ["attributes.start_time DESC"]})["runs"]
    # the newest candidate run that logged plots (nested under the training run)
    run = next(r for r in runs if any(t["key"] == "mlflow.parentRunId"
                                       for t in r["data"].get("tags", [])))
    run_id, exp_id = run["info"]["run_id"], exp["experiment_id"]
    arts = _json(f"{MLFLOW}/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=plots")
    plot = next((f["path"] for f in arts.get("files", []) if f["path"].endswith("roc.png")),
                None) or next(f["path"] for f in arts["files"] if f["path"].endswith(".png"))
    page.shoot(f"{MLFLOW}/#/experiments/{exp_id}/runs/{run_id}/artifacts/{plot}",
               OUT / "mlflow-run.png", settle=4,
               ready_js="!!document.querySelector('img')")


def api_docs(page: Page) -> None:
    page.shoot(f"{API}/docs", OUT / "api-docs.png", settle=2,
               ready_js="!!document.querySelector('.opblock')")


def main() -> int:
    with chromium() as page:
        for shot in (airflow, mlflow, api_docs):
            shot(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
