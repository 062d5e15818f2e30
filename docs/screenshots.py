"""Take the README's screenshots of a running local stack in headless Chromium.

    ./platform up                               # the stack, with one pipeline pass done
    .venv/bin/python docs/screenshots.py        # writes docs/*.png

Needs Debian's ``chromium`` package (``/usr/bin/chromium``, or set ``CHROMIUM``). The
browser is driven over the Chrome DevTools Protocol with the ``websockets`` package the
API already depends on, so nothing else is installed. Airflow's login is done the way
its UI does it: a token from ``POST /auth/token`` in the ``_token`` cookie.

Pages: the Airflow grid of ``score_customers``; the newest ``train_model.train`` task
instance with the plugin's extra links; the Airflow nav with the plugin's "Credit risk"
entries open, and Data Docs served through the plugin inside the Airflow UI; the MLflow
page of the newest training run's evaluation plots; and the scoring API's OpenAPI docs.
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
import urllib.parse
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


def _mlflow_auth() -> str | None:
    """``Basic …`` for the runner's MLflow reader (the registry runs with basic auth)."""
    path = STATE / "secrets.json"
    secrets = json.loads(path.read_text()) if path.exists() else {}
    password = secrets.get("mlflow_reader_password")
    if not password:
        return None
    return "Basic " + base64.b64encode(f"reader:{password}".encode()).decode()


