"""Reliability under real faults: a PostgreSQL backend killed mid-write, the MLflow
server down at scoring time, an unreadable landing folder.

Every fault is real (``pg_terminate_backend``, a stopped ``mlflow server`` process, file
permissions enforced on an unprivileged user) and every check is against a real
PostgreSQL and a real MLflow: a crashed run fails with a one-line reason, writes
nothing, and its re-run leaves exactly what one clean run leaves on a fresh database.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from creditrisk.errors import ServiceUnavailableError
from creditrisk.ingest.load import ingest_day
from creditrisk.landing.files import write_landing
from creditrisk.landing.simulate import generate_landing, generate_transactions
from creditrisk.schema import landing_file_name
from tests.integration.fault_tools import (
    VENV_BIN,
    MlflowServer,
    table,
    tcp_relay,
    terminate_backends,
    terminate_while_blocked,
    wait_for_backends,
    world_traversable_dir,
)
from tests.warehouse import load_generated, load_landing_files, refresh_aggregates, rows

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]

DAY1, DAY2 = dt.date(2019, 1, 1), dt.date(2019, 1, 2)
BAD_LINES = (5, 17, 40)  # lines of DAY2's file given a negative Value: quarantined


# ----------------------------------------------------------------------------- ingestion


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two daily files; the second carries a few bad rows (so the quarantine is not empty)."""
    out = tmp_path_factory.mktemp("faults-landing")
    generate_landing(customers=200, days=2, end_date=DAY2, out_dir=out, seed=7)
    day2 = out / landing_file_name(DAY2)
    lines = day2.read_text().splitlines()
    for n in BAD_LINES:
        fields = lines[n - 1].split(",")
        fields[12] = "-1"  # Value
        lines[n - 1] = ",".join(fields)
    day2.write_text("\n".join(lines) + "\n")
    return out


def _ingest(url: str, landing: Path, day: dt.date, run_id: str) -> dict[str, object]:
    return ingest_day(day, database_url=url, landing_dir=landing, run_id=run_id,
                      data_docs=False)


RAW_VOLATILE = ("ingested_at",)
# what the client reads of a terminated backend (the server's FATAL, or the bare EOF)
_TERMINATED = re.compile(r"\((terminating connection due to administrator command|server closed"
                         r" the connection unexpectedly)\)")
QUARANTINE_VOLATILE = ("quarantine_id", "quarantined_at")
RUN_OUTCOME = ("run_id, source_file, logical_date, rows_read, rows_loaded, rows_quarantined, "
               "rows_unchanged, gx_success, status, message")


def _ingest_state(url: str) -> dict[str, list[tuple]]:
    return {
        "raw": table(url, "raw_transactions", without=RAW_VOLATILE),
        "quarantine": table(url, "quarantined_transactions", without=QUARANTINE_VOLATILE,
                            order="source_file, line_number"),
        # marked in the file's transaction: a crash leaves neither rows nor marks
        "dirty": table(url, "customer_aggregate_dirty_days", without=("marked_at",),
                       order="day"),
    }


def _aggregates(url: str) -> dict[str, list[tuple]]:
    """The aggregates the next feature build makes of what is loaded (it refreshes)."""
    refresh_aggregates(url)
    return {
        "aggregates": table(url, "customer_daily_aggregates", order="customer_id, day"),
        "first_seen": table(url, "customer_first_seen", order="customer_id, kind, value"),
        "products": table(url, "customer_daily_products", order="customer_id, day, product_id"),
    }


@pytest.fixture(scope="module")
def clean_ingest(warehouse_copy, landing: Path) -> Iterator[dict[str, object]]:
    """What one clean run of the two files leaves on a fresh warehouse."""
    with warehouse_copy(f"crtest_faults_clean_{uuid.uuid4().hex[:6]}") as url:
        _ingest(url, landing, DAY1, "day1")
        _ingest(url, landing, DAY2, "rerun")
        state: dict[str, object] = dict(_ingest_state(url))
        assert state["dirty"]
        state.update(_aggregates(url))
        state["runs"] = rows(url, f"SELECT {RUN_OUTCOME} FROM ingestion_runs ORDER BY run_id")
        yield state


