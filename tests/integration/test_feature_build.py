"""build_features end to end on the real warehouse: atomic dates, labels, parity, dag.test()."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from creditrisk.catalogue import FEATURE_NAMES
from creditrisk.features.build import build_for_date, online_features
from creditrisk.features.compute import compute_features
from creditrisk.storage import features as store
from creditrisk.storage.db import make_engine
from tests.warehouse import load_generated

END = dt.date(2019, 2, 13)
AS_OF = dt.date(2019, 1, 10)


@pytest.fixture(scope="module")
def history(warehouse_copy, tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """One warehouse with 90 days of 600 generated customers, shared by this module."""
    with warehouse_copy("crtest_features_module") as url:
        load_generated(url, tmp_path_factory.mktemp("landing"), customers=600, days=90,
                       end_date=END, seed=21)
        yield url


def _scalar(url: str, query: str) -> object:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query)).scalar_one()
    finally:
        engine.dispose()


def test_build_writes_features_and_labels_and_a_rerun_replaces_them(history: str) -> None:
    first = build_for_date(AS_OF, database_url=history, run_id="r1")
    assert first["customers"] > 100 and first["labels"] == first["customers"]
    assert 0.05 < first["bad_rate"] < 0.95  # type: ignore[operator]
    assert first["iv"] and {"feature", "iv", "strength"} <= set(first["iv"][0])  # type: ignore[index]
    second = build_for_date(AS_OF, database_url=history, run_id="r2")
    assert second["customers"] == first["customers"]
    assert _scalar(history, f"SELECT count(*) FROM customer_features WHERE as_of_date='{AS_OF}'") \
        == first["customers"]
    assert _scalar(history, "SELECT count(DISTINCT run_id) FROM customer_features") == 1
    assert _scalar(history, f"SELECT count(*) FROM customer_labels WHERE as_of_date='{AS_OF}'") \
        == first["labels"]


def test_no_label_while_the_outcome_window_is_not_loaded(history: str) -> None:
    late = END - dt.timedelta(days=10)
    res = build_for_date(late, database_url=history, run_id="r3")
    assert res["labels"] == 0 and "not fully loaded" in str(res["label_note"])
    assert _scalar(history, f"SELECT count(*) FROM customer_labels WHERE as_of_date='{late}'") == 0


def test_batch_training_and_online_paths_give_the_same_features(history: str) -> None:
    """Parity: stored rows (batch scoring and training read them) == the API's on-the-fly path."""
    build_for_date(AS_OF, database_url=history, run_id="parity")
    engine = make_engine(history)
    try:
        stored = store.read_features(engine, AS_OF)
        sample = list(stored.index[:: max(len(stored) // 25, 1)])
        online = online_features(engine, sample, AS_OF)
        full = compute_features(store.load_transactions(engine, before=AS_OF), AS_OF)
    finally:
        engine.dispose()
    pd.testing.assert_frame_equal(online, stored.loc[sample], check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(full.loc[sample], online, check_exact=False, rtol=1e-9)


def test_feature_columns_match_the_catalogue(history: str) -> None:
    engine = make_engine(history)
    try:
        cols = [c["name"] for c in sa.inspect(engine).get_columns("customer_features")]
    finally:
        engine.dispose()
    assert [c for c in cols if c in FEATURE_NAMES] == list(FEATURE_NAMES)
    assert set(cols) - set(FEATURE_NAMES) == {"customer_id", "as_of_date", "computed_at", "run_id"}


@pytest.mark.slow
def test_dag_test_builds_the_day_after_the_newest_transaction(
    load_dag, warehouse_env: Path, db_url: str  # type: ignore[no-untyped-def]
) -> None:
    load_generated(db_url, warehouse_env, customers=150, days=20, end_date=END, seed=4)
    run = load_dag("build_features").test(logical_date=dt.datetime(2019, 2, 14, 3, tzinfo=dt.UTC))
    assert run.state == "success"
    assert _scalar(db_url, "SELECT max(as_of_date)::text FROM customer_features") == "2019-02-14"
    manual = load_dag("build_features").test(
        logical_date=dt.datetime(2019, 2, 14, 4, tzinfo=dt.UTC),
        run_conf={"as_of": "2019-02-01", "horizon_days": 7},
    )
    assert manual.state == "success"
    assert _scalar(
        db_url, "SELECT count(*) FROM customer_labels WHERE as_of_date = '2019-02-01'"
    ) == _scalar(db_url, "SELECT count(*) FROM customer_features WHERE as_of_date='2019-02-01'")


def _date_rows(url: str, as_of: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The date's features and labels, without the run and the time they were written."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            feats, labels = (pd.read_sql(sa.text(
                f"SELECT * FROM {table} WHERE as_of_date = :d ORDER BY customer_id"),  # nosec B608 - constants
                conn, params={"d": as_of}) for table in ("customer_features", "customer_labels"))
    finally:
        engine.dispose()
    return (feats.drop(columns=["computed_at", "run_id"]),
            labels.drop(columns=[c for c in ("computed_at", "run_id") if c in labels]))


def _xcom(run, task_id: str) -> object:  # type: ignore[no-untyped-def]
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(XComModel.get_many(
            run_id=run.run_id, dag_ids="build_features", task_ids=task_id,
            key="return_value")).first()
        return XComModel.deserialize_value(row)


@pytest.mark.slow
def test_the_dag_with_mapped_chunks_publishes_what_the_cli_builds(
    load_dag, warehouse_env: Path, db_url: str  # type: ignore[no-untyped-def]
) -> None:
    load_generated(db_url, warehouse_env, customers=150, days=20, end_date=END, seed=4)
    conf = {"as_of": "2019-02-10", "horizon_days": 3, "chunks": 3}
    run = load_dag("build_features").test(
        logical_date=dt.datetime(2019, 2, 14, 4, tzinfo=dt.UTC), run_conf=conf)
    assert run.state == "success"
    mapped = [ti for ti in run.get_task_instances() if ti.task_id == "build_chunk"]
    assert sorted(ti.map_index for ti in mapped) == [0, 1, 2]
    assert all(ti.state == "success" for ti in mapped)
    dag_feats, dag_labels = _date_rows(db_url, "2019-02-10")
    assert len(dag_feats) > 50 and len(dag_labels) == len(dag_feats)
    assert _scalar(db_url, "SELECT count(*) FROM customer_features_stage") == 0
    assert _scalar(db_url, "SELECT count(*) FROM customer_features_stage_chunks") == 0
    cli = build_for_date(dt.date(2019, 2, 10), database_url=db_url, run_id="cli",
                         horizon_days=3)
    assert cli["chunks"] == 1  # the CLI's one-transaction path
    cli_feats, cli_labels = _date_rows(db_url, "2019-02-10")
    pd.testing.assert_frame_equal(dag_feats, cli_feats, check_exact=True)
    pd.testing.assert_frame_equal(dag_labels, cli_labels, check_exact=True)


@pytest.mark.slow
def test_a_chunk_rerun_after_a_crash_then_publish_ends_as_a_clean_build(
    load_dag, warehouse_env: Path, db_url: str, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    """Chunk 1's task dies right after its commit: the run fails and the date stays as it
    was; re-running that chunk's task and publish gives exactly the clean build."""
    from creditrisk.features import incremental
    from creditrisk.tasks import feature_chunk_from_settings, publish_features_from_settings

    load_generated(db_url, warehouse_env, customers=150, days=20, end_date=END, seed=4)
    day = dt.date(2019, 2, 10)
    build_for_date(day, database_url=db_url, run_id="clean", horizon_days=3)
    clean = _date_rows(db_url, day.isoformat())
    stage_chunk = incremental.stage_chunk

    def dies_after_commit(engine, plan, chunk, run_id):  # type: ignore[no-untyped-def]
        staged = stage_chunk(engine, plan, chunk, run_id)
        if chunk == 1:
            raise RuntimeError("worker lost after the chunk's commit")
        return staged

    monkeypatch.setattr(incremental, "stage_chunk", dies_after_commit)
    run = load_dag("build_features").test(
        logical_date=dt.datetime(2019, 2, 14, 4, tzinfo=dt.UTC),
        run_conf={"as_of": day.isoformat(), "horizon_days": 3, "chunks": 3})
    assert run.state == "failed"
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    assert states[("build_chunk", 1)] == "failed" and states[("publish", -1)] != "success"
    for now, before in zip(_date_rows(db_url, day.isoformat()), clean, strict=True):
        pd.testing.assert_frame_equal(now, before, check_exact=True)  # the old date, whole
    monkeypatch.setattr(incremental, "stage_chunk", stage_chunk)
    plan = _xcom(run, "plan")
    assert plan["chunks"] == 3  # type: ignore[index]
    assert _scalar(db_url, "SELECT count(*) FROM customer_features_stage_chunks") == 3
    staged = [feature_chunk_from_settings(plan, c, run_id=run.run_id)  # type: ignore[arg-type]
              for c in (1,)]  # the failed task, re-run: its first try's rows are replaced
    result = publish_features_from_settings(plan, staged, run_id=run.run_id)  # type: ignore[arg-type]
    assert result["customers"] == len(clean[0])
    for now, before in zip(_date_rows(db_url, day.isoformat()), clean, strict=True):
        pd.testing.assert_frame_equal(now, before, check_exact=True)
    assert _scalar(db_url, "SELECT count(*) FROM customer_feature_state"
                           f" WHERE as_of_date = '{day}'") == len(clean[0])


def test_a_backfill_makes_earlier_built_features_stale(db_url: str, tmp_path: Path) -> None:
    """Features built before older history was loaded are detected as stale."""
    from creditrisk.landing.files import write_landing
    from creditrisk.landing.simulate import generate_transactions
    from tests.warehouse import load_landing_files

    frame = generate_transactions(customers=200, days=20, end_date=END, seed=9)
    files = write_landing(frame, tmp_path)
    load_landing_files(db_url, files[-3:], run_id="recent")  # only the last days first
    build_for_date(END + dt.timedelta(days=1), database_url=db_url, run_id="early")
    engine = make_engine(db_url)
    try:
        assert store.stale_feature_dates(engine, [END + dt.timedelta(days=1)]) == set()
        load_landing_files(db_url, files[:-3], run_id="backfill")
        assert store.stale_feature_dates(engine, [END + dt.timedelta(days=1)]) == {
            END + dt.timedelta(days=1)
        }
    finally:
        engine.dispose()
