"""Benchmark: the full and the incremental feature build against their floors.

Generates 50,000 customers x 71 days (about 1M rows of history before the last day;
the counts are printed) and loads them into a fresh migrated warehouse through the
tests' fast loader, which marks the loaded days as ingestion does; the history's days
are then re-aggregated once (printed, not in the ratios), and the last day is loaded
and marked apart (its insert printed).
Then, best of ``--runs`` interleaved rounds, each measurement in its own fresh process
(so each peak RSS is its own; the process start and imports are outside the timing):

* ``floor``: the like-for-like floor of a full build: a COPY-read of the columns the
  features need, for every transaction before the as-of date H, into pandas (COPY TO
  STDOUT + pyarrow, as production reads), plus a pandas groupby per customer (count,
  sum, min and max of amount and time);
* ``full``: the production full build: ``build_for_date(H)`` with no state to start
  from (every day's aggregates folded, features, labels, write);
* ``rebuild``: the repair path, ``rebuild_aggregates`` (every aggregate recomputed
  from ``raw_transactions`` inside PostgreSQL);
* ``day_floor``: the same read and groupby over the new day's transactions alone;
* ``incremental``: ``build_for_date(H + 1)`` on top of H's state: the new day's
  aggregates made from its rows (``day_aggregates_seconds``, the build's refresh of the
  marked day, part of ``incremental_seconds``) and folded in, features of every
  customer written;
* ``write_floor``: COPY of those same feature rows (one per customer) into an empty
  table shaped like ``customer_features``: what any build of a date must write.

Database: ``TEST_DATABASE_URL`` or ``DATABASE_URL`` (a server whose user may create
databases) if set, else an embedded ``pgserver`` in a temp dir, deleted afterwards.
PostgreSQL's own memory is not in the RSS figures (they are the Python process's).

The last line: ``transactions=… customers=… seconds=… rows_per_s=… floor_seconds=…
full_seconds=… ratio_full_to_floor=… rebuild_seconds=… incremental_seconds=…
day_floor_seconds=… ratio_incremental_to_day=… write_floor_seconds=… day_insert_seconds=…
day_aggregates_seconds=… peak_rss_full_mb=… peak_rss_incremental_mb=…
peak_rss_floor_mb=…`` (``seconds`` = ``full_seconds``).

Usage: python benchmarks/features.py [--customers N] [--days D] [--seed S] [--runs R]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # for tests.warehouse (the fast loader the tests use)
    sys.path.insert(0, str(REPO))

END = dt.date(2019, 2, 13)

from _pg import admin_url, fresh_database  # noqa: E402 (the script's own folder)


def _rss_mb() -> float:
    """This process's peak RSS (VmHWM: since its exec, unlike ru_maxrss, which a spawned
    child inherits from the parent that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def read_and_group(url: str, since: dt.date | None, before: dt.date) -> dict[str, float]:
    """The floor: COPY-read the feature columns of [since, before) and group per customer."""
    import pandas as pd

    from creditrisk.schema import TRANSACTION_COLUMNS
    from creditrisk.storage.db import make_engine
    from creditrisk.storage.features import _copy_out

    engine = make_engine(url)
    where = f"transaction_start_time < '{before}T00:00:00Z'"
    if since is not None:
        where += f" AND transaction_start_time >= '{since}T00:00:00Z'"
    t0 = time.perf_counter()
    frame = _copy_out(engine, f"SELECT {', '.join(TRANSACTION_COLUMNS)} FROM raw_transactions"
                              f" WHERE {where}")  # nosec B608 - benchmark constants
    t1 = time.perf_counter()
    frame["transaction_start_time"] = pd.to_datetime(frame["transaction_start_time"], utc=True)
    frame.groupby("customer_id").agg(
        n=("amount", "size"), total=("amount", "sum"), biggest=("amount", "max"),
        first=("transaction_start_time", "min"), last=("transaction_start_time", "max"))
    t2 = time.perf_counter()
    engine.dispose()
    return {"read": t1 - t0, "group": t2 - t1, "total": t2 - t0, "rows": float(len(frame))}


def rebuild(url: str) -> dict[str, float]:
    """Production repair path: every aggregate recomputed from raw_transactions."""
    from creditrisk.features.build import rebuild_aggregates

    t0 = time.perf_counter()
    rebuild_aggregates(url)
    return {"total": time.perf_counter() - t0}


