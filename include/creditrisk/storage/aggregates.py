"""All SQL on the incremental-feature tables (migration 0014).

``customer_daily_aggregates`` holds, per customer and UTC day, every additive part of
the cumulative features; ``customer_first_seen`` the first day of each (customer,
category | product | provider); ``customer_daily_products`` the products bought per day.
Ingestion marks the days a file touches in ``customer_aggregate_dirty_days``, in the
file's own transaction (:func:`mark_days`); the next feature build recomputes every
dirty day from ``raw_transactions`` in one set-based pass before it plans
(:func:`refresh_dirty`, which calls :func:`refresh_days`), so a re-run or a late row
gives exactly what a rebuild gives, and deletes the feature states a changed day makes
stale. Sums are NUMERIC, so they are exact in any order.

A feature build folds the newest complete ``customer_feature_state`` before its date
with the daily rows in between (:func:`fold_state`), one hash chunk of customers at a
time, then reads the chunk's state and its last 30 days (:func:`read_chunk`).
"""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from creditrisk.schema import PAY_LATER_CHANNEL_ID, PLATFORM_PROVIDER_ID

if TYPE_CHECKING:
    import pandas as pd

#: The categories with a share feature (features.compute.MAIN_CATEGORIES; a test holds it).
CATEGORIES = ("airtime", "financial_services", "utility_bill")
WEB_CHANNEL_ID = "ChannelId_3"
#: Ingestion (exclusive) and feature chunks (shared) serialise on this advisory lock, so a
#: build never folds a day that a concurrent load is changing.
LOCK_KEY = 0x0C5EDA77
#: work_mem of the rebuild's and a chunk's sorts (one sort per statement at a time).
SORT_MEMORY = "256MB"
#: States older than this many days before a published date are dropped.
KEEP_STATE_DAYS = 7

_ROWS_TABLE = "touched_transactions"

# (column, SQL over a day's rows ``d``): the additive parts; see migration 0014.
_DAILY: tuple[tuple[str, str], ...] = (
    ("n", "count(*)"),
    ("debit_n", "count(*) FILTER (WHERE amount > 0)"),
    ("debit_sum", "coalesce(sum(amount) FILTER (WHERE amount > 0), 0)"),
    ("debit_sq", "coalesce(sum(amount * amount) FILTER (WHERE amount > 0), 0)"),
    ("debit_max", "max(amount) FILTER (WHERE amount > 0)"),
    ("credit_n", "count(*) FILTER (WHERE amount < 0)"),
    ("credit_sum", "coalesce(sum(amount) FILTER (WHERE amount < 0), 0)"),
    ("first_ts", "min(ts)"),
    ("last_ts", "max(ts)"),
    ("first_debit_ts", "min(ts) FILTER (WHERE amount > 0)"),
    ("last_debit_ts", "max(ts) FILTER (WHERE amount > 0)"),
    ("max_debit_gap_us", "max(gap_us)"),
    ("airtime_n", f"count(*) FILTER (WHERE product_category = '{CATEGORIES[0]}')"),
    ("financial_services_n", f"count(*) FILTER (WHERE product_category = '{CATEGORIES[1]}')"),
    ("utility_bill_n", f"count(*) FILTER (WHERE product_category = '{CATEGORIES[2]}')"),
    ("web_n", f"count(*) FILTER (WHERE channel_id = '{WEB_CHANNEL_ID}')"),
    ("pay_later_n", f"count(*) FILTER (WHERE channel_id = '{PAY_LATER_CHANNEL_ID}')"),
    ("platform_n", f"count(*) FILTER (WHERE provider_id = '{PLATFORM_PROVIDER_ID}')"),
    ("night_n", "count(*) FILTER (WHERE extract(hour FROM local_ts) < 6)"),
    ("weekend_n", "count(*) FILTER (WHERE extract(isodow FROM local_ts) >= 6)"),
    ("fraud_n", "count(*) FILTER (WHERE fraud_result = 1)"),
    ("pricing_2_n", "count(*) FILTER (WHERE pricing_strategy = 2)"),
    ("pricing_4_n", "count(*) FILTER (WHERE pricing_strategy = 4)"),
    ("purchase_n", "count(*) FILTER (WHERE buy)"),
    ("purchase_abs_sum", "coalesce(sum(abs(amount)) FILTER (WHERE buy), 0)"),
    ("last_purchase_ts", "max(ts) FILTER (WHERE buy)"),
)
TOTAL_COLUMNS = tuple(c for c, _ in _DAILY)
_BUY = (f"((r.amount > 0 AND r.provider_id <> '{PLATFORM_PROVIDER_ID}')"
        f" OR r.channel_id = '{PAY_LATER_CHANNEL_ID}')")
