"""Benchmark: point-in-time features on ~1M transactions over 50,000 customers.

Generates 50,000 customers x 70 days (about 1.02M rows; the count is printed), loads them
into ``raw_transactions`` of a fresh migrated warehouse (not timed), picks the as-of date
as the day after the last generated day (every row is before it), then times, best of 3
runs taken in interleaved rounds (the machine is shared and noisy, so each round's
candidates see the same conditions):

* pandas, as production runs it: ``load_transactions(engine, before=as_of)`` (COPY TO
  STDOUT + pyarrow) and ``compute_features`` (all 31 catalogue features);
* the floor: a bare pandas groupby of recency, frequency and monetary over the same
  in-memory frame, keyed three ways: the loaded (pyarrow-backed) string column, and a
  categorical and integer-code key built outside the timing; the fastest is the floor;
* SQL: the same 31 features aggregated inside PostgreSQL in one statement into a temp
  table, then fetched into pandas (COPY TO STDOUT + pyarrow), timed end to end. Run with
  the server's ``work_mem`` and with ``SET LOCAL work_mem = '256MB'`` (the sort then stays
  in memory); the faster setting counts.

Both paths' results are compared feature by feature over every customer. In the same
run, writing the 50,000 feature rows is timed too (``replace_features`` from pandas
against ``INSERT ... SELECT`` from the SQL temp table) so the comparison can also be read
for a whole build; the choice follows the issue's definition (read + compute).

Database: ``TEST_DATABASE_URL`` or ``DATABASE_URL`` (a server whose user may create
databases) if set, else an embedded ``pgserver`` in a temp dir, deleted afterwards.

The last line is ``transactions=<int> customers=<int> seconds=<float> rows_per_s=<int>
floor_seconds=<float>`` where ``seconds`` is the production pandas path (load + compute).

Usage: python benchmarks/features.py [--customers N] [--days D] [--seed S] [--profile]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
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
RUNS = 3
SQL_WORK_MEM = "256MB"


from _pg import admin_url, fresh_database  # noqa: E402 (the script's own folder)

# ---------------------------------------------------------------------------------------------
# The SQL aggregation: all 31 catalogue features in one statement
# ---------------------------------------------------------------------------------------------


def features_sql(as_of: dt.date) -> str:
    """One SELECT giving ``customer_id`` + every catalogue feature, in catalogue order.

    One sort by (customer, time) feeds two window passes (the previous purchase's age for
    gaps; whether the UTC day changed, for active days) and then a grouped aggregate.
    ``COLLATE "C"`` makes the text sort bytewise (C.UTF-8 compares through strcoll) and
    orders customers as Python does. ``date_part`` returns float8 where ``extract``
    returns numeric (slower). The mean gap between consecutive purchases telescopes to
    (oldest purchase age - newest purchase age) / (purchases - 1).
    """
    from creditrisk.catalogue import FEATURE_NAMES
    from creditrisk.features.compute import (
        LOCAL_UTC_OFFSET_HOURS,
        MAIN_CATEGORIES,
        TREND_WINDOW_DAYS,
    )

    cut = f"'{as_of.isoformat()}T00:00:00Z'::timestamptz"
    main = ", ".join(f"'{c}'" for c in MAIN_CATEGORIES)
    w = TREND_WINDOW_DAYS

    def share(cond: str) -> str:
        return f"count(*) FILTER (WHERE {cond})::float8 / count(*)"

    buy = "((amount > 0 AND provider_id <> 'ProviderId_4') OR channel_id = 'ChannelId_5')"

    per_customer = {
        "recency_days": "min(age)",
        "frequency": "count(*)::float8",
        "debit_count": "count(*) FILTER (WHERE amount > 0)::float8",
        "monetary_total": "coalesce(sum(amount) FILTER (WHERE amount > 0), 0)",
        "monetary_mean": "coalesce(avg(amount) FILTER (WHERE amount > 0), 0)",
        "monetary_std": "coalesce(stddev_samp(amount) FILTER (WHERE amount > 0), 0)",
        "monetary_max": "coalesce(max(amount) FILTER (WHERE amount > 0), 0)",
        "credit_count": "count(*) FILTER (WHERE amount < 0)::float8",
        "credit_total": "coalesce(-sum(amount) FILTER (WHERE amount < 0), 0)",
        "tenure_days": "max(age)",
        "active_days": "count(*) FILTER (WHERE new_day)::float8",
        "debit_age_span": "coalesce(max(age) FILTER (WHERE amount > 0)"
                          " - min(age) FILTER (WHERE amount > 0), 0)",
        "gap_max": "max(gap)",
        "txn_last_30d": f"count(*) FILTER (WHERE age <= {w})::float8",
        "spend_last_30d": f"coalesce(sum(amount) FILTER (WHERE age <= {w} AND amount > 0), 0)",
        **{f"share_{c}": share(f"product_category = '{c}'") for c in MAIN_CATEGORIES},
        "share_other_categories": share(f"product_category NOT IN ({main})"),
        "n_categories": "count(DISTINCT product_category)::float8",
        "n_products": "count(DISTINCT product_id)::float8",
        "share_channel_web": share("channel_id = 'ChannelId_3'"),
        "share_channel_pay_later": share("channel_id = 'ChannelId_5'"),
        "n_providers": "count(DISTINCT provider_id)::float8",
        "share_platform_provider": share("provider_id = 'ProviderId_4'"),
        "share_night": share("date_part('hour', local_ts) < 6"),
        "share_weekend": share("date_part('isodow', local_ts) >= 6"),
        "fraud_count": "count(*) FILTER (WHERE fraud_result = 1)::float8",
        "share_pricing_2": share("pricing_strategy = 2"),
        "share_pricing_4": share("pricing_strategy = 4"),
        # the fixed-window features count customer-initiated purchases only
        "purchase_min_age": f"min(age) FILTER (WHERE {buy})",
        "purchases_7d": f"count(*) FILTER (WHERE {buy} AND age <= 7)::float8",
        "purchases_30d": f"count(*) FILTER (WHERE {buy} AND age <= 30)::float8",
        "spend_7d": f"coalesce(sum(abs(amount)) FILTER (WHERE {buy} AND age <= 7), 0)",
        "active_days_30d": f"count(DISTINCT utc_day) FILTER (WHERE {buy} AND age <= 30)::float8",
        "n_products_30d": f"count(DISTINCT product_id) FILTER (WHERE {buy} AND age <= 30)::float8",
    }
    recent_span = f"least(greatest(tenure_days, 1.0), {w})"
    derived = {
        "purchase_recency_days": "coalesce(purchase_min_age, tenure_days)",
        "mean_gap_days": "CASE WHEN debit_count > 1 THEN debit_age_span / (debit_count - 1)"
                         " ELSE tenure_days END",
        "max_gap_days": "CASE WHEN debit_count > 1 THEN gap_max ELSE tenure_days END",
        "activity_trend_30d": (
            f"ln(1 + txn_last_30d / {recent_span}) - ln(1 + CASE WHEN tenure_days > {w}"
            f" THEN (frequency - txn_last_30d) / greatest(tenure_days - {w}, 1.0)"
            f" ELSE txn_last_30d / {recent_span} END)"
        ),
    }
    missing = set(FEATURE_NAMES) - set(per_customer) - set(derived)
    assert not missing, f"SQL lacks {sorted(missing)}"
    aggregates = ",\n    ".join(f"{expr} AS {name}" for name, expr in per_customer.items())
    final = ", ".join(derived.get(name, name) + f" AS {name}" for name in FEATURE_NAMES)
    return f"""
