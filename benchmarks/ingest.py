"""Benchmark: ingest ~1M generated rows (40,000 customers x 90 days) into raw_transactions.

Generates the daily landing files, then times one ingestion run over every file
(``ingest_files``: read, one GX validation of the whole range, COPY of the new rows
straight into the table, quarantine, ingestion_runs) into a fresh migrated warehouse.
In the same run, on the same machine and server (so the ratios hold however busy the
shared machine is):

* the **floor**: one bare ``COPY`` of the same rows, typed as in ``raw_transactions``,
  straight into the table of another fresh migrated warehouse (no checks at all): the
  table's own cost (heap, primary key and two secondary indexes);
* the **small-files case**: 91 Xente-shaped daily files of ~1k rows (the ``xente``
  world, ``--small-customers`` customers) ingested as one run into a third fresh
  warehouse, where the fixed cost per file dominates;
* the **reference**: the same 1M rows through ``pandas.DataFrame.to_sql`` (SQLAlchemy
  engine, default ``method``; the faster of ``chunksize=None`` and ``10_000``; parsing
  the CSVs is not counted) into a fresh ``raw_transactions``.

Data Docs are off for the timed runs: they are a reporting step, not loading. The GX
context is loaded once per process before the timed runs (its time is printed): an
Airflow task or the CLI pays it once per run, not per file.

Database: ``TEST_DATABASE_URL`` or ``DATABASE_URL`` (a server whose user may create
databases) if set, else an embedded ``pgserver`` in a temp dir.

The last line is ``rows=<int> seconds=<float> rows_per_s=<int> copy_rows_per_s=<int>
ratio_to_copy=<float> small_files_rows_per_s=<int> to_sql_rows_per_s=<int>
aggregates_seconds=<float>`` where ``ratio_to_copy`` = ingestion rows/s / bare COPY
rows/s, and ``aggregates_seconds`` is the re-aggregation of the run's marked days that
the next feature build does first (timed after the run, on its warehouse).

Usage: python benchmarks/ingest.py [--customers N] [--days D] [--small-customers N] [--seed S]
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
    """Seconds for one plain COPY of the typed rows into raw_transactions, committed.

    No validation, no staging, no duplicate check: the cost of the table itself (heap,
    primary key and two secondary indexes), i.e. the floor under any loader. The CSV
    text is built before the clock starts; the COPY and its commit are timed.
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


def ingest_run(url: str, files: list[Path], run_id: str) -> tuple[float, dict[str, float]]:
    """Seconds for one ingestion run of ``files`` into ``url``, and its phase sums."""
    from creditrisk.ingest.load import ingest_files
    from creditrisk.schema import landing_file_date
    from creditrisk.storage.db import make_engine

    days = [landing_file_date(p) for p in files]
    assert None not in days, files
    engine = make_engine(url)
    try:
        start = time.perf_counter()
        results = ingest_files([(p, d) for p, d in zip(files, days, strict=True) if d],
                               engine=engine, run_id=run_id, data_docs=False)
        seconds = time.perf_counter() - start
    finally:
        engine.dispose()
    loaded = sum(r.rows_loaded for r in results)
    quarantined = sum(r.rows_quarantined for r in results)
    rows = sum(r.rows_read for r in results)
    assert loaded + quarantined == rows and loaded == count_rows(url), (loaded, quarantined)
    phases = {"loaded": float(loaded), "quarantined": float(quarantined),
              "read_s": sum(r.timings.get("read_s", 0.0) for r in results),
              "validate_s": results[0].timings.get("validate_run_s", 0.0) if results else 0.0,
              "load_s": sum(r.timings.get("load_s", 0.0) for r in results)}
    return seconds, phases


def time_refresh(url: str) -> tuple[float, int]:
    """Seconds for the refresh of the days the run marked, as a feature build starts."""
    from creditrisk.storage import aggregates
    from creditrisk.storage.db import make_engine, raw_cursor

    engine = make_engine(url)
    try:
        start = time.perf_counter()
        with raw_cursor(engine) as cur:
            days = aggregates.refresh_dirty(cur, "bench-refresh")
        return time.perf_counter() - start, len(days)
    finally:
        engine.dispose()