def full_build(url: str, as_of: dt.date) -> dict[str, float]:
    """Production: a date built from no state (every day's aggregates folded)."""
    from creditrisk.features.build import build_for_date
    from creditrisk.storage import aggregates
    from creditrisk.storage.db import make_engine, raw_cursor

    engine = make_engine(url)
    with raw_cursor(engine) as cur:
        aggregates.forget_states(cur)
    engine.dispose()
    t0 = time.perf_counter()
    res = build_for_date(as_of, database_url=url, run_id="bench-full")
    return {"total": time.perf_counter() - t0, "customers": float(res["customers"]),
            "transactions": float(res["transactions"]), **res["timings"]}


def incremental_build(url: str, as_of: dt.date) -> dict[str, float]:
    """Production: the date built on top of the previous date's state."""
    from creditrisk.features.build import build_for_date

    t0 = time.perf_counter()
    res = build_for_date(as_of, database_url=url, run_id="bench-incremental")
    t1 = time.perf_counter()
    return {"total": t1 - t0, "customers": float(res["customers"]), **res["timings"]}


def write_floor(url: str, as_of: dt.date) -> dict[str, float]:
    """COPY the date's feature rows (read first, untimed) into an empty table of their shape."""
    from creditrisk.catalogue import FEATURE_NAMES
    from creditrisk.storage.db import make_engine, raw_cursor
    from creditrisk.storage.features import _copy_in_arrow, read_features

    engine = make_engine(url)
    frame = read_features(engine, as_of).reset_index()
    frame.insert(1, "as_of_date", as_of.isoformat())
    frame["run_id"] = "bench-floor"
    cols = ["customer_id", "as_of_date", *FEATURE_NAMES, "run_id"]
    with raw_cursor(engine) as cur:
        cur.execute("CREATE TEMP TABLE floor_features (LIKE customer_features INCLUDING ALL)")
        t0 = time.perf_counter()
        _copy_in_arrow(cur, "floor_features", cols, frame)  # the build's own serializer
        t1 = time.perf_counter()
    engine.dispose()
    return {"total": t1 - t0}


def _child(queue: Any, fn: Callable[..., dict[str, float]], args: tuple[Any, ...]) -> None:
    # a worker has its libraries loaded: imports stay outside every timing
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import psycopg2  # noqa: F401
    import pyarrow.csv  # noqa: F401
    import sqlalchemy  # noqa: F401

    import creditrisk.features.build  # noqa: F401
    import creditrisk.features.incremental  # noqa: F401
    import creditrisk.features.labels  # noqa: F401
    import creditrisk.features.quality  # noqa: F401

    result = fn(*args)
    result["rss_mb"] = _rss_mb()
    queue.put(result)


def in_process(fn: Callable[..., dict[str, float]], *args: Any) -> dict[str, float]:
    """Run ``fn(*args)`` in a fresh process; its timings plus its own peak RSS."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn, args))
    proc.start()
    result = queue.get()
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"{fn.__name__} failed in its process ({proc.exitcode})")
    return result


def _load(url: str, files: list[Path]) -> float:
    from tests.warehouse import load_landing_files

    t0 = time.perf_counter()
    load_landing_files(url, files)
    return time.perf_counter() - t0


def _load_day(url: str, path: Path) -> float:
    """Load one day file as the tests' loader does (its day marked); insert seconds."""
    from creditrisk.storage import aggregates
    from creditrisk.storage import transactions as sql
    from creditrisk.storage.db import make_engine

    engine = make_engine(url)
    raw = engine.raw_connection()
    try:
        lines = path.read_text().splitlines()[1:]
        cur = raw.cursor()
        t0 = time.perf_counter()
        sql.stage_rows(cur, "".join(f"{i + 2},{ln}\n" for i, ln in enumerate(lines)))
        sql.insert_new_rows(cur, path.name, "bench-day")
        aggregates.mark_days(cur, aggregates.staged_days(cur), "bench-day")
        raw.commit()
        return time.perf_counter() - t0
    finally:
        raw.close()
        engine.dispose()


def _mark(url: str, day: dt.date) -> None:
    """Mark ``day`` dirty again, so that every incremental round re-aggregates it."""
    from creditrisk.storage import aggregates
    from creditrisk.storage.db import make_engine, raw_cursor

    engine = make_engine(url)
    try:
        with raw_cursor(engine) as cur:
            aggregates.mark_days(cur, [day], "bench-day")
    finally:
        engine.dispose()


def _best(runs: list[dict[str, float]]) -> dict[str, float]:
    return min(runs, key=lambda r: r["total"])


