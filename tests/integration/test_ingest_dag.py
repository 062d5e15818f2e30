"""The ingest_transactions DAG, run with dag.test() against the real warehouse."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from creditrisk.landing.simulate import generate_landing

pytestmark = pytest.mark.slow


def _count(db_url: str, sql: str) -> int:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar_one())
    finally:
        engine.dispose()


def test_dag_test_loads_a_range_and_a_rerun_changes_nothing(
    load_dag, warehouse_env: Path, db_url: str  # type: ignore[no-untyped-def]
) -> None:
    summary = generate_landing(
        customers=200, days=3, end_date=dt.date(2019, 1, 3), out_dir=warehouse_env, seed=7
    )
    run = load_dag("ingest_transactions").test(
        logical_date=dt.datetime(2019, 1, 4, 2, tzinfo=dt.UTC),
        run_conf={"from_date": "2019-01-01", "to_date": "2019-01-03"},
    )
    assert run.state == "success"
    assert _count(db_url, "SELECT count(*) FROM raw_transactions") == summary.rows
    assert _count(db_url, "SELECT count(*) FROM ingestion_runs WHERE status='succeeded'") == 3
    snapshot = _count(
        db_url, "SELECT count(*) FROM raw_transactions WHERE ingest_run_id = "
        "(SELECT min(ingest_run_id) FROM raw_transactions)"
    )

    rerun = load_dag("ingest_transactions").test(
        logical_date=dt.datetime(2019, 1, 4, 3, tzinfo=dt.UTC),
        run_conf={"date": "2019-01-02"},
    )
    assert rerun.state == "success"
    assert _count(db_url, "SELECT count(*) FROM raw_transactions") == summary.rows
    assert _count(
        db_url, "SELECT count(*) FROM raw_transactions WHERE ingest_run_id = "
        "(SELECT min(ingest_run_id) FROM raw_transactions)"
    ) == snapshot
    assert _count(db_url, "SELECT sum(rows_unchanged) FROM ingestion_runs") > 0


def test_scheduled_run_loads_the_previous_day(
    load_dag, warehouse_env: Path, db_url: str  # type: ignore[no-untyped-def]
) -> None:
    generate_landing(
        customers=100, days=1, end_date=dt.date(2019, 2, 12), out_dir=warehouse_env, seed=3
    )
    ok = load_dag("ingest_transactions").test(
        logical_date=dt.datetime(2019, 2, 13, 2, tzinfo=dt.UTC)
    )
    assert ok.state == "success"
    assert _count(
        db_url, "SELECT count(*) FROM ingestion_runs WHERE logical_date = '2019-02-12'"
    ) == 1


def _states(run) -> dict[str, tuple[str, int]]:  # type: ignore[no-untyped-def]
    return {ti.task_id: (str(ti.state), ti.try_number) for ti in run.get_task_instances()}


def test_a_missing_file_is_waited_for_then_fails_once_with_one_alert(
    load_dag, warehouse_env: Path, db_url: str,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from creditrisk.config import get_settings
    from tests.alert_receiver import webhook_receiver

    monkeypatch.setenv("CREDITRISK_LANDING_WAIT_S", "3")
    monkeypatch.setenv("CREDITRISK_LANDING_POKE_S", "1")
    with webhook_receiver() as rec:
        monkeypatch.setenv("CREDITRISK_ALERT_WEBHOOK_URL", rec.url)
        get_settings.cache_clear()
        dag = load_dag("ingest_transactions")  # parsed with the short wait
        for t in dag.tasks:  # retries on, as deployed: a missing file must not use them
            t.retries, t.retry_delay = 2, dt.timedelta(0)
        started = time.monotonic()
        run = dag.test(logical_date=dt.datetime(2019, 2, 14, 2, tzinfo=dt.UTC))
        took = time.monotonic() - started
    get_settings.cache_clear()

    assert run.state == "failed"
    states = _states(run)
    assert states["wait_for_landing_files"] == ("failed", 1)  # one try, not three
    assert states["ingest"][0] == "upstream_failed"
    assert 3 <= took < 60  # it waited out the wait, then stopped
    assert rec.kinds() == ["task_failed"]  # one alert
    assert "ingest_transactions.wait_for_landing_files failed" in rec.posts[0]["text"]
    # nothing was tried: no ingestion_runs row for a file that never came
    assert _count(db_url, "SELECT count(*) FROM ingestion_runs") == 0


def test_a_file_that_arrives_while_waiting_is_loaded(
    load_dag, warehouse_env: Path, db_url: str,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("CREDITRISK_LANDING_WAIT_S", "120")
    monkeypatch.setenv("CREDITRISK_LANDING_POKE_S", "1")
    staged = tmp_path / "staged"
    summary = generate_landing(
        customers=60, days=1, end_date=dt.date(2019, 2, 13), out_dir=staged, seed=8
    )
    (path,) = staged.glob("*.csv")
    # the file lands two seconds into the wait
    timer = threading.Timer(2.0, lambda: shutil.move(str(path), warehouse_env / path.name))
    timer.start()
    try:
        run = load_dag("ingest_transactions").test(
            logical_date=dt.datetime(2019, 2, 14, 2, tzinfo=dt.UTC)
        )
    finally:
        timer.cancel()
    assert run.state == "success"
    assert _states(run)["wait_for_landing_files"][0] == "success"
    assert _count(db_url, "SELECT count(*) FROM raw_transactions") == summary.rows
