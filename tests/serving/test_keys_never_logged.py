"""No API key, valid or not, reaches any log of a real API process.

A real ``uvicorn serving.app:app`` subprocess, every logger at its lowest level (the root
logger at level 1 through ``--log-config``, uvicorn's own loggers at TRACE, its access log
on), its whole stdout and stderr captured, while requests carry the valid key and a wrong
one, on every route that reads the key (and on a malformed body, which fails before it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devstack.process import free_port
from tests.paths import REPO_ROOT
from tests.serving.conftest import API_KEY, DAY, World
from tests.warehouse import rows

pytestmark = pytest.mark.slow
WRONG_KEY = "wrong-key-7c1f0a9e3b5d24681357"  # test-only secret
LOG_CONFIG = {
    "version": 1, "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                            "stream": "ext://sys.stderr", "level": 1}},
    "root": {"level": 1, "handlers": ["stderr"]},
    "loggers": {name: {"level": 1, "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")},
}


def _requests(base: str, customer_id: str) -> list[tuple[str, int]]:
    """Every request once with the valid key and once with the wrong one: (what, status)."""
    sent = []
    with httpx.Client(base_url=base, timeout=30) as http:
        for key in (API_KEY, WRONG_KEY):
            tag = "valid" if key == API_KEY else "wrong"
            headers = {"X-API-Key": key}
            for method, path, body in (
                ("POST", "/predict", {"customer_id": customer_id}),
                ("POST", "/predict/batch", {"items": [{"customer_id": customer_id}]}),
                ("GET", "/ready", None), ("GET", "/model/info", None),
                ("GET", "/metrics", None), ("GET", "/health", None),
            ):
                r = http.request(method, path, json=body,
                                 headers={**headers,
                                          "X-Request-ID": f"keylog-{tag}{path.replace('/', '.')}"})
                sent.append((f"{tag} {method} {path}", r.status_code))
            r = http.post("/predict", content=b"{not json", headers={
                **headers, "Content-Type": "application/json"})
            sent.append((f"{tag} malformed", r.status_code))
            r = http.get("/ready", headers={"Authorization": f"Bearer {key}"})
            sent.append((f"{tag} bearer", r.status_code))
    return sent


def _wait_ready(base: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the API exited during start-up"
        try:
            if httpx.get(f"{base}/ready", headers={"X-API-Key": API_KEY},
                         timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("the API was not ready in time")


def test_no_key_valid_or_wrong_appears_in_any_log_of_a_real_uvicorn(
    world: World, tmp_path: Path
) -> None:
    config = tmp_path / "log_config.json"
    config.write_text(json.dumps(LOG_CONFIG))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT / 'include'}{os.pathsep}{REPO_ROOT}",
           "DATABASE_URL": world.database_url, "MLFLOW_TRACKING_URI": world.tracking_uri,
           "CREDITRISK_MODEL_NAME": world.model_name, "CREDITRISK_API_KEYS": API_KEY,
           "CREDITRISK_ENV": "test", "PYTHONUNBUFFERED": "1"}
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "serving.app:app", "--host", "127.0.0.1",
             "--port", str(port), "--log-config", str(config), "--log-level", "trace",
             "--access-log"],
            cwd=REPO_ROOT, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
        try:
            _wait_ready(base, proc)
            customer = str(rows(world.database_url, "SELECT min(customer_id) FROM risk_scores"
                                                    " WHERE score_date = :d", d=DAY)[0][0])
            sent = _requests(base, customer)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
    status = dict(sent)
    assert status["valid POST /predict"] == status["valid POST /predict/batch"] == 200
    assert status["valid GET /ready"] == status["valid GET /model/info"] == 200
    assert status["wrong POST /predict"] == status["wrong POST /predict/batch"] == 401
    assert status["wrong GET /model/info"] == 401
    text = out.read_text(errors="replace") + err.read_text(errors="replace")
    # the capture is real: uvicorn's TRACE and access lines, the app's JSON request log
    assert "TRACE uvicorn.error" in text and "HTTP connection made" in text
    assert '"POST /predict HTTP/1.1" 401' in text and '"POST /predict HTTP/1.1" 200' in text
    assert "keylog-valid.predict" in text and "keylog-wrong.predict" in text
    # uvicorn's ASGI message logger (TRACE: every scope and message of every request;
    # it elides the headers itself) reaches the root handler
    assert "TRACE uvicorn.asgi" in text and "ASGI [" in text
    for key in (API_KEY, WRONG_KEY):
        for fragment in (key, key[:12], key[-12:]):
            assert fragment not in text, fragment