#: A customer-initiated purchase (schema.purchase_mask) of a ``raw_transactions`` row ``r``.
PURCHASE_SQL = _BUY
_DAY = "(r.transaction_start_time AT TIME ZONE 'UTC')::date"
# the rows of ``source`` r (raw_transactions or the touched rows) with their day, purchase
# flag, local
# time and the gap to the customer's previous debit of the same day
_ROWS = (
    "SELECT r.customer_id, {day} AS day, r.transaction_start_time AS ts, r.amount,"
    " r.product_category, r.channel_id, r.provider_id, r.fraud_result, r.pricing_strategy,"
    " (r.transaction_start_time AT TIME ZONE 'UTC') + interval '3 hours' AS local_ts,"
    " {buy} AS buy,"
    " CASE WHEN r.amount > 0 THEN (extract(epoch FROM r.transaction_start_time - lag("
    "r.transaction_start_time) OVER (PARTITION BY r.customer_id, {day}, r.amount > 0"
    " ORDER BY r.transaction_start_time)) * 1000000)::bigint END AS gap_us"
    " FROM {source} r"
)


def _daily_insert(source: str) -> str:
    rows = _ROWS.format(day=_DAY, buy=_BUY, source=source)
    cols = ", ".join(TOTAL_COLUMNS)
    exprs = ", ".join(e for _, e in _DAILY)
    return (f"INSERT INTO customer_daily_aggregates (customer_id, day, {cols})"  # nosec B608 - constants
            f" SELECT customer_id, day, {exprs} FROM ({rows}) d GROUP BY customer_id, day")


def _products_insert(source: str) -> str:
    return ("INSERT INTO customer_daily_products (customer_id, day, product_id)"  # nosec B608 - constants
            f" SELECT DISTINCT r.customer_id, {_DAY}, r.product_id FROM {source} r"
            f" WHERE {_BUY}")


def _first_seen_upsert(source: str) -> str:
    # one pass over the rows, each giving its (category, product, provider) keys
    keys = (f"SELECT r.customer_id, k.kind, k.value, min({_DAY}) AS first_day FROM {source} r"  # nosec B608 - constants
            " CROSS JOIN LATERAL (VALUES ('category', r.product_category), ('product',"
            " r.product_id), ('provider', r.provider_id)) AS k (kind, value)"
            " GROUP BY r.customer_id, k.kind, k.value")
    return ("INSERT INTO customer_first_seen (customer_id, kind, value, first_day) "  # nosec B608 - constants
            f"{keys} ON CONFLICT (customer_id, kind, value) DO UPDATE SET first_day ="
            " EXCLUDED.first_day WHERE EXCLUDED.first_day < customer_first_seen.first_day")


def rebuild_statements() -> list[tuple[str, dict[str, Any]]]:
    """Empty every incremental table and refill the aggregates from ``raw_transactions``."""
    empty = ("TRUNCATE customer_daily_aggregates, customer_daily_products, customer_first_seen,"
             " customer_feature_state, customer_feature_state_dates, customer_features_stage")
    return [(empty, {}), *_fill_statements("raw_transactions")]


def _fill_statements(source: str) -> list[tuple[str, dict[str, Any]]]:
    """Insert the aggregates of every (customer, day) in ``source`` (rows shaped like
    ``raw_transactions``): days, products, and the first-seen upsert."""
    return [(_daily_insert(source), {}), (_products_insert(source), {}),
            (_first_seen_upsert(source), {})]


def forget_states(cursor: Any) -> None:
    """Drop every feature state: the next build folds from the first day."""
    cursor.execute("TRUNCATE customer_feature_state, customer_feature_state_dates")


def rebuild(cursor: Any) -> None:
    """Recompute every aggregate from ``raw_transactions`` in the cursor's transaction
    (no day is dirty afterwards)."""
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    cursor.execute(f"SET LOCAL work_mem = '{SORT_MEMORY}'")  # the sorts stay in memory
    for statement, _ in rebuild_statements():
        cursor.execute(statement)
    cursor.execute("DELETE FROM customer_aggregate_dirty_days")


def staged_days(cursor: Any, stage: str = "stage_raw_transactions") -> list[dt.date]:
    """The UTC days of the rows staged for a load (the tests' loader)."""
    # the stage's name is a module constant of storage.transactions
    cursor.execute(f"SELECT DISTINCT (transaction_start_time::timestamptz AT TIME ZONE 'UTC')"  # nosec B608 - constants
                   f"::date FROM {stage}")
    return sorted(r[0] for r in cursor.fetchall())


