"""A long ingestion run is read, validated and loaded in bounded batches
(``CREDITRISK_INGEST_BATCH_MB``): the warehouse ends exactly as after one batch, and a
broken file stops the run after the batches before it are loaded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from creditrisk.errors import InputError
from creditrisk.ingest.load import batches_by_size, ingest_files
from creditrisk.landing.simulate import generate_landing
from creditrisk.storage.db import make_engine
from tests.warehouse import rows

END = dt.date(2019, 1, 8)
TX = ("SELECT transaction_id, customer_id, amount, transaction_start_time, source_file"
      " FROM raw_transactions ORDER BY transaction_id")


def _files(folder: Path) -> list[tuple[Path, dt.date]]:
    summary = generate_landing(customers=150, days=8, end_date=END, out_dir=folder, seed=4)
    return [(p, dt.date.fromisoformat(p.stem[-10:])) for p in summary.files]


def test_batches_are_consecutive_and_bounded(tmp_path: Path) -> None:
    files = _files(tmp_path)
    sizes = [p.stat().st_size for p, _ in files]
    cap = max(sizes) * 2
    batches = list(batches_by_size(files, cap))
    assert [f for b in batches for f in b] == files  # every file once, in order
    assert all(sum(p.stat().st_size for p, _ in b) <= cap for b in batches)
    assert 1 < len(batches) < len(files)
    assert [len(b) for b in batches_by_size(files, 1)] == [1] * len(files)


def test_small_batches_load_exactly_what_one_batch_loads(tmp_path: Path, warehouse_copy) -> None:  # type: ignore[no-untyped-def]
    files = _files(tmp_path / "landing")
    with warehouse_copy("crtest_batch_one") as one, warehouse_copy("crtest_batch_many") as many:
        for url, cap in ((one, 2**40), (many, 1)):
            engine = make_engine(url)
            try:
                results = ingest_files(files, engine=engine, run_id="batch-test",
                                       batch_bytes=cap, data_docs=False)
            finally:
                engine.dispose()
            assert [r.status for r in results] == ["succeeded"] * len(files)
        assert rows(one, TX) == rows(many, TX)
        assert len(rows(one, TX)) > 300
        runs = ("SELECT source_file, status, rows_read, rows_loaded FROM ingestion_runs"
                " ORDER BY source_file")
        assert rows(one, runs) == rows(many, runs)


def test_a_broken_file_stops_the_run_after_the_batches_before_it(tmp_path: Path,
                                                                 db_url: str) -> None:
    files = _files(tmp_path)
    files[5][0].write_text("not,a,landing,file\n1,2,3,4\n")
    engine = make_engine(db_url)
    try:
        with pytest.raises(InputError):
            ingest_files(files, engine=engine, run_id="batch-test", batch_bytes=1,
                         data_docs=False)
    finally:
        engine.dispose()
    loaded = {r[0] for r in rows(db_url, "SELECT DISTINCT source_file FROM raw_transactions")}
    assert loaded == {p.name for p, _ in files[:5]}
    status = dict(rows(db_url, "SELECT source_file, status FROM ingestion_runs"))
    assert status[files[5][0].name] == "failed"
    assert not {p.name for p, _ in files[6:]} & set(status)