def _show(label: str, r: dict[str, float]) -> None:
    print(f"  {label}: " + " ".join(f"{k}={v:.3f}" for k, v in r.items() if k not in (
        "customers", "transactions", "rows")) + f" (rss {r['rss_mb']:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=71)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()

    from creditrisk.landing.simulate import generate_landing

    with tempfile.TemporaryDirectory() as tmp, admin_url() as admin, \
            fresh_database(admin, "bench_features") as url:
        summary = generate_landing(customers=args.customers, days=args.days, end_date=END,
                                   out_dir=Path(tmp), seed=args.seed)
        history, new_day = summary.files[:-1], summary.files[-1]
        day = dt.date.fromisoformat(new_day.stem[-10:])
        print(f"generated rows={summary.rows} customers={summary.customers} "
              f"files={len(summary.files)}; loading the history (aggregates kept as ingestion "
              "keeps them)...")
        print(f"history loaded in {_load(url, history):.1f}s")
        from tests.warehouse import refresh_aggregates

        t0 = time.perf_counter()
        marked = refresh_aggregates(url)
        print(f"history's {len(marked)} marked days re-aggregated in "
              f"{time.perf_counter() - t0:.1f}s (what the first build after a backfill does)")
        full, floor, rebuilds = [], [], []
        for i in range(args.runs):
            floor.append(in_process(read_and_group, url, None, day))
            rebuilds.append(in_process(rebuild, url))
            full.append(in_process(full_build, url, day))
            _show(f"round {i + 1} floor", floor[-1])
            _show(f"round {i + 1} rebuild", rebuilds[-1])
            _show(f"round {i + 1} full", full[-1])
        insert_s = _load_day(url, new_day)
        print(f"new day {day}: rows inserted and the day marked in {insert_s:.3f}s")
        nxt = day + dt.timedelta(days=1)
        inc, day_floor, writes = [], [], []
        for i in range(args.runs):
            day_floor.append(in_process(read_and_group, url, day, nxt))
            _mark(url, day)  # every round re-aggregates the new day, as the first does
            inc.append(in_process(incremental_build, url, nxt))
            writes.append(in_process(write_floor, url, nxt))
            _show(f"round {i + 1} day floor", day_floor[-1])
            _show(f"round {i + 1} incremental", inc[-1])
            _show(f"round {i + 1} write floor", writes[-1])
        report({"floor": _best(floor), "full": _best(full), "rebuild": _best(rebuilds),
                "day_floor": _best(day_floor), "inc": _best(inc), "writes": _best(writes)},
               insert_s, _best(inc)["refresh_s"])


def report(best: dict[str, dict[str, float]], insert_s: float, aggregates_s: float) -> None:
    """The summary lines; the last is the machine-readable one."""
    floor, full, rebuilt = best["floor"], best["full"], best["rebuild"]
    day_floor, inc, writes = best["day_floor"], best["inc"], best["writes"]
    tx, customers = int(full["transactions"]), int(full["customers"])
    print(f"history: {tx} transactions before the as-of date, {customers} customers; "
          f"new day: {int(day_floor['rows'])} transactions")
    print(f"full build {full['total']:.3f}s vs floor {floor['total']:.3f}s (read "
          f"{floor['read']:.3f} + groupby {floor['group']:.3f}): "
          f"{full['total'] / floor['total']:.2f}x (target <= 3); rebuilding every aggregate "
          f"from raw_transactions {rebuilt['total']:.3f}s "
          f"({rebuilt['total'] / floor['total']:.2f}x)")
    print(f"incremental build {inc['total']:.3f}s vs the day alone {day_floor['total']:.3f}s: "
          f"{inc['total'] / day_floor['total']:.1f}x (target <= 3); writing the "
          f"{int(inc['customers'])} feature rows alone takes {writes['total']:.3f}s")
    print(
        f"transactions={tx} customers={customers} seconds={full['total']:.3f} "
        f"rows_per_s={tx / full['total']:.0f} floor_seconds={floor['total']:.3f} "
        f"full_seconds={full['total']:.3f} "
        f"ratio_full_to_floor={full['total'] / floor['total']:.2f} "
        f"rebuild_seconds={rebuilt['total']:.3f} "
        f"incremental_seconds={inc['total']:.3f} day_floor_seconds={day_floor['total']:.3f} "
        f"ratio_incremental_to_day={inc['total'] / day_floor['total']:.2f} "
        f"write_floor_seconds={writes['total']:.3f} day_insert_seconds={insert_s:.3f} "
        f"day_aggregates_seconds={aggregates_s:.3f} peak_rss_full_mb={full['rss_mb']:.0f} "
        f"peak_rss_incremental_mb={inc['rss_mb']:.0f} peak_rss_floor_mb={floor['rss_mb']:.0f}"
    )


if __name__ == "__main__":
    main()
