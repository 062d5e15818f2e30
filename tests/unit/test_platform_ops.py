"""``./platform logs`` and ``./platform status --json``, as an operator runs them."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from creditrisk.errors import InputError
from devstack.ops import show_logs
from devstack.process import free_port

REPO = Path(__file__).resolve().parents[2]


def _platform(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PLATFORM_STATE_DIR": str(state)}
    # ports nobody listens on: a status check must find everything down
    for var in ("PLATFORM_AIRFLOW_PORT", "PLATFORM_MLFLOW_PORT", "PLATFORM_API_PORT",
                "PLATFORM_REDIS_PORT"):
        env[var] = str(free_port())
    env.pop("DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "devstack", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_logs_lists_tails_and_refuses_an_unknown_service(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "api.log").write_text("".join(f"line {i}\n" for i in range(500)))
    (logs / "mlflow.log").write_text("mlflow up\n")
    listing = io.StringIO()
    assert show_logs(logs, None, out=listing) == 0
    assert "api" in listing.getvalue() and "mlflow" in listing.getvalue()
    tail = io.StringIO()
    show_logs(logs, "api", lines=3, out=tail)
    assert tail.getvalue() == "line 497\nline 498\nline 499\n"
    with pytest.raises(InputError, match=r"'nosuch'.*api, mlflow"):
        show_logs(logs, "nosuch", out=io.StringIO())


def test_logs_follow_prints_what_is_appended(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "airflow-scheduler.log"
    log.write_text("old\n")
    out = io.StringIO()
    done = threading.Event()

    def append() -> None:
        time.sleep(0.3)
        with log.open("a") as fh:
            fh.write("new 1\nnew 2\n")
        deadline = time.monotonic() + 10
        while "new 2" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        done.set()

    writer = threading.Thread(target=append)
    writer.start()
    show_logs(logs, "airflow-scheduler", follow=True, out=out, stop=done.is_set, poll_s=0.05)
    writer.join()
    assert out.getvalue() == "old\nnew 1\nnew 2\n"


def test_platform_logs_and_status_json_through_the_entry_point(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "api.log").write_text("started\n")
    assert _platform(tmp_path, "logs", "api").stdout == "started\n"
    missing = _platform(tmp_path, "logs", "nosuch")
    assert missing.returncode == 1
    assert missing.stderr.startswith("platform: error: no log for service 'nosuch'")
    status = _platform(tmp_path, "status", "--json")
    assert status.returncode == 1  # nothing runs here
    body = json.loads(status.stdout)
    names = {s["service"] for s in body["services"]}
    assert body["healthy"] is False and {"mlflow", "scoring-api"} & names
    assert all(s["healthy"] is False and s["pid"] is None for s in body["services"])


def test_the_pipeline_bar_is_silent_when_quiet() -> None:
    from creditrisk import progress
    from devstack.ops import pipeline_bar

    out = io.StringIO()
    with pipeline_bar(quiet=True, out=out):
        progress.stage("ingest_transactions")
    assert out.getvalue() == ""
    with pipeline_bar(out=out):
        progress.stage("ingest_transactions")
    assert "pipeline [1/4] ingest_transactions" in out.getvalue()
