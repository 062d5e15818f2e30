"""Benchmark: ingest ~1M generated rows (40,000 customers x 90 days) into raw_transactions.

Generates the daily landing files, then times ``ingest_file`` over every file (read,
GX validation, COPY through staging, changed-duplicate check, ingestion_runs) into a
fresh migrated warehouse. In the same run, the same rows, parsed and typed as in
``raw_transactions``, go through ``pandas.DataFrame.to_sql`` (SQLAlchemy engine, default
``method``) into ``raw_transactions`` of a second fresh migrated warehouse: that is the
reference. ``to_sql`` is timed with ``chunksize=None`` and ``chunksize=10_000`` and the
faster one is the reference; its time excludes parsing the CSVs (the reference is given
the typed frame for free). Data Docs are off for the timed run: they are a reporting step,
not loading. For scale, one bare ``COPY`` of the same rows straight into the table (no
checks at all) is timed as well: the table's own cost, a floor under any loader.

Database: ``TEST_DATABASE_URL`` or ``DATABASE_URL`` (a server whose user may create
databases) if set, else an embedded ``pgserver`` in a temp dir.

The last line is ``rows=<int> seconds=<float> rows_per_s=<int> to_sql_rows_per_s=<int>
ratio=<float>`` where ``ratio`` = ingestion rows/s / to_sql rows/s.

Usage: python benchmarks/ingest.py [--customers N] [--days D] [--seed S]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

END = dt.date(2019, 2, 13)
REPO = Path(__file__).resolve().parents[1]


from _pg import admin_url, fresh_database  # noqa: E402 (the script's own folder)


def typed_frame(files: list[Path], run_id: str) -> pd.DataFrame:
    """The files' rows as raw_transactions holds them (snake_case, typed, provenance)."""
    import pandas as pd

    from creditrisk.schema import WAREHOUSE_COLUMNS, XENTE_COLUMNS

    parts = []
    for f in files:
        part = pd.read_csv(f, dtype=str, keep_default_na=False)
        part["source_file"] = f.name
        parts.append(part)
    df = pd.concat(parts, ignore_index=True)
    df = df.rename(columns=dict(zip(XENTE_COLUMNS, WAREHOUSE_COLUMNS, strict=True)))
    for col in ("country_code", "pricing_strategy", "fraud_result"):
        df[col] = df[col].astype("int16")
    for col in ("amount", "value"):
        df[col] = pd.to_numeric(df[col])
    df["transaction_start_time"] = pd.to_datetime(
        df["transaction_start_time"], format="%Y-%m-%dT%H:%M:%SZ", utc=True
    )
    df["ingest_run_id"] = run_id
    return df


