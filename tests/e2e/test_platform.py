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
        PLATFORM_ADMIN_PASSWORD="e2e-admin-pw",  # test-only secret
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


def _rows(state: Path, sql: str, **params: object) -> list[tuple]:
    import sqlalchemy as sa

    engine = sa.create_engine(f"postgresql+psycopg2://postgres@/creditrisk?host={state}/pg")
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql), params).all()]
    finally:
        engine.dispose()


def _api(env: dict[str, str], state: Path, path: str, body: dict | None = None) -> dict:
    """GET (or POST ``body`` to) the scoring API with the runner's generated key."""
    key = json.loads((state / "secrets.json").read_text())["api_key"]
    req = urllib.request.Request(
        f"http://127.0.0.1:{env['PLATFORM_API_PORT']}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", "X-API-Key": key},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback)
        return json.load(resp)


def _assert_one_row_per_customer(state: Path, day: object) -> int:
    """risk_scores for ``day``: one row per customer with history before the day, no more."""
    (rows, distinct), = _rows(state, "SELECT count(*), count(DISTINCT customer_id) FROM "
                                     "risk_scores WHERE score_date = :d", d=day)
    (featured,), = _rows(state, "SELECT count(*) FROM customer_features WHERE as_of_date = :d",
                         d=day)
    (customers,), = _rows(state, "SELECT count(DISTINCT customer_id) FROM raw_transactions "
                                 "WHERE transaction_start_time < CAST(:d AS timestamp) "
                                 "AT TIME ZONE 'UTC'", d=day)
    assert rows == distinct == featured == customers > 0, (day, rows, distinct, featured,
                                                           customers)
    return rows


def test_scores_are_one_per_customer_and_predict_answers_the_same(stack) -> None:  # type: ignore[no-untyped-def]
    """The batch's date has every customer once; the API agrees with the batch row by row.

    The API scores on each customer's newest features; when those are newer than the
    up-pass's scoring date, the same DAG scores that date through the scheduler first,
    so that batch and API are compared on the same features and model version.
    """
    env, state, up = stack
    assert up.returncode == 0
    (scored_day,), = _rows(state, "SELECT max(score_date) FROM risk_scores")
    _assert_one_row_per_customer(state, scored_day)

    (probe,), = _rows(state, "SELECT min(customer_id) FROM risk_scores WHERE score_date = :d",
                      d=scored_day)
    api_day = _api(env, state, "/predict", {"customer_id": probe})["features_as_of"]
    if api_day != scored_day.isoformat():
        from devstack.stack import AirflowAPI

        airflow = AirflowAPI(f"http://127.0.0.1:{env['PLATFORM_AIRFLOW_PORT']}",
                             env["PLATFORM_ADMIN_PASSWORD"])
        run = airflow.call("POST", "/api/v2/dags/score_customers/dagRuns",
                           {"logical_date": None, "conf": {"date": api_day}})
        assert airflow.wait_for_run("score_customers", str(run["dag_run_id"]),
                                    timeout=400) == "success"
    _assert_one_row_per_customer(state, api_day)

    picked = _rows(state, """
        SELECT DISTINCT ON (segment, decision) customer_id, probability_of_default,
               credit_score, risk_band, decision, recommended_limit, recommended_term_days,
               reason_codes, model_version, segment
        FROM risk_scores WHERE score_date = :d ORDER BY segment, decision, customer_id""",
                   d=api_day)
    assert picked and {"scored", "dormant"} <= {row[-1] for row in picked}
    for cid, pd_, score, band, decision, limit, term, reasons, version, _seg in picked:
        answer = _api(env, state, "/predict", {"customer_id": cid})
        assert answer["features_as_of"] == api_day
        assert answer["model_version"] == version
        if pd_ is None:  # dormant: the policy's answer, no PD, on both paths
            assert answer["probability_of_default"] is None
        else:
            assert answer["probability_of_default"] == pytest.approx(pd_, abs=1e-9)
        assert (answer["credit_score"], answer["risk_band"], answer["decision"]) == \
            (score, band, decision)
        assert answer["recommended_limit"] == float(limit)
        assert answer["recommended_term_days"] == term
        assert [c["code"] for c in answer["reason_codes"]] == [c["code"] for c in reasons]


