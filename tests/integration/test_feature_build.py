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