SELECT customer_id, {final}
FROM (
  SELECT customer_id,
    {aggregates}
  FROM (
    SELECT b.*,
      CASE WHEN amount > 0 THEN min(age) FILTER (WHERE amount > 0) OVER prev - age END AS gap,
      utc_day IS DISTINCT FROM lag(utc_day) OVER by_time AS new_day
    FROM (
      SELECT customer_id COLLATE "C" AS customer_id, transaction_start_time AS ts,
             amount::float8 AS amount, product_category, channel_id, provider_id, product_id,
             pricing_strategy, fraud_result,
             date_part('epoch', {cut} - transaction_start_time) / 86400.0 AS age,
             (transaction_start_time AT TIME ZONE 'UTC')::date AS utc_day,
             (transaction_start_time AT TIME ZONE 'UTC')
               + interval '{LOCAL_UTC_OFFSET_HOURS} hours' AS local_ts
      FROM raw_transactions
      WHERE transaction_start_time < {cut}
    ) b
    WINDOW by_time AS (PARTITION BY customer_id ORDER BY ts),
           prev AS (by_time ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
  ) t
  GROUP BY customer_id
) a"""


def sql_features(engine: Any, as_of: dt.date, work_mem: str | None,
                 write_run_id: str | None = None) -> tuple[Any, dict[str, float]]:
    """Aggregate into a temp table, fetch it into pandas; optionally INSERT it into
    customer_features in the same transaction. Returns the frame and the phase times."""
    import pandas as pd

    from creditrisk.catalogue import FEATURE_NAMES

    times: dict[str, float] = {}
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        start = time.perf_counter()
        if work_mem:
            cur.execute(f"SET LOCAL work_mem = '{work_mem}'")
        cur.execute(f"CREATE TEMP TABLE bench_features ON COMMIT DROP AS {features_sql(as_of)}")
        t1 = time.perf_counter()
        buf = io.BytesIO()
        cur.copy_expert(
            "COPY (SELECT * FROM bench_features ORDER BY customer_id)"
            " TO STDOUT WITH (FORMAT csv, HEADER true)", buf,
        )
        buf.seek(0)
        frame = pd.read_csv(buf, engine="pyarrow")
        frame["customer_id"] = frame["customer_id"].astype("str")
        frame = frame.set_index("customer_id")[list(FEATURE_NAMES)].astype("float64")
        t2 = time.perf_counter()
        times.update(compute=t1 - start, fetch=t2 - t1, total=t2 - start)
        if write_run_id is not None:
            cols = ", ".join(FEATURE_NAMES)
            cur.execute(
                f"INSERT INTO customer_features (customer_id, as_of_date, {cols}, run_id)"
                f" SELECT customer_id, %s, {cols}, %s FROM bench_features",
                (as_of, write_run_id),
            )
            raw.commit()
            times["write"] = time.perf_counter() - t2
        else:
            raw.rollback()
    finally:
        raw.close()
    return frame, times


# ---------------------------------------------------------------------------------------------
# pandas paths
# ---------------------------------------------------------------------------------------------


def rfm_floor(frame: Any, key: Any, cutoff: Any) -> Any:
    """Bare pandas RFM: last time, count and sum of amount per customer, then recency."""
    import pandas as pd

    grouped = pd.DataFrame(
        {"k": key, "ts": frame["transaction_start_time"], "amount": frame["amount"]}
    ).groupby("k", observed=True, sort=False)
    rfm = grouped.agg(last=("ts", "max"), frequency=("amount", "size"),
                      monetary=("amount", "sum"))
    rfm["recency_days"] = (cutoff - rfm["last"]).dt.total_seconds() / 86_400.0
    return rfm


def best_of(label: str, fn: Callable[[], dict[str, float]]) -> list[dict[str, float]]:
    """Run ``fn`` RUNS times, print each run's phases, return them all."""
    runs = []
    for i in range(RUNS):
        phases = fn()
        runs.append(phases)
        print(f"  {label} run {i + 1}: " + " ".join(f"{k}={v:.3f}" for k, v in phases.items()))
    return runs


def compare(pandas_frame: Any, sql_frame: Any) -> float:
    """Print per-feature differences between the two paths; return the max abs diff."""
    import numpy as np

    assert pandas_frame.index.equals(sql_frame.index), "the two paths differ in customers"
    worst = 0.0
    lines = []
    for name in pandas_frame.columns:
        a = pandas_frame[name].to_numpy()
        b = sql_frame[name].to_numpy()
        diff = np.abs(a - b)
        abs_max = float(np.nanmax(diff))
        rel_max = float(np.nanmax(diff / np.maximum(np.abs(a), 1.0)))
        worst = max(worst, abs_max)
        nan_mismatch = int((np.isnan(a) != np.isnan(b)).sum())
        if abs_max > 0 or nan_mismatch:
            lines.append(f"{name}={abs_max:.3g}(rel {rel_max:.2g}"
                         + (f", {nan_mismatch} NaN mismatches" if nan_mismatch else "") + ")")
    print(f"check: {len(pandas_frame)} customers x {len(pandas_frame.columns)} features, "
          f"max abs diff {worst:.3g}; non-zero: " + (", ".join(lines) or "none"))
    return worst


def profile_compute(tx: Any, as_of: dt.date) -> None:
    import cProfile
    import pstats

    from creditrisk.features.compute import compute_features

    prof = cProfile.Profile()
    prof.runcall(compute_features, tx, as_of)
    pstats.Stats(prof).sort_stats("cumulative").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=70, help="70 days give ~1.02M rows")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of one compute_features call")
    args = parser.parse_args()

    import pandas as pd
    import sqlalchemy as sa

    from creditrisk.features.compute import as_of_timestamp, compute_features
    from creditrisk.landing.simulate import generate_landing
    from creditrisk.storage.db import make_engine
    from creditrisk.storage.features import load_transactions, replace_features
    from tests.warehouse import load_landing_files

    with tempfile.TemporaryDirectory(prefix="creditrisk-bench-") as tmp, \
            admin_url() as admin, fresh_database(admin, "crbench_features") as url:
        start = time.perf_counter()
        summary = generate_landing(customers=args.customers, days=args.days, end_date=END,
                                   out_dir=Path(tmp) / "landing", seed=args.seed)
        generated_s = time.perf_counter() - start
        start = time.perf_counter()
        loaded = load_landing_files(url, summary.files, run_id="bench-features")
        maint = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with maint.connect() as conn:
                conn.execute(sa.text("VACUUM ANALYZE raw_transactions"))
                server_work_mem = conn.execute(sa.text("SHOW work_mem")).scalar_one()
                version = conn.execute(sa.text("SHOW server_version")).scalar_one()
        finally:
            maint.dispose()
        as_of = summary.last_day + dt.timedelta(days=1)
        print(f"generated rows={summary.rows} customers={summary.customers} "
              f"days={args.days} ({summary.first_day}..{summary.last_day}) in {generated_s:.1f}s; "
              f"loaded {loaded} rows + VACUUM ANALYZE in {time.perf_counter() - start:.1f}s "
              f"(not timed); PostgreSQL {version}, work_mem={server_work_mem}; as_of={as_of}")

        engine = make_engine(url)
        try:
            # The timed candidates run in interleaved rounds so that noise from other
            # processes on the machine hits them alike.
            state: dict[str, Any] = {}
            cutoff = as_of_timestamp(as_of)

            def pandas_run() -> dict[str, float]:
                # (a) pandas as production runs it.
                t0 = time.perf_counter()
                tx = load_transactions(engine, before=as_of)
                t1 = time.perf_counter()
                feats = compute_features(tx, as_of)
                t2 = time.perf_counter()
                state["tx"], state["feats"] = tx, feats
                # The floor's prepared keys (not timed).
                state["cat"] = tx["customer_id"].astype("category")
                state["int"] = pd.factorize(tx["customer_id"])[0]
                return {"load": t1 - t0, "compute": t2 - t1, "total": t2 - t0}

            candidates: dict[str, Callable[[], dict[str, float]]] = {
                "pandas load+compute": pandas_run,
                # (b) the floor, on the same in-memory frame.
                "floor string key": lambda: _timed(
                    lambda: rfm_floor(state["tx"], state["tx"]["customer_id"], cutoff)),
                "floor categorical key": lambda: _timed(
                    lambda: rfm_floor(state["tx"], state["cat"], cutoff)),
                "floor integer key": lambda: _timed(
                    lambda: rfm_floor(state["tx"], state["int"], cutoff)),
                # (c) the same features aggregated in PostgreSQL.
                "sql server work_mem": lambda: sql_features(engine, as_of, None)[1],
                f"sql work_mem={SQL_WORK_MEM}": lambda: sql_features(
                    engine, as_of, SQL_WORK_MEM)[1],
            }
            runs: dict[str, list[dict[str, float]]] = {k: [] for k in candidates}
            print(f"{RUNS} interleaved rounds (seconds; sql = aggregate into a temp table, "
                  "then fetch it into pandas):")
            for i in range(RUNS):
                for label, fn in candidates.items():
                    phases = fn()
                    runs[label].append(phases)
                    print(f"  round {i + 1} {label}: "
                          + " ".join(f"{k}={v:.3f}" for k, v in phases.items()))
            tx, feats = state["tx"], state["feats"]
            transactions, customers = len(tx), len(feats)
            assert transactions == loaded, (transactions, loaded)
            for key in ("cat", "int"):
                assert len(rfm_floor(tx, state[key], cutoff)) == customers
            pandas_runs = runs["pandas load+compute"]
            floor_labels = [k for k in runs if k.startswith("floor ")]
            floor_label = min(floor_labels, key=lambda k: min(r["total"] for r in runs[k]))
            sql_labels = [k for k in runs if k.startswith("sql ")]
            best_label = min(sql_labels, key=lambda k: min(r["total"] for r in runs[k]))
            best_mem = SQL_WORK_MEM if best_label.endswith(SQL_WORK_MEM) else None
            sql_frame, _ = sql_features(engine, as_of, best_mem)
            compare(feats, sql_frame)

            # Writing the rows back (context for a whole build; not part of the choice).
            def truncate() -> None:
                with engine.begin() as conn:
                    conn.execute(sa.text("TRUNCATE customer_features"))

            def pandas_write() -> dict[str, float]:
                truncate()
                return _timed(lambda: replace_features(engine, as_of, feats, "bench"))

            def sql_write() -> dict[str, float]:
                truncate()
                times = sql_features(engine, as_of, best_mem, write_run_id="bench")[1]
                return {"write": times["write"]}

            print("write 50k feature rows into an empty customer_features:")
            pandas_write_runs = best_of("replace_features (pandas)", pandas_write)
            sql_write_runs = best_of("INSERT ... SELECT from the temp table", sql_write)
            truncate()

            if args.profile:
                profile_compute(tx, as_of)
        finally:
            engine.dispose()

    def best(runs: list[dict[str, float]], key: str = "total") -> float:
        return min(r[key] for r in runs)

    pandas_best = min(pandas_runs, key=lambda r: r["total"])
    seconds = pandas_best["total"]
    floor_seconds = best(runs[floor_label])
    sql_best = min(runs[best_label], key=lambda r: r["total"])
    sql_seconds = sql_best["total"]
    print(f"best of {RUNS}: pandas load={best(pandas_runs, 'load'):.3f} "
          f"compute={best(pandas_runs, 'compute'):.3f} (best run: load={pandas_best['load']:.3f}"
          f" + compute={pandas_best['compute']:.3f} = {seconds:.3f}); "
          + " ".join(f"{k}={best(runs[k]):.3f}" for k in floor_labels)
          + f" (floor: {floor_label}); "
          f"{best_label} compute={sql_best['compute']:.3f} fetch={sql_best['fetch']:.3f}")
    print(f"pandas_over_floor={seconds / floor_seconds:.1f} (load+compute; the floor reads "
          f"nothing) compute_over_floor={best(pandas_runs, 'compute') / floor_seconds:.1f} "
          "(31 features against 3)")
    pandas_build = seconds + best(pandas_write_runs)
    sql_build = sql_best["compute"] + best(sql_write_runs, "write")
    print(f"with the write: pandas load+compute+replace_features={pandas_build:.3f} "
          f"sql compute+insert={sql_build:.3f} ratio={sql_build / pandas_build:.2f}")
    print(f"sql_seconds={sql_seconds:.3f} pandas_seconds={seconds:.3f} "
          f"sql_over_pandas={sql_seconds / seconds:.2f}")
    print(f"choice={'pandas' if seconds <= sql_seconds else 'sql'}")
    print(f"transactions={transactions} customers={customers} seconds={seconds:.3f} "
          f"rows_per_s={int(transactions / seconds)} floor_seconds={floor_seconds:.3f}")


def _timed(fn: Callable[[], object]) -> dict[str, float]:
    start = time.perf_counter()
    fn()
    return {"total": time.perf_counter() - start}


if __name__ == "__main__":
    main()