def refresh_days(cursor: Any, days: Iterable[dt.date]) -> None:
    """Recompute the aggregates of whole UTC days from ``raw_transactions``.

    In the caller's transaction (:func:`refresh_dirty`): the days' rows are read once
    (a range of the time index), every (customer, day) of them is recomputed from its
    source rows, so the result is what a rebuild gives whatever order the rows came in,
    and a re-run changes nothing. The feature states from the first day on are deleted
    (they missed the rows).
    """
    days = sorted(set(days))
    if not days:
        return
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    for table in ("customer_daily_aggregates", "customer_daily_products"):
        cursor.execute(f"DELETE FROM {table} WHERE day = ANY(%s)", (days,))  # nosec B608 - constants
    cursor.execute(f"DROP TABLE IF EXISTS {_ROWS_TABLE}")
    cursor.execute(f"CREATE TEMP TABLE {_ROWS_TABLE} ON COMMIT DROP AS SELECT * FROM"  # nosec B608 - constants
                   " raw_transactions WITH NO DATA")
    cursor.execute("SET LOCAL enable_seqscan = off")  # a range of the time index, always
    for day in days:
        cursor.execute(f"INSERT INTO {_ROWS_TABLE} SELECT * FROM raw_transactions WHERE"  # nosec B608 - constants
                       " transaction_start_time >= (%(d)s::timestamp AT TIME ZONE 'UTC') AND"
                       " transaction_start_time < ((%(d)s + 1)::timestamp AT TIME ZONE 'UTC')",
                       {"d": day})
    cursor.execute("SET LOCAL enable_seqscan TO DEFAULT")
    for statement, _ in _fill_statements(_ROWS_TABLE):
        cursor.execute(statement)
    # a state as of D covers days < D: stale when D > the first refreshed day
    cursor.execute("DELETE FROM customer_feature_state_dates WHERE as_of_date > %s", (days[0],))
    cursor.execute("DELETE FROM customer_feature_state WHERE as_of_date > %s", (days[0],))
    cursor.execute(f"DROP TABLE {_ROWS_TABLE}")


def mark_days(cursor: Any, days: Iterable[dt.date], run_id: str) -> None:
    """Mark the days a load added rows to, in the load's transaction (see the module).

    Takes the aggregate lock: a refresh that has read the dirty days cannot then delete
    a mark this load needed (the load waits for it, or it for the load).
    """
    days = sorted(set(days))
    if not days:
        return
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    cursor.execute("INSERT INTO customer_aggregate_dirty_days (day, run_id)"
                   " SELECT unnest(%s::date[]), %s ON CONFLICT (day) DO NOTHING", (days, run_id))


def refresh_dirty(cursor: Any, run_id: str) -> list[dt.date]:
    """Re-aggregate every dirty day in the cursor's transaction; the days refreshed.

    One pass over all the dirty days (a backfill of many files costs one set-based
    refresh, not one per file), logged in ``customer_aggregate_refreshes``. A build
    whose chunks ran across a refresh is refused at publish: the refresh deleted the
    states from its first day on, so the folded counts no longer add up.
    """
    t0 = time.perf_counter()
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    cursor.execute(f"SET LOCAL work_mem = '{SORT_MEMORY}'")  # the sorts stay in memory
    cursor.execute("SELECT day FROM customer_aggregate_dirty_days ORDER BY day")
    days = [r[0] for r in cursor.fetchall()]
    if days:
        refresh_days(cursor, days)
        cursor.execute("DELETE FROM customer_aggregate_dirty_days WHERE day = ANY(%s)", (days,))
        cursor.execute("INSERT INTO customer_aggregate_refreshes (days, seconds, run_id)"
                       " VALUES (%s, %s, %s)", (days, time.perf_counter() - t0, run_id))
    return days


def chunk_predicate(chunk: int, n_chunks: int, column: str = "customer_id") -> str:
    """SQL condition selecting one chunk of customers by a stable hash of their id."""
    return f"mod(abs(hashtext({column})::bigint), {int(n_chunks)}) = {int(chunk)}"


def base_state_date(cursor: Any, as_of: dt.date) -> dt.date | None:
    """The newest complete state strictly before ``as_of`` (None: fold from the start)."""
    cursor.execute("SELECT max(as_of_date) FROM customer_feature_state_dates"
                   " WHERE as_of_date < %s", (as_of,))
    return cursor.fetchone()[0]