def _as_mlflow_user(state: Path, role: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Talk to the runner's MLflow as one of the users it generated (basic auth)."""
    keys = json.loads((state / "secrets.json").read_text())
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", role)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", keys[f"mlflow_{role}_password"])


def test_a_promotion_in_the_registry_reaches_the_running_api(  # type: ignore[no-untyped-def]
    stack, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new version aliased ``champion`` through the MLflow client is served, no restart.

    As the trainer (the one user that may); the new version is registered from the same
    logged model, whose recorded sha256 the API checks before it serves it.
    """
    env, state, up = stack
    assert up.returncode == 0
    from mlflow import MlflowClient

    _as_mlflow_user(state, "trainer", monkeypatch)

    api_pid = int((state / "pids" / "api.pid").read_text())
    info = _api(env, state, "/model/info")
    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{env['PLATFORM_MLFLOW_PORT']}")
    champion = client.get_model_version_by_alias(info["name"], "champion")
    assert str(champion.version) == info["version"]
    # the same logged model (models:/<model id>) registered once more, as a person would
    # register a retrained one
    model_id = getattr(champion, "model_id", None) or champion.source.removeprefix("models:/")
    new = client.create_model_version(info["name"], source=champion.source,
                                      run_id=champion.run_id, model_id=model_id)
    assert str(new.version) != info["version"]
    client.set_registered_model_alias(info["name"], "champion", new.version)

    (customer,), = _rows(state, "SELECT min(customer_id) FROM customer_features")
    deadline = time.monotonic() + 90  # the runner's reload interval is 10 s
    served: list[str] = []
    while time.monotonic() < deadline:
        # every request answers while the model swaps underneath: no downtime
        served.append(_api(env, state, "/predict", {"customer_id": customer})["model_version"])
        if served[-1] == str(new.version):
            break
        time.sleep(1)
    assert served[-1] == str(new.version), f"still serving {served[-1]} after 90 s"
    assert set(served) <= {info["version"], str(new.version)}
    assert _api(env, state, "/model/info")["version"] == str(new.version)
    assert int((state / "pids" / "api.pid").read_text()) == api_pid
    assert Path(f"/proc/{api_pid}").exists()


def test_mlflow_tracking_server_answers_its_users_only(stack) -> None:  # type: ignore[no-untyped-def]
    """Basic auth: nobody anonymous; the reader reads but may not move an alias."""
    import base64
    import urllib.error

    env, state, up = stack
    assert up.returncode == 0
    keys = json.loads((state / "secrets.json").read_text())
    assert (state / "secrets.json").stat().st_mode & 0o777 == 0o600
    base = f"http://127.0.0.1:{env['PLATFORM_MLFLOW_PORT']}"

    def call(path: str, data: dict, role: str | None) -> int:
        req = urllib.request.Request(f"{base}{path}", data=json.dumps(data).encode())
        req.add_header("Content-Type", "application/json")
        if role:
            token = base64.b64encode(f"{role}:{keys[f'mlflow_{role}_password']}".encode())
            req.add_header("Authorization", f"Basic {token.decode()}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback)
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    search = "/api/2.0/mlflow/experiments/search"
    assert call(search, {"max_results": 5}, None) == 401
    assert call(search, {"max_results": 5}, "reader") == 200
    alias = {"name": "credit-risk-pd", "alias": "champion", "version": "1"}
    assert call("/api/2.0/mlflow/registered-models/alias", alias, None) == 401
    assert call("/api/2.0/mlflow/registered-models/alias", alias, "reader") == 403


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
