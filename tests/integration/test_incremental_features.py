"""Incremental features: the daily aggregates give exactly the full computation's values.

Every feature built from ``customer_daily_aggregates`` and the folded states equals
``compute_features`` over the raw history (within 1e-9; counts exact), on a generated
world and on the real Xente rows; a rebuild from ``raw_transactions`` equals the
incremental tables and features exactly; late rows, re-ingests, chunking and a crash
between chunks all end where one clean build ends.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from creditrisk.features.build import (
    build_chunk,
    build_for_date,
    plan_features,
    publish_features,
    rebuild_aggregates,
)
from creditrisk.features.compute import MAIN_CATEGORIES, compute_features
from creditrisk.storage import aggregates
from creditrisk.storage import features as store
from creditrisk.storage.db import make_engine
from tests.warehouse import load_landing_files, refresh_aggregates, rows

END = dt.date(2019, 2, 13)
COUNTS = ("frequency", "debit_count", "credit_count", "active_days", "txn_last_30d",
          "n_categories", "n_products", "n_providers", "fraud_count", "purchases_7d",
          "purchases_30d", "active_days_30d", "n_products_30d")
AGG_TABLES = {"customer_daily_aggregates": "customer_id, day",
              "customer_daily_products": "customer_id, day, product_id",
              "customer_first_seen": "customer_id, kind, value"}


def _features(url: str, as_of: dt.date) -> pd.DataFrame:
    engine = make_engine(url)
    try:
        return store.read_features(engine, as_of).sort_index()
    finally:
        engine.dispose()


def _reference(url: str, as_of: dt.date) -> pd.DataFrame:
    engine = make_engine(url)
    try:
        return compute_features(store.load_transactions(engine, before=as_of), as_of)
    finally:
        engine.dispose()


def _assert_matches_full_computation(url: str, as_of: dt.date) -> None:
    got, want = _features(url, as_of), _reference(url, as_of)
    assert list(got.index) == list(want.index)
    assert len(got) > 10
    pd.testing.assert_frame_equal(got[list(COUNTS)], want[list(COUNTS)], check_exact=True)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9, atol=1e-9)


def _table(url: str, table: str, order: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            # test-only: table and order names are the constants above
            return pd.read_sql(sa.text(f"SELECT * FROM {table} ORDER BY {order}"), conn)  # nosec B608
    finally:
        engine.dispose()


def _published(url: str, as_of: dt.date) -> pd.DataFrame:
    frame = _table(url, "customer_features", "customer_id, as_of_date")
    return frame[frame["as_of_date"] == as_of].drop(columns=["computed_at", "run_id"]) \
        .reset_index(drop=True)


@pytest.fixture(scope="module")
def world(warehouse_copy, tmp_path_factory) -> Iterator[tuple[str, list[Path]]]:  # type: ignore[no-untyped-def]
    """60 generated days of 500 customers, the last 5 days held back."""
    from creditrisk.landing.simulate import generate_landing

    out = tmp_path_factory.mktemp("landing")
    files = generate_landing(customers=500, days=60, end_date=END, out_dir=out, seed=15).files
    with warehouse_copy("crtest_incremental_module") as url:
        load_landing_files(url, files[:-5])
        yield url, files


def _moved_back(source: Path, days: int, out: Path) -> tuple[pd.DataFrame, Path]:
    """A late file: ``source``'s rows with new ids, ``days`` earlier; written to ``out``."""
    late = pd.read_csv(source, dtype="str")
    late["TransactionId"] = late["TransactionId"] + f"_{out.stem}"
    shifted = pd.to_datetime(late["TransactionStartTime"], utc=True) - pd.Timedelta(days=days)
    late["TransactionStartTime"] = shifted.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    late.to_csv(out, index=False)
    return late, out


def test_the_share_categories_are_the_aggregated_ones() -> None:
    assert aggregates.CATEGORIES == MAIN_CATEGORIES


def test_incremental_dates_equal_the_full_computation(world: tuple[str, list[Path]]) -> None:
    url, files = world
    dates = [END - dt.timedelta(days=k) for k in (40, 25, 24, 9)]
    for as_of in dates:  # each date folds the previous one's state and the days between
        build_for_date(as_of, database_url=url, run_id=f"inc-{as_of}")
        _assert_matches_full_computation(url, as_of)
    assert _scalar(url, "SELECT count(*) FROM customer_feature_state_dates") >= 1