def count_rows(url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM raw_transactions")).scalar_one())
    finally:
        engine.dispose()


def time_to_sql(url: str, frame: pd.DataFrame, chunksize: int | None) -> float:
    """Seconds for ``frame.to_sql`` into an empty raw_transactions (emptied afterwards)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        start = time.perf_counter()
        frame.to_sql("raw_transactions", engine, if_exists="append", index=False,
                     chunksize=chunksize)
        seconds = time.perf_counter() - start
        with engine.begin() as conn:
            got = conn.execute(sa.text("SELECT count(*) FROM raw_transactions")).scalar_one()
            conn.execute(sa.text("TRUNCATE raw_transactions"))
        assert got == len(frame), (got, len(frame))
        return seconds
    finally:
        engine.dispose()


def time_copy_floor(url: str, frame: pd.DataFrame) -> float:
    """Seconds for one plain COPY of the typed rows straight into raw_transactions.

    No validation, no staging, no duplicate check: the cost of the table itself (heap,
    primary key and two secondary indexes), i.e. the floor under any loader.
    """
    import io

    from creditrisk.storage.db import make_engine

    buf = io.StringIO()
    frame.to_csv(buf, index=False, header=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    buf.seek(0)
    engine = make_engine(url)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cols = ", ".join(frame.columns)
        start = time.perf_counter()
        cur.copy_expert(f"COPY raw_transactions ({cols}) FROM STDIN WITH (FORMAT csv)", buf)
        raw.commit()
        seconds = time.perf_counter() - start
        cur.execute("TRUNCATE raw_transactions")
        raw.commit()
        return seconds
    finally:
        raw.close()
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=40_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="creditrisk-bench-") as tmp_name:
        tmp = Path(tmp_name)
        gx_copy = tmp / "great_expectations"
        shutil.copytree(REPO / "great_expectations", gx_copy,
                        ignore=shutil.ignore_patterns("uncommitted"))
        os.environ["CREDITRISK_GX_DIR"] = str(gx_copy)

        from creditrisk.ingest.load import ingest_file
        from creditrisk.landing.simulate import generate_landing
        from creditrisk.schema import landing_file_date
        from creditrisk.storage.db import make_engine

        start = time.perf_counter()
        summary = generate_landing(customers=args.customers, days=args.days, end_date=END,
                                   out_dir=tmp / "landing", seed=args.seed)
        print(f"generated rows={summary.rows} files={len(summary.files)} "
              f"customers={args.customers} days={args.days} "
              f"in {time.perf_counter() - start:.1f}s (not timed)")
        print("data_docs=False for the timed run: Data Docs are reporting, not loading")

        with admin_url() as admin, fresh_database(admin, "crbench_ingest") as ingest_url, \
                fresh_database(admin, "crbench_tosql") as ref_url:
            run_id = f"bench__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
            engine = make_engine(ingest_url)
            phases = {"read_s": 0.0, "validate_s": 0.0, "load_s": 0.0}
            loaded = quarantined = 0
            try:
                start = time.perf_counter()
                for path in summary.files:
                    day = landing_file_date(path)
                    assert day is not None, path
                    res = ingest_file(path, day, engine=engine, run_id=run_id, data_docs=False)
                    loaded += res.rows_loaded
                    quarantined += res.rows_quarantined
                    for k in phases:
                        phases[k] += res.timings.get(k, 0.0)
                seconds = time.perf_counter() - start
            finally:
                engine.dispose()
            assert loaded + quarantined == summary.rows == count_rows(ingest_url) + quarantined
            print(f"ingest: loaded={loaded} quarantined={quarantined}"
                  + (" (generated rows the suite rejects: see quarantined_transactions)"
                     if quarantined else ""))
            print(f"ingest phases (sum over {len(summary.files)} files): "
                  + " ".join(f"{k}={v:.2f}" for k, v in phases.items())
                  + f" other_s={seconds - sum(phases.values()):.2f}")

            start = time.perf_counter()
            frame = typed_frame(summary.files, run_id)
            print(f"reference: parsed and typed {len(frame)} rows with pandas in "
                  f"{time.perf_counter() - start:.1f}s (not counted in the reference time)")
            ref_times = {}
            for chunksize in (None, 10_000):
                ref_times[chunksize] = time_to_sql(ref_url, frame, chunksize)
                print(f"reference: to_sql(chunksize={chunksize}) {ref_times[chunksize]:.2f}s "
                      f"({int(len(frame) / ref_times[chunksize])} rows/s)")
            best = min(ref_times, key=lambda k: ref_times[k])
            print(f"reference: the faster to_sql is chunksize={best}")
            floor = time_copy_floor(ref_url, frame)
            print(f"floor: one bare COPY of the same rows into raw_transactions {floor:.2f}s "
                  f"({int(len(frame) / floor)} rows/s): no loader can beat "
                  f"ratio={ref_times[best] / floor:.2f} on this machine")

    rows = summary.rows
    rows_per_s = rows / seconds
    to_sql_rows_per_s = rows / ref_times[best]
    print(
        f"rows={rows} seconds={seconds:.3f} rows_per_s={int(rows_per_s)} "
        f"to_sql_rows_per_s={int(to_sql_rows_per_s)} ratio={rows_per_s / to_sql_rows_per_s:.2f}"
    )


if __name__ == "__main__":
    main()