def start_build(cursor: Any, as_of: dt.date) -> None:
    """Forget any half-done build of ``as_of`` (its state and stage)."""
    cursor.execute("DELETE FROM customer_feature_state_dates WHERE as_of_date = %s", (as_of,))
    cursor.execute("DELETE FROM customer_feature_state WHERE as_of_date = %s", (as_of,))
    cursor.execute("DELETE FROM customer_features_stage WHERE as_of_date = %s", (as_of,))


def estimate_customers(cursor: Any, as_of: dt.date, base: dt.date | None) -> int:
    """Customers before ``as_of``: the base state's count, plus the days after it."""
    if base is not None:
        cursor.execute("SELECT count(*) FROM customer_feature_state WHERE as_of_date = %s",
                       (base,))
        known = int(cursor.fetchone()[0])
        cursor.execute("SELECT count(DISTINCT customer_id) FROM customer_daily_aggregates"
                       " WHERE day >= %s AND day < %s", (base, as_of))
        return known + int(cursor.fetchone()[0])
    cursor.execute("SELECT count(DISTINCT customer_id) FROM customer_daily_aggregates"
                   " WHERE day < %s", (as_of,))
    return int(cursor.fetchone()[0])


_STATE_EXTRA = ("active_days", "n_categories", "n_products", "n_providers")
_SUMMED = {"n", "debit_n", "debit_sum", "debit_sq", "credit_n", "credit_sum",
           "purchase_abs_sum"} | {c for c in TOTAL_COLUMNS if c.endswith("_n")}
_FOLD = {"debit_max": "max", "first_ts": "min", "last_ts": "max", "first_debit_ts": "min",
         "last_debit_ts": "max", "last_purchase_ts": "max"}


def _fold_expr(col: str) -> str:
    if col == "max_debit_gap_us":  # the days' own gaps and the gaps between them
        return "max(greatest(g.max_debit_gap_us, g.join_gap_us))"
    return f"{'sum' if col in _SUMMED else _FOLD[col]}(g.{col})"


def fold_state(cursor: Any, as_of: dt.date, base: dt.date | None, chunk: int,
               n_chunks: int) -> None:
    """Write the chunk's state as of ``as_of``: the ``base`` state plus the days from it.

    Exact: counts and NUMERIC sums add, first/last times and maxima fold, the largest
    gap between purchases is the days' own or the gap across consecutive debit days,
    and the distinct counts add the keys first seen in between.
    """
    pred = chunk_predicate(chunk, n_chunks)
    since = base or dt.date.min
    cols = ", ".join(TOTAL_COLUMNS)
    keys = ", ".join(f"count(*) FILTER (WHERE kind = '{k}') AS {k}"
                     for k in ("category", "product", "provider"))
    # constant columns, a hash predicate of two ints; dates are bound parameters
    query = (
        f"INSERT INTO customer_feature_state (as_of_date, customer_id, {cols},"  # nosec B608 - constants
        f" {', '.join(_STATE_EXTRA)}) WITH parts AS ("
        f" SELECT customer_id, as_of_date - 1 AS day, {cols}, {', '.join(_STATE_EXTRA)}"
        f" FROM customer_feature_state WHERE as_of_date = %(base)s AND {pred}"
        f" UNION ALL SELECT customer_id, day, {cols}, 1, 0, 0, 0"
        " FROM customer_daily_aggregates WHERE day >= %(since)s AND day < %(as_of)s"
        f" AND {pred}), g AS (SELECT *, CASE WHEN debit_n > 0 THEN (extract(epoch FROM"
        " first_debit_ts - lag(last_debit_ts) OVER (PARTITION BY customer_id, debit_n > 0"
        " ORDER BY day)) * 1000000)::bigint END AS join_gap_us FROM parts),"
        f" seen AS (SELECT customer_id, {keys} FROM customer_first_seen WHERE first_day >="
        f" %(since)s AND first_day < %(as_of)s AND {pred} GROUP BY customer_id)"
        f" SELECT %(as_of)s, g.customer_id, {', '.join(_fold_expr(c) for c in TOTAL_COLUMNS)},"
        " sum(g.active_days), sum(g.n_categories) + coalesce(max(s.category), 0),"
        " sum(g.n_products) + coalesce(max(s.product), 0),"
        " sum(g.n_providers) + coalesce(max(s.provider), 0)"
        " FROM g LEFT JOIN seen s USING (customer_id) GROUP BY g.customer_id"
    )
    cursor.execute(query, {"base": base, "since": since, "as_of": as_of})