def test_a_rebuild_from_raw_equals_the_incremental_tables_and_features(
    world: tuple[str, list[Path]],
) -> None:
    url, files = world
    as_of = END - dt.timedelta(days=6)
    build_for_date(as_of - dt.timedelta(days=3), database_url=url, run_id="before")
    build_for_date(as_of, database_url=url, run_id="incremental")
    incremental = _published(url, as_of)
    kept = {t: _table(url, t, o) for t, o in AGG_TABLES.items()}
    rebuild_aggregates(url)
    for table, order in AGG_TABLES.items():
        pd.testing.assert_frame_equal(_table(url, table, order), kept[table], check_exact=True)
    assert _scalar(url, "SELECT count(*) FROM customer_feature_state") == 0
    build_for_date(as_of, database_url=url, run_id="full")
    pd.testing.assert_frame_equal(_published(url, as_of), incremental, check_exact=True)


def test_late_rows_and_a_reingest_keep_the_features_exact(
    world: tuple[str, list[Path]], tmp_path: Path,
) -> None:
    url, files = world
    first, later = END - dt.timedelta(days=20), END - dt.timedelta(days=4)
    build_for_date(first, database_url=url, run_id="early")
    build_for_date(first + dt.timedelta(days=1), database_url=url, run_id="early2")
    # a late file: new ids, times back on days the early states already folded
    late, late_file = _moved_back(files[-5], 30, tmp_path / "late.csv")
    load_landing_files(url, [late_file, files[-5]], run_id="late")
    late_days = sorted(dt.date.fromisoformat(t[:10]) for t in
                       late["TransactionStartTime"].unique())
    # the load marked its days; the next build's refresh re-aggregates them and drops
    # every state from the first late day on
    marked = [r[0] for r in rows(url, "SELECT day FROM customer_aggregate_dirty_days")]
    assert set(late_days) <= set(marked)
    assert refresh_aggregates(url) == sorted(marked)
    assert _scalar(url, "SELECT count(*) FROM customer_feature_state_dates"
                        f" WHERE as_of_date > '{late_days[0]}'") == 0
    assert _scalar(url, "SELECT count(*) FROM customer_aggregate_dirty_days") == 0
    build_for_date(later, database_url=url, run_id="after-late")
    _assert_matches_full_computation(url, later)
    kept = {t: _table(url, t, o) for t, o in AGG_TABLES.items()}
    load_landing_files(url, [late_file, files[-5]], run_id="again")  # nothing new
    assert _scalar(url, "SELECT count(*) FROM customer_aggregate_dirty_days") == 0
    for table, order in AGG_TABLES.items():
        pd.testing.assert_frame_equal(_table(url, table, order), kept[table], check_exact=True)
    build_for_date(first + dt.timedelta(days=1), database_url=url, run_id="refold")
    _assert_matches_full_computation(url, first + dt.timedelta(days=1))


def test_chunks_and_a_crash_between_them_end_as_one_clean_build(
    world: tuple[str, list[Path]],
) -> None:
    url, files = world
    as_of = END - dt.timedelta(days=12)
    build_for_date(as_of, database_url=url, run_id="clean", chunks=1)
    clean = _published(url, as_of)

    def crash(chunk: int) -> None:
        if chunk == 1:
            raise RuntimeError("worker lost between chunks")

    with pytest.raises(RuntimeError, match="between chunks"):
        build_for_date(as_of, database_url=url, run_id="crashed", chunks=3, after_chunk=crash)
    pd.testing.assert_frame_equal(_published(url, as_of), clean, check_exact=True)
    assert _scalar(url, "SELECT count(*) FROM customer_features_stage") > 0  # half done
    build_for_date(as_of, database_url=url, run_id="healed", chunks=3)
    pd.testing.assert_frame_equal(_published(url, as_of), clean, check_exact=True)
    assert _scalar(url, "SELECT count(*) FROM customer_features_stage") == 0
    assert _scalar(url, "SELECT count(DISTINCT run_id) FROM customer_features"
                        f" WHERE as_of_date = '{as_of}'") == 1


