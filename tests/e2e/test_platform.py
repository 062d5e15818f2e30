"""`./platform up` brings up the real stack, `status` sees it, `down` leaves nothing behind.

This drives the README's first command exactly as a newcomer would, in a private
state folder and on free ports, so it never touches a developer's running stack.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dags.test_dag_integrity import _dag_files

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _platform(env: dict[str, str], *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO / "platform"), *args], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(f"{proc.name}: {cmd[:200]}")
    return found


def _json(url: str, token: str | None = None, data: dict | None = None) -> dict:
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data else None)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback)
        return json.load(resp)


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[dict[str, str], Path, subprocess.CompletedProcess]]:
    state = Path(tempfile.mkdtemp(prefix="crplat-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DATABASE_URL"))}
    env.update(
        PLATFORM_STATE_DIR=str(state),
        PLATFORM_AIRFLOW_PORT=str(_free_port()),
        PLATFORM_MLFLOW_PORT=str(_free_port()),
        PLATFORM_API_PORT=str(_free_port()),
        PLATFORM_ADMIN_PASSWORD="e2e-admin-pw",
    )
    up = _platform(env, "up")
    try:
        yield env, state, up
    finally:
        _platform(env, "down", timeout=120)
        shutil.rmtree(state, ignore_errors=True)


def test_up_starts_every_service_healthy(stack) -> None:  # type: ignore[no-untyped-def]
    env, state, up = stack
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert "everything is up" in up.stdout
    assert f"login admin / {env['PLATFORM_ADMIN_PASSWORD']}" in up.stdout
    landing = state / "landing"
    assert len(list(landing.glob("xente_*.csv"))) == 90, "sample history was not seeded"

    status = _platform(env, "status", timeout=60)
    assert status.returncode == 0, status.stdout
    for name in ("postgres", "mlflow", "airflow-api-server", "airflow-scheduler",
                 "airflow-dag-processor", "airflow-triggerer", "api"):
        assert name in status.stdout


def test_airflow_lists_the_project_dags_without_import_errors(stack) -> None:  # type: ignore[no-untyped-def]
    env, _, up = stack
    assert up.returncode == 0
    base = f"http://127.0.0.1:{env['PLATFORM_AIRFLOW_PORT']}"
    token = _json(f"{base}/auth/token",
                  data={"username": "admin", "password": env["PLATFORM_ADMIN_PASSWORD"]})[
        "access_token"
    ]
    expected = len(_dag_files())
    deadline = time.monotonic() + 120
    dags: dict = {}
    while time.monotonic() < deadline:
        dags = _json(f"{base}/api/v2/dags", token)
        if dags["total_entries"] >= expected:
            break
        time.sleep(2)
    assert dags["total_entries"] == expected
    assert _json(f"{base}/api/v2/importErrors", token)["total_entries"] == 0


def test_up_ran_one_pipeline_pass_through_the_scheduler(stack) -> None:  # type: ignore[no-untyped-def]
    env, state, up = stack
    assert up.returncode == 0
    assert "pipeline: ingest_transactions succeeded" in up.stdout
    assert "pipeline: build_features succeeded" in up.stdout
    import sqlalchemy as sa

    engine = sa.create_engine(f"postgresql+psycopg2://postgres@/creditrisk?host={state}/pg")
    try:
        with engine.connect() as conn:
            loaded = conn.execute(sa.text("SELECT count(*) FROM raw_transactions")).scalar_one()
            files = conn.execute(sa.text(
                "SELECT count(DISTINCT source_file) FROM ingestion_runs WHERE status='succeeded'"
            )).scalar_one()
            feats = conn.execute(sa.text("SELECT count(*) FROM customer_features")).scalar_one()
    finally:
        engine.dispose()
    assert loaded > 10_000 and files == 90 and feats > 0
    for dag_id in ("train_model", "score_customers"):
        assert f"pipeline: {dag_id} succeeded" in up.stdout
    assert "api ready, serving model version" in up.stdout

    engine = sa.create_engine(f"postgresql+psycopg2://postgres@/creditrisk?host={state}/pg")
    try:
        with engine.connect() as conn:
            scored, customer = conn.execute(sa.text(
                "SELECT count(*), min(customer_id) FROM latest_risk_scores")).one()
            promoted = conn.execute(sa.text(
                "SELECT count(*) FROM model_promotions WHERE decision = 'promoted'")).scalar_one()
    finally:
        engine.dispose()
    assert scored > 0 and promoted == 1

    key = json.loads((state / "secrets.json").read_text())["api_key"]
    req = urllib.request.Request(
        f"http://127.0.0.1:{env['PLATFORM_API_PORT']}/predict",
        data=json.dumps({"customer_id": customer}).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": key},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback)
        answer = json.load(resp)
    assert answer["decision"] in {"APPROVE", "REVIEW", "DECLINE"}
    assert answer["model_version"] == "1"


def test_mlflow_tracking_server_answers(stack) -> None:  # type: ignore[no-untyped-def]
    env, _, up = stack
    assert up.returncode == 0
    base = f"http://127.0.0.1:{env['PLATFORM_MLFLOW_PORT']}"
    body = _json(f"{base}/api/2.0/mlflow/experiments/search", data={"max_results": 5})
    assert any(e["name"] == "Default" for e in body["experiments"])


def test_up_twice_is_harmless_and_down_leaves_nothing(stack) -> None:  # type: ignore[no-untyped-def]
    env, state, up = stack
    assert up.returncode == 0
    pids = {p.stem: int(p.read_text()) for p in (state / "pids").glob("*.pid")}
    again = _platform(env, "up")
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    assert "no pipeline pass needed" in again.stdout
    assert {p.stem: int(p.read_text()) for p in (state / "pids").glob("*.pid")} == pids

    down = _platform(env, "down", timeout=120)
    assert down.returncode == 0, down.stderr
    time.sleep(1)
    assert _processes_mentioning(str(state)) == []
    for pid in pids.values():
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert _platform(env, "status", timeout=60).returncode == 1