def _json(url: str, data: dict[str, Any] | None = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif url.startswith(MLFLOW) and (basic := _mlflow_auth()):
        headers["Authorization"] = basic
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data else None,
                                 headers=headers)
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

    def evaluate(self, js: str) -> Any:
        return self.call("Runtime.evaluate", expression=js, returnByValue=True).get(
            "result", {}).get("value")

    def wait_for(self, js: str, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(js):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: the page never showed what {js!r} looks for")
            time.sleep(0.5)

    def capture(self, out: Path, url: str, *, settle: float) -> None:
        time.sleep(settle)
        shot = self.call("Page.captureScreenshot", format="png")
        out.write_bytes(base64.b64decode(shot["data"]))
        print(f"wrote {out.relative_to(ROOT)} ({out.stat().st_size // 1024} KiB) from {url}")

    def open(self, url: str, *, width: int = 1440, height: int = 900,
             ready_js: str | None = None) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", url=url)
        if ready_js:
            self.wait_for(ready_js, url)

    def click_text(self, text: str) -> None:
        """Click the first button, link or menu item whose label is exactly ``text``."""
        js = (f"(() => {{ const t = {json.dumps(text)}; const el = [...document.querySelectorAll("
              "'button, a, [role=menuitem]')].find(e => (e.innerText || '').trim() === t "
              "|| e.getAttribute('aria-label') === t || e.getAttribute('title') === t); "
              "if (el) { el.click(); } return !!el; })()")
        self.wait_for(js, f"clicking {text!r}", timeout=20)

    def shoot(self, url: str, out: Path, *, settle: float, width: int = 1440,
              height: int = 900, ready_js: str | None = None) -> None:
        self.open(url, width=width, height=height, ready_js=ready_js)
        self.capture(out, url, settle=settle)


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


def _airflow_token() -> str:
    secrets = json.loads((STATE / "secrets.json").read_text())
    return str(_json(f"{AIRFLOW}/auth/token",
                     {"username": "admin", "password": secrets["admin_password"]})["access_token"])


def airflow(page: Page) -> None:
    token = _airflow_token()
    page.call("Network.setCookie", name="_token", value=token, url=AIRFLOW)
    page.shoot(f"{AIRFLOW}/dags/score_customers", OUT / "airflow-grid.png", settle=4,
               ready_js="document.body.innerText.includes('publish')")
    airflow_trigger_form(page)
    airflow_task_links(page, token)
    airflow_plugin_nav(page)


def airflow_trigger_form(page: Page) -> None:
    """The trigger form of ingest_transactions: its typed params as date pickers."""
    url = f"{AIRFLOW}/dags/ingest_transactions"
    page.open(url, ready_js="document.body.innerText.includes('ingest_transactions')")
    page.click_text("Trigger")
    page.wait_for("document.body.innerText.includes('from_date')"
                  " || !!document.querySelector('input[type=date]')", "the trigger form",
                  timeout=20)
    page.capture(OUT / "airflow-trigger-form.png", url, settle=2)


def airflow_task_links(page: Page, token: str) -> None:
    """The newest train_model run's ``train`` task, showing the plugin's extra links."""
    runs = _json(f"{AIRFLOW}/api/v2/dags/train_model/dagRuns?order_by=-run_after&limit=1"
                 "&state=success", token=token)["dag_runs"]
    if not runs:
        raise RuntimeError("no successful train_model run yet: run ./platform up first")
    run_id = runs[0]["dag_run_id"]
    quoted = urllib.parse.quote(run_id, safe="")
    links = _json(f"{AIRFLOW}/api/v2/dags/train_model/dagRuns/{quoted}/taskInstances/train/links",
                  token=token)["extra_links"]
    if not links.get("MLflow run"):
        raise RuntimeError(f"train_model run {run_id} has no 'MLflow run' link: {links}")
    # Airflow 3.3 shows a task's extra links at the top of its Details tab, once they load
    url = f"{AIRFLOW}/dags/train_model/runs/{quoted}/tasks/train/details"
    page.shoot(url, OUT / "airflow-task-links.png", settle=2,
               ready_js="document.body.innerText.includes('MLflow model version')")


def airflow_plugin_nav(page: Page) -> None:
    """The nav's Plugins menu open on the plugin's entries, then Data Docs inside the UI."""
    url = f"{AIRFLOW}/"
    page.open(url, ready_js="document.body.innerText.length > 0")
    page.click_text("Plugins")
    page.click_text("Credit risk")
    page.wait_for("['MLflow', 'API docs', 'Data Docs'].every("
                  "t => document.body.innerText.includes(t))", "the Credit risk menu")
    page.capture(OUT / "airflow-plugin-nav.png", url, settle=1)
    page.shoot(f"{AIRFLOW}/plugin/data-docs", OUT / "airflow-data-docs.png", settle=3,
               ready_js="(() => { const f = document.querySelector('iframe'); "
                        "return !!(f && f.contentDocument && f.contentDocument.body "
                        "&& f.contentDocument.body.innerText.length > 0); })()")


def mlflow(page: Page) -> None:
    basic = _mlflow_auth()
    if basic:  # the browser logs in as the reader (only for MLflow's pages)
        page.call("Network.setExtraHTTPHeaders", headers={"Authorization": basic})
    try:
        mlflow_run(page)
        mlflow_version(page)
    finally:
        page.call("Network.setExtraHTTPHeaders", headers={})


def mlflow_version(page: Page) -> None:
    """The champion's version page: its description (the model card) and tags."""
    name = "credit-risk-pd"
    got = _json(f"{MLFLOW}/api/2.0/mlflow/registered-models/alias?name={name}&alias=champion")
    version = got["model_version"]["version"]
    page.shoot(f"{MLFLOW}/#/models/{name}/versions/{version}", OUT / "mlflow-version.png",
               settle=4, height=1400,
               ready_js="document.body.innerText.includes('Gate verdict')")


def mlflow_run(page: Page) -> None:
    exps = _json(f"{MLFLOW}/api/2.0/mlflow/experiments/search", {"max_results": 50})
    exp = next(e for e in exps["experiments"] if e["name"] == "creditrisk-pd")
    runs = _json(f"{MLFLOW}/api/2.0/mlflow/runs/search", {
        "experiment_ids": [exp["experiment_id"]], "max_results": 20,
        "order_by": ["attributes.start_time DESC"]})["runs"]
    # the newest run that logged plots (the selected candidate, nested under the training run)
    for run in runs:
        run_id, exp_id = run["info"]["run_id"], exp["experiment_id"]
        arts = _json(f"{MLFLOW}/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=plots")
        pngs = [f["path"] for f in arts.get("files", []) if f["path"].endswith(".png")]
        if pngs:
            break
    else:
        raise RuntimeError("no run with plots yet: run ./platform up first")
    plot = next((p for p in pngs if p.endswith("roc.png")), pngs[0])
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