def _assert_like_the_clean_run(url: str, clean: dict[str, object], crashed: str) -> None:
    state = _ingest_state(url)
    assert state["raw"] == clean["raw"]
    assert state["quarantine"] == clean["quarantine"]
    assert len(state["quarantine"]) == len(BAD_LINES)
    assert state["dirty"] == clean["dirty"]
    made = _aggregates(url)
    assert made["aggregates"] == clean["aggregates"] and made["aggregates"]
    assert made["first_seen"] == clean["first_seen"]
    assert made["products"] == clean["products"]
    assert rows(url, f"SELECT {RUN_OUTCOME} FROM ingestion_runs WHERE run_id <> :r ORDER BY "
                     "run_id", r=crashed) == clean["runs"]


def test_backend_killed_mid_ingest_loads_nothing_and_a_rerun_equals_a_clean_run(
    db_url: str, landing: Path, clean_ingest: dict[str, object],
) -> None:
    _ingest(db_url, landing, DAY1, "day1")
    before = _ingest_state(db_url)
    path = landing / landing_file_name(DAY2)

    # The load inserts the file's rows, then replaces its quarantine: hold that table and
    # kill the backend there, with the day's rows inserted but not committed.
    crash = terminate_while_blocked(
        db_url, "quarantined_transactions", "%DELETE FROM quarantined_transactions%",
        lambda: _ingest(db_url, landing, DAY2, "crashed"))
    error = crash.error
    assert isinstance(error, ServiceUnavailableError), repr(error)
    message = str(error)
    assert str(path) in message and "connection was lost mid-load" in message
    assert _TERMINATED.search(message)
    assert "\n" not in message and "nothing of it was loaded" in message

    # no partial day: exactly the state before the crashed run
    assert _ingest_state(db_url) == before
    # the crashed run is recorded as failed, with the reason the task raised
    assert rows(db_url, "SELECT status, message, rows_loaded FROM ingestion_runs"
                        " WHERE run_id = 'crashed'") == [("failed", message, 0)]

    res = _ingest(db_url, landing, DAY2, "rerun")
    assert res["status"] == "succeeded" and res["rows_quarantined"] == len(BAD_LINES)
    _assert_like_the_clean_run(db_url, clean_ingest, crashed="crashed")