_TIMES = ("first_ts", "last_ts", "first_debit_ts", "last_debit_ts", "last_purchase_ts")


def read_chunk(cursor: Any, as_of: dt.date, chunk: int, n_chunks: int) -> pd.DataFrame:
    """The chunk's state as of ``as_of`` with its 7- and 30-day window sums.

    Three plain scans (COPY out), joined in pandas: no plan rests on the statistics of
    a state written moments ago. Times come as epoch microseconds; a customer without a
    window row has zeros.
    """
    pred = chunk_predicate(chunk, n_chunks)
    d, d7, d30 = (f"'{(as_of - dt.timedelta(days=k)).isoformat()}'" for k in (0, 7, 30))
    cols = ", ".join(
        f"(extract(epoch FROM {c}) * 1000000)::bigint AS {c}" if c in _TIMES else c
        for c in (*TOTAL_COLUMNS, *_STATE_EXTRA))
    # COPY takes no parameters: constant columns, ISO dates of date objects, int predicate
    state = _copy_out(cursor, f"SELECT customer_id, {cols} FROM customer_feature_state"  # nosec B608 - constants
                              f" WHERE as_of_date = {d} AND {pred}")
    window = _copy_out(cursor, (  # nosec B608 - as above
        "SELECT customer_id, sum(n) AS txn_30, sum(debit_sum) AS spend_30,"  # nosec B608 - constants
        " sum(purchase_n) AS purchases_30, count(*) FILTER (WHERE purchase_n > 0) AS active_30,"
        f" coalesce(sum(purchase_n) FILTER (WHERE day >= {d7}), 0) AS purchases_7,"
        f" coalesce(sum(purchase_abs_sum) FILTER (WHERE day >= {d7}), 0) AS spend_7"
        f" FROM customer_daily_aggregates WHERE day >= {d30} AND day < {d} AND {pred}"
        " GROUP BY customer_id"))
    products = _copy_out(cursor, (  # nosec B608 - as above
        "SELECT customer_id, count(DISTINCT product_id) AS products_30 FROM"  # nosec B608 - constants
        f" customer_daily_products WHERE day >= {d30} AND day < {d} AND {pred}"
        " GROUP BY customer_id"))
    frame = state.merge(window, on="customer_id", how="left").merge(
        products, on="customer_id", how="left")
    extra = ["txn_30", "spend_30", "purchases_30", "active_30", "purchases_7", "spend_7",
             "products_30"]
    frame[extra] = frame[extra].fillna(0.0)
    return frame


def _copy_out(cursor: Any, query: str) -> pd.DataFrame:
    import pandas as pd

    buf = io.BytesIO()
    cursor.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)", buf)
    buf.seek(0)
    frame = pd.read_csv(buf, engine="pyarrow")
    frame["customer_id"] = frame["customer_id"].astype("str")
    return frame


def count_state(cursor: Any, as_of: dt.date) -> tuple[int, int]:
    """Customers and transactions in the state as of ``as_of``."""
    cursor.execute("SELECT count(*), coalesce(sum(n), 0) FROM customer_feature_state"
                   " WHERE as_of_date = %s", (as_of,))
    customers, transactions = cursor.fetchone()
    return int(customers), int(transactions)


def complete_state(cursor: Any, as_of: dt.date, n_chunks: int, run_id: str) -> None:
    """Mark the date's state complete (it may seed later builds); drop old states."""
    cursor.execute("INSERT INTO customer_feature_state_dates (as_of_date, chunks, run_id)"
                   " VALUES (%s, %s, %s)", (as_of, n_chunks, run_id))
    old = as_of - dt.timedelta(days=KEEP_STATE_DAYS)
    cursor.execute("DELETE FROM customer_feature_state_dates WHERE as_of_date < %s", (old,))
    cursor.execute("DELETE FROM customer_feature_state WHERE as_of_date < %s", (old,))


def publish_stage(cursor: Any, as_of: dt.date) -> int:
    """Swap the staged date into ``customer_features`` (the caller's transaction)."""
    cursor.execute("DELETE FROM customer_features WHERE as_of_date = %s", (as_of,))
    cursor.execute("INSERT INTO customer_features SELECT * FROM customer_features_stage"
                   " WHERE as_of_date = %s", (as_of,))
    moved = int(cursor.rowcount)
    cursor.execute("DELETE FROM customer_features_stage WHERE as_of_date = %s", (as_of,))
    return moved
