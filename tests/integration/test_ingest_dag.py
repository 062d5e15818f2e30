"""The ingest_transactions DAG, run with dag.test() against the real warehouse."""

from __future__ import annotations

import datetime as dt
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


def test_scheduled_run_loads_the_previous_day_and_fails_on_a_missing_file(
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
    missing = load_dag("ingest_transactions").test(
        logical_date=dt.datetime(2019, 2, 14, 2, tzinfo=dt.UTC)
    )
    assert missing.state == "failed"
    assert _count(
        db_url, "SELECT count(*) FROM ingestion_runs WHERE logical_date = '2019-02-13' "
        "AND status = 'failed' AND message LIKE '%no such landing file%'"
    ) == 1