def test_mapped_chunks_retried_after_crashes_publish_the_clean_build(
    world: tuple[str, list[Path]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The DAG's steps: plan, each chunk on its own (in any order, retried), publish."""
    from creditrisk.errors import IncompleteBuildError
    from creditrisk.features import incremental

    url, files = world
    as_of = END - dt.timedelta(days=14)
    build_for_date(as_of - dt.timedelta(days=3), database_url=url, run_id="base")
    build_for_date(as_of, database_url=url, run_id="clean", chunks=1)
    clean = _published(url, as_of)
    plan = plan_features(as_of, database_url=url, chunks=4)
    assert plan["chunks"] == 4 and plan["base"] == (as_of - dt.timedelta(days=3)).isoformat()
    assert json.loads(json.dumps(plan)) == plan  # an XCom
    done = [build_chunk(plan, c, database_url=url, run_id="mapped") for c in (3, 0)]
    with pytest.raises(IncompleteBuildError, match=r"chunk\(s\) \[1, 2\] of 4 not staged"):
        publish_features(plan, database_url=url, run_id="mapped", chunks=done)
    pd.testing.assert_frame_equal(_published(url, as_of), clean, check_exact=True)

    real_record = incremental.record_staged_chunk

    def dies_before_commit(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("worker lost mid-chunk")

    monkeypatch.setattr(incremental, "record_staged_chunk", dies_before_commit)
    with pytest.raises(RuntimeError, match="mid-chunk"):  # folded and staged, rolled back
        build_chunk(plan, 1, database_url=url, run_id="mapped")
    monkeypatch.setattr(incremental, "record_staged_chunk", real_record)
    # chunk 0 ran again after its commit (a task cleared, a worker lost after the commit)
    done += [build_chunk(plan, c, database_url=url, run_id="mapped") for c in (1, 0, 2)]
    assert _scalar(url, "SELECT count(*) FROM customer_features_stage_chunks") == 4
    result = publish_features(plan, database_url=url, run_id="mapped", chunks=done)
    assert result["chunks"] == 4 and result["customers"] == len(clean)
    assert {"fold_s", "read_s", "compute_s", "labels_s"} <= set(result["timings"])  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(_published(url, as_of), clean, check_exact=True)
    assert _scalar(url, f"SELECT count(*) FROM customer_feature_state WHERE as_of_date ="
                        f" '{as_of}'") == len(clean)
    assert _scalar(url, "SELECT count(*) FROM customer_features_stage") == 0
    assert _scalar(url, "SELECT count(*) FROM customer_features_stage_chunks") == 0
    # publish retried after its commit: nothing to do; another run's publish is refused
    again = publish_features(plan, database_url=url, run_id="mapped")
    assert again["customers"] == len(clean)
    with pytest.raises(IncompleteBuildError, match="not staged"):
        publish_features(plan, database_url=url, run_id="other")
    pd.testing.assert_frame_equal(_published(url, as_of), clean, check_exact=True)


def test_a_load_between_plan_chunks_and_publish_is_refused(
    world: tuple[str, list[Path]],
) -> None:
    """A load that changes a day before the date deletes the states the plan relies on."""
    from creditrisk.errors import IncompleteBuildError

    url, files = world
    as_of = END - dt.timedelta(days=16)
    base = as_of - dt.timedelta(days=1)  # the newest state before the date, whatever ran
    build_for_date(base, database_url=url, run_id="base")
    plan = plan_features(as_of, database_url=url, chunks=2)
    assert plan["base"] == base.isoformat()
    build_chunk(plan, 0, database_url=url, run_id="stale")
    build_chunk(plan, 1, database_url=url, run_id="stale")
    # what aggregates.refresh_days does for a late row on the day before the date
    _execute(url, f"DELETE FROM customer_feature_state WHERE as_of_date = '{as_of}'"
                  f" AND {aggregates.chunk_predicate(1, 2)}")
    with pytest.raises(IncompleteBuildError, match="rows staged"):
        publish_features(plan, database_url=url, run_id="stale")
    # ... and for one before the base: the base state is gone too
    _execute(url, f"DELETE FROM customer_feature_state_dates WHERE as_of_date = '{base}'")
    with pytest.raises(IncompleteBuildError, match=f"state as of {base}"):
        build_chunk(plan, 1, database_url=url, run_id="stale")
    build_for_date(as_of, database_url=url, run_id="again", chunks=2)  # the whole build
    _assert_matches_full_computation(url, as_of)


def _execute(url: str, statement: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def test_the_real_xente_rows_give_the_full_computation(db_url: str, tmp_path: Path) -> None:
    from creditrisk.landing.xente_import import import_xente
    from tests.paths import REAL_SAMPLE

    files = import_xente(REAL_SAMPLE, tmp_path / "real").files
    load_landing_files(db_url, files[: len(files) * 2 // 3])
    days = sorted(dt.date.fromisoformat(p.stem[-10:]) for p in files)
    for as_of in (days[len(days) // 3], days[len(days) // 2], days[len(days) // 2] +
                  dt.timedelta(days=1)):
        build_for_date(as_of, database_url=db_url, run_id=f"real-{as_of}")
        _assert_matches_full_computation(db_url, as_of)
    load_landing_files(db_url, files[len(files) * 2 // 3:])  # the rest, then a late date
    last = days[-1] + dt.timedelta(days=1)
    build_for_date(last, database_url=db_url, run_id="real-last")
    _assert_matches_full_computation(db_url, last)


def _scalar(url: str, query: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(query)).scalar_one())
    finally:
        engine.dispose()


def test_ingestion_keeps_the_aggregates_a_rebuild_gives_and_a_reingest_changes_nothing(
    db_url: str, tmp_path: Path,
) -> None:
    """Through the production ingestion (GX gate, direct COPY, staged re-run)."""
    from creditrisk.ingest.load import ingest_days
    from creditrisk.landing.simulate import generate_landing

    generate_landing(customers=150, days=4, end_date=END, out_dir=tmp_path, seed=3)
    days = [END - dt.timedelta(days=k) for k in (3, 2, 1, 0)]
    ingest_days(days, database_url=db_url, landing_dir=tmp_path, run_id="first",
                data_docs=False)
    assert refresh_aggregates(db_url)  # what the next build does first
    kept = {t: _table(db_url, t, o) for t, o in AGG_TABLES.items()}
    assert len(kept["customer_daily_aggregates"]) > 100
    again = ingest_days(days, database_url=db_url, landing_dir=tmp_path, run_id="again",
                        data_docs=False)
    assert all(r["rows_loaded"] == 0 for r in again)
    assert refresh_aggregates(db_url) == []  # nothing new: no day marked
    for table, order in AGG_TABLES.items():
        pd.testing.assert_frame_equal(_table(db_url, table, order), kept[table],
                                      check_exact=True)
    rebuild_aggregates(db_url)
    for table, order in AGG_TABLES.items():
        pd.testing.assert_frame_equal(_table(db_url, table, order), kept[table],
                                      check_exact=True)
    build_for_date(END + dt.timedelta(days=1), database_url=db_url, run_id="after-ingest")
    _assert_matches_full_computation(db_url, END + dt.timedelta(days=1))


def test_a_refresh_during_a_build_stops_its_publish_and_a_rerun_is_exact(
    world: tuple[str, list[Path]], tmp_path: Path,
) -> None:
    """A concurrent build re-aggregates new rows between this build's chunks: the chunks
    already folded saw the old days, so this build must not publish a mixed state."""
    from creditrisk.errors import IncompleteBuildError

    url, files = world
    as_of = END - dt.timedelta(days=2)
    build_for_date(as_of - dt.timedelta(days=1), database_url=url, run_id="base")
    before = _published(url, as_of)
    # rows for the base's own day: the base state stays valid (it covers days before
    # it), so every chunk runs; only the chunk folded before the refresh missed them
    _, mid_file = _moved_back(files[-2], 2, tmp_path / "mid.csv")

    def concurrent_refresh(chunk: int) -> None:
        if chunk == 0:
            load_landing_files(url, [mid_file], run_id="mid-build")
            assert refresh_aggregates(url)

    with pytest.raises(IncompleteBuildError, match="customers folded"):
        build_for_date(as_of, database_url=url, run_id="raced", chunks=3,
                       after_chunk=concurrent_refresh)
    assert _published(url, as_of).equals(before)  # nothing of the raced build
    assert _scalar(url, "SELECT count(*) FROM customer_feature_state_dates"
                        f" WHERE as_of_date = '{as_of}'") == 0
    build_for_date(as_of, database_url=url, run_id="after-race", chunks=3)
    _assert_matches_full_computation(url, as_of)


def test_a_chunked_publish_labels_chunk_by_chunk_as_one_build_does(
    world: tuple[str, list[Path]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The publish of a chunked build labels one hash chunk at a time (its window rows
    only); the labels equal a one-chunk build's, and the IV comes from a bounded sample."""
    from creditrisk.features import build

    url, _ = world
    as_of = END - dt.timedelta(days=25)
    one = build_for_date(as_of, database_url=url, run_id="one-chunk", chunks=1)
    labels_one = _table(url, "customer_labels", "customer_id, as_of_date")
    monkeypatch.setattr(build, "IV_SAMPLE_CUSTOMERS", 100)
    three = build_for_date(as_of, database_url=url, run_id="three-chunks", chunks=3)
    labels_three = _table(url, "customer_labels", "customer_id, as_of_date")
    keep = ["customer_id", "as_of_date", "label_strategy", "is_high_risk", "window_start",
            "window_end"]
    pd.testing.assert_frame_equal(labels_three[keep], labels_one[keep], check_exact=True)
    assert one["labels"] == three["labels"] == one["customers"] > 300
    assert one["bad_rate"] == three["bad_rate"]
    assert {r["feature"] for r in three["iv"]} == {r["feature"] for r in one["iv"]}  # type: ignore[attr-defined]
    assert three["iv"] != one["iv"]  # from about 100 of the customers, not all