def test_ingest_process_killed_mid_load_is_closed_by_the_rerun(
    db_url: str, landing: Path, clean_ingest: dict[str, object],
) -> None:
    """A worker that dies outright (SIGKILL, its connections cut) cannot record anything:
    its row says 'running' until the next run of the file closes it as failed."""
    _ingest(db_url, landing, DAY1, "day1")
    before = _ingest_state(db_url)
    app = f"creditrisk-killed-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "DATABASE_URL": db_url, "CREDITRISK_LANDING_DIR": str(landing),
           "PGAPPNAME": app}
    import sqlalchemy as sa

    locker = sa.create_engine(db_url).connect()
    locker.execute(sa.text("BEGIN; LOCK TABLE quarantined_transactions IN ACCESS EXCLUSIVE MODE"))
    proc = subprocess.Popen(
        [str(VENV_BIN / "creditrisk"), "ingest", "--date", DAY2.isoformat(), "--run-id",
         "killed", "--no-data-docs"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        wait_for_backends(db_url, app, waiting=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        terminate_backends(db_url, app)  # the worker's host is gone: so are its sessions
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        locker.execute(sa.text("ROLLBACK"))
        locker.close()
        locker.engine.dispose()
    assert proc.returncode == -signal.SIGKILL

    assert _ingest_state(db_url) == before
    assert rows(db_url, "SELECT status, rows_loaded FROM ingestion_runs WHERE run_id = 'killed'"
                ) == [("running", 0)]

    _ingest(db_url, landing, DAY2, "rerun")
    (status, message), = rows(db_url, "SELECT status, message FROM ingestion_runs"
                                      " WHERE run_id = 'killed'")
    assert status == "failed"
    assert message.startswith("did not finish") and "nothing of it was loaded" in message
    assert message.endswith("Closed by run rerun")
    _assert_like_the_clean_run(db_url, clean_ingest, crashed="killed")


def test_a_run_in_flight_is_not_closed_by_another_run(
    db_url: str, landing: Path,
) -> None:
    """Only dead runs are closed: a 'running' row whose run still holds its liveness lock
    (here: a live session of the test) is left alone by a concurrent run of the file."""
    import sqlalchemy as sa

    from creditrisk.storage import transactions as sql

    live = sa.create_engine(db_url).connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        sql.hold_run_lock(live, "in-flight", landing_file_name(DAY1))
        live.execute(sa.text(
            "INSERT INTO ingestion_runs (run_id, source_file, logical_date, rows_read,"
            " rows_loaded, rows_quarantined, status, started_at, finished_at) VALUES"
            " ('in-flight', :f, :d, 0, 0, 0, 'running', now(), now())"),
            {"f": landing_file_name(DAY1), "d": DAY1})
        _ingest(db_url, landing, DAY1, "other")
        assert rows(db_url, "SELECT status FROM ingestion_runs WHERE run_id = 'in-flight'") \
            == [("running",)]
    finally:
        live.close()
        live.engine.dispose()
    _ingest(db_url, landing, DAY1, "after")  # its session is gone now: closed
    assert rows(db_url, "SELECT status FROM ingestion_runs WHERE run_id = 'in-flight'") \
        == [("failed",)]


# ----------------------------------------------------------------------------- features

F_END = dt.date(2019, 2, 13)
AS_OF = dt.date(2019, 2, 1)
HORIZON = 7  # labels need the days up to AS_OF + 6: loaded
FEATURES_VOLATILE = ("computed_at",)


def _feature_state(url: str, *, volatile: tuple[str, ...] = FEATURES_VOLATILE) -> dict:
    return {
        name: [r for r in table(url, name, without=volatile, order="customer_id, as_of_date")
               if str(r[1]) == AS_OF.isoformat()]
        for name in ("customer_features", "customer_labels")
    }


def test_backend_killed_mid_feature_build_keeps_the_old_build_and_a_rerun_equals_a_clean_build(
    db_url: str, tmp_path: Path, warehouse_copy,
) -> None:
    from creditrisk.features.build import build_for_date

    files = write_landing(generate_transactions(customers=200, days=25, end_date=F_END, seed=9),
                          tmp_path)
    load_landing_files(db_url, files[-18:], run_id="recent")
    first = build_for_date(AS_OF, database_url=db_url, run_id="before", horizon_days=HORIZON)
    assert first["labels"] == first["customers"]
    assert int(str(first["customers"])) > 50
    old, old_stable = _feature_state(db_url, volatile=()), _feature_state(db_url)
    load_landing_files(db_url, files[:-18], run_id="backfill")  # the old build is now stale

    # Features and labels of a date are written in one transaction, features first:
    # hold customer_labels and kill the build there, its new features written.
    crash = terminate_while_blocked(
        db_url, "customer_labels", "%DELETE FROM customer_labels%",
        lambda: build_for_date(AS_OF, database_url=db_url, run_id="crashed",
                               horizon_days=HORIZON))
    error = crash.error
    assert isinstance(error, ServiceUnavailableError), repr(error)
    assert f"building customer_features as of {AS_OF}" in str(error)
    assert _TERMINATED.search(str(error))
    assert "rolled back" in str(error) and "\n" not in str(error)
    assert _feature_state(db_url, volatile=()) == old  # the old build, whole and untouched

    rerun = build_for_date(AS_OF, database_url=db_url, run_id="rerun", horizon_days=HORIZON)
    with warehouse_copy(f"crtest_faults_fclean_{uuid.uuid4().hex[:6]}") as clean_url:
        load_landing_files(clean_url, files, run_id="all")
        clean = build_for_date(AS_OF, database_url=clean_url, run_id="rerun",
                               horizon_days=HORIZON)
        expected = _feature_state(clean_url)
    rerun.pop("timings"), clean.pop("timings")  # seconds per phase: volatile
    assert rerun == clean
    got = _feature_state(db_url)
    assert got == expected
    assert got["customer_features"] != old_stable["customer_features"]  # the backfill counts
    assert len(got["customer_features"]) == rerun["customers"]
    assert len(got["customer_labels"]) == rerun["labels"] == rerun["customers"]


# ----------------------------------------------------------------------------- MLflow down

M_END = dt.date(2019, 2, 13)
SCORE_DAY = dt.date(2019, 2, 14)


@dataclass(frozen=True)
class Registry:
    server: MlflowServer
    database_url: str
    model_name: str
    version: str


@pytest.fixture(scope="module")
def registry(
    warehouse_copy, mlflow_store: str, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Registry]:
    """A real ``mlflow server`` on the session's store and a champion registered through it."""
    from mlflow import MlflowClient

    from creditrisk.model.train import train
    from tests.serving.conftest import fast_config

    artifacts = Path(os.environ["CREDITRISK_MLFLOW_ARTIFACT_ROOT"])
    server = MlflowServer(mlflow_store, artifacts,
                          tmp_path_factory.mktemp("mlflow-server") / "server.log")
    server.start()
    try:
        with warehouse_copy(f"crtest_faults_score_{uuid.uuid4().hex[:6]}") as url:
            load_generated(url, tmp_path_factory.mktemp("faults-score-landing"), customers=300,
                           days=75, end_date=M_END, seed=31)
            model = f"credit-risk-pd-faults-{uuid.uuid4().hex[:6]}"
            res = train(SCORE_DAY, database_url=url, tracking_uri=server.url, model_name=model,
                        run_id="faults-train", promote=False, config=fast_config())
            MlflowClient(tracking_uri=server.url).set_registered_model_alias(
                model, "champion", res["version"])
            yield Registry(server, url, model, str(res["version"]))
    finally:
        server.stop()


def _parse_dag(dag_id: str):
    """The DAG as the dag-processor parses it (load_dag switches retries off)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(REPO / "dags"), bundle_path=REPO / "dags", safe_mode=False)
    assert bag.import_errors == {}
    return bag.get_dag(dag_id)


def test_scoring_fails_fast_and_clearly_while_mlflow_is_down_and_a_rerun_scores_everyone_once(
    registry: Registry, load_dag, airflow_db: None,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from creditrisk.config import get_settings
    from creditrisk.scoring.batch import prepare

    url, server = registry.database_url, registry.server
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("CREDITRISK_MODEL_NAME", registry.model_name)
    get_settings.cache_clear()

    parsed = _parse_dag("score_customers")
    assert all(parsed.get_task(t).retries >= 1 for t in ("prepare", "score_chunk", "publish"))

    server.stop(crash=True)
    try:
        t0 = time.monotonic()
        with pytest.raises(ServiceUnavailableError) as failed:
            prepare(SCORE_DAY, database_url=url, tracking_uri=server.url,
                    model_name=registry.model_name, alias="champion", run_id="down")
        assert time.monotonic() - t0 < 20
        message = str(failed.value)
        assert f"the MLflow registry at {server.url} is unreachable" in message
        assert "Connection refused" in message and f"{registry.model_name}@champion" in message
        assert "\n" not in message

        t0 = time.monotonic()
        capsys.readouterr()
        down = load_dag("score_customers").test(
            logical_date=dt.datetime(2019, 2, 14, 3, tzinfo=dt.UTC))
        assert time.monotonic() - t0 < 60
        assert down.state == "failed"
        states = {ti.task_id: ti.state for ti in down.get_task_instances()}
        assert states["prepare"] == "failed"
        assert states["publish"] != "success"
        logged = capsys.readouterr()
        assert f"the MLflow registry at {server.url} is unreachable" in logged.out + logged.err
        for name in ("risk_scores", "risk_scores_stage", "score_monitoring"):
            assert rows(url, f"SELECT count(*) FROM {name}") == [(0,)], name
    finally:
        server.start()

    up = load_dag("score_customers").test(logical_date=dt.datetime(2019, 2, 14, 4, tzinfo=dt.UTC))
    assert up.state == "success"
    (n_features,), = rows(url, "SELECT count(*) FROM customer_features WHERE as_of_date = :d",
                          d=SCORE_DAY)
    assert n_features > 100
    assert rows(url, "SELECT count(*), count(DISTINCT customer_id), count(DISTINCT run_id),"
                     " min(model_version), max(model_version) FROM risk_scores"
                     " WHERE score_date = :d", d=SCORE_DAY) == [
        (n_features, n_features, 1, registry.version, registry.version)]
    assert rows(url, "SELECT count(*) FROM risk_scores") == [(n_features,)]
    assert rows(url, "SELECT n_scored FROM score_monitoring") == rows(
        url, "SELECT count(*) FROM risk_scores WHERE segment = 'scored'")


# ----------------------------------------------------------------------------- permissions

NOBODY = 65534


def _run_cli(
    args: list[str], env: dict[str, str], cwd: Path, as_nobody: bool,
) -> subprocess.CompletedProcess[str]:
    """The real ``creditrisk`` console script, as the unprivileged user ``nobody`` if asked.

    ``setpriv`` (util-linux) drops to the user before it executes the script; where it
    is missing, Python's own switch does (``user=``/``group=``/``extra_groups=``).
    """
    cmd = [str(VENV_BIN / "creditrisk"), *args]
    setpriv = shutil.which("setpriv") if as_nobody else None
    if setpriv:
        cmd = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", *cmd]
    switch = as_nobody and not setpriv
    return subprocess.run(
        cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=180, check=False,
        user=NOBODY if switch else None, group=NOBODY if switch else None,
        extra_groups=[] if switch else None,
    )


@pytest.mark.parametrize("target", ["folder", "file"])
def test_unreadable_landing_path_fails_naming_the_path_and_loads_nothing(
    db_url: str, target: str,
) -> None:
    """The real CLI, run by a user who may not read the landing folder (or the day's file).

    As root (CI), chmod 000 stops nothing: the command runs as the unprivileged user
    ``nobody`` (65534) against a root-owned folder (or file) of mode 000, reaching
    PostgreSQL through a loopback TCP relay (the test server's unix socket sits in a
    root-only folder). As any other user, chmod 000 on its own path is enough.
    """
    as_root = os.geteuid() == 0
    with world_traversable_dir("crfaults-perm-") as parent, tcp_relay(db_url) as child_url:
        landing = parent / "landing"
        landing.mkdir()
        generate_landing(customers=50, days=1, end_date=DAY1, out_dir=landing, seed=3)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(parent),
               "PYTHONDONTWRITEBYTECODE": "1", "DATABASE_URL": child_url,
               "CREDITRISK_LANDING_DIR": str(landing)}
        if as_root:
            try:
                probe = _run_cli(["--help"], env, parent, as_nobody=True)
                problem = "" if probe.returncode == 0 else probe.stderr.strip()[-300:]
            except OSError as exc:
                problem = str(exc)
            if problem:
                pytest.skip(f"user {NOBODY} cannot run {VENV_BIN / 'creditrisk'} here (the "
                            f"interpreter or the venv is not readable to it): {problem}")
        locked = landing if target == "folder" else landing / landing_file_name(DAY1)
        mode = locked.stat().st_mode & 0o777
        locked.chmod(0)
        try:
            result = _run_cli(
                ["ingest", "--date", DAY1.isoformat(), "--run-id", "perm", "--no-data-docs"],
                env, parent, as_nobody=as_root)
        finally:
            locked.chmod(mode)
    assert result.returncode == 1, result
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("creditrisk: ")]
    expected = (f"{landing}: permission denied reading the landing folder" if target == "folder"
                else f"{locked}: permission denied reading the landing file")
    assert errors == [f"creditrisk: error: {expected}"], result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert rows(db_url, "SELECT count(*) FROM raw_transactions") == [(0,)]
    assert rows(db_url, "SELECT count(*) FROM quarantined_transactions") == [(0,)]
    assert rows(db_url, "SELECT run_id, source_file, logical_date, status, message, rows_loaded"
                        " FROM ingestion_runs") == [
        ("perm", landing_file_name(DAY1), DAY1, "failed", expected, 0)]