def _phases(label: str, seconds: float, phases: dict[str, float], files: int) -> None:
    other = seconds - phases["read_s"] - phases["validate_s"] - phases["load_s"]
    print(f"{label}: loaded={int(phases['loaded'])} quarantined={int(phases['quarantined'])}"
          f" in {seconds:.2f}s: read_s={phases['read_s']:.2f} validate_s(one run)="
          f"{phases['validate_s']:.2f} load_s={phases['load_s']:.2f} other_s={other:.2f};"
          f" per file outside validation {(seconds - phases['validate_s']) / files * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=40_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--small-customers", type=int, default=2_500)
    parser.add_argument("--small-days", type=int, default=91)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="creditrisk-bench-") as tmp_name:
        tmp = Path(tmp_name)
        gx_copy = tmp / "great_expectations"
        shutil.copytree(REPO / "great_expectations", gx_copy,
                        ignore=shutil.ignore_patterns("uncommitted"))
        os.environ["CREDITRISK_GX_DIR"] = str(gx_copy)

        from creditrisk.ingest.validate import _definitions
        from creditrisk.landing.simulate import generate_landing

        start = time.perf_counter()
        summary = generate_landing(customers=args.customers, days=args.days, end_date=END,
                                   out_dir=tmp / "landing", seed=args.seed)
        small = generate_landing(
            customers=args.small_customers, days=args.small_days, end_date=END,
            out_dir=tmp / "small", seed=args.seed, world="xente",
            sequence_path=REPO / "tests" / "fixtures" / "xente_customer_sequence.csv")
        print(f"generated rows={summary.rows} files={len(summary.files)} "
              f"customers={args.customers} days={args.days}; small files: rows={small.rows} "
              f"files={len(small.files)} (xente world, {args.small_customers} customers) "
              f"in {time.perf_counter() - start:.1f}s (not timed)")
        start = time.perf_counter()
        _definitions()
        print(f"GX context loaded in {time.perf_counter() - start:.2f}s (once per process, "
              "not timed); data_docs=False for the timed runs")

        with admin_url() as admin, fresh_database(admin, "crbench_ingest") as ingest_url, \
                fresh_database(admin, "crbench_copy") as copy_url, \
                fresh_database(admin, "crbench_small") as small_url, \
                fresh_database(admin, "crbench_tosql") as ref_url:
            run_id = f"bench__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
            seconds, phases = ingest_run(ingest_url, summary.files, run_id)
            _phases("ingest (1M)", seconds, phases, len(summary.files))
            agg_seconds, agg_days = time_refresh(ingest_url)
            print(f"the next feature build re-aggregates the run's {agg_days} marked days in "
                  f"{agg_seconds:.2f}s (one set-based pass; a cost of the build, not the load)")

            start = time.perf_counter()
            frame = typed_frame(summary.files, run_id)
            print(f"parsed and typed {len(frame)} rows with pandas in "
                  f"{time.perf_counter() - start:.1f}s (not counted in the floor or reference)")
            floor = time_copy_floor(copy_url, frame)
            print(f"floor: one bare COPY of the same rows into a fresh raw_transactions "
                  f"{floor:.2f}s ({int(len(frame) / floor)} rows/s)")

            small_seconds, small_phases = ingest_run(small_url, small.files, run_id)
            _phases(f"small files ({len(small.files)})", small_seconds, small_phases,
                    len(small.files))

            ref_times = {}
            for chunksize in (None, 10_000):
                ref_times[chunksize] = time_to_sql(ref_url, frame, chunksize)
                print(f"reference: to_sql(chunksize={chunksize}) {ref_times[chunksize]:.2f}s "
                      f"({int(len(frame) / ref_times[chunksize])} rows/s)")
            best = min(ref_times, key=lambda k: ref_times[k])

    rows = summary.rows
    rows_per_s = rows / seconds
    copy_rows_per_s = rows / floor
    print(
        f"rows={rows} seconds={seconds:.3f} rows_per_s={int(rows_per_s)} "
        f"copy_rows_per_s={int(copy_rows_per_s)} ratio_to_copy={rows_per_s / copy_rows_per_s:.2f} "
        f"small_files_rows_per_s={int(small.rows / small_seconds)} "
        f"to_sql_rows_per_s={int(rows / ref_times[best])} aggregates_seconds={agg_seconds:.3f}"
    )


if __name__ == "__main__":
    main()
