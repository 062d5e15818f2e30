"""All SQL on customer_features and customer_labels, and reading transactions for them."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from creditrisk.catalogue import FEATURE_NAMES
from creditrisk.schema import TRANSACTION_COLUMNS
from creditrisk.storage.db import raw_cursor

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine


def _copy_out(engine: Engine, query: str) -> pd.DataFrame:
    """Run ``query`` through COPY ... TO STDOUT (CSV) and parse it with pyarrow."""
    import pandas as pd

    buf = io.BytesIO()
    with raw_cursor(engine) as cur:
        cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)", buf)
    buf.seek(0)
    if buf.getbuffer().nbytes == 0:
        return pd.DataFrame()
    return pd.read_csv(buf, engine="pyarrow")


def load_transactions(
    engine: Engine,
    *,
    before: dt.date,
    since: dt.date | None = None,
    customer_ids: Sequence[str] | None = None,
    sample_share: float = 1.0,
    where_sql: str | None = None,
) -> pd.DataFrame:
    """Transactions with ``since <= day < before`` (UTC), the columns features read.

    Args:
        engine: Warehouse engine.
        before: Exclusive upper bound (the as-of date or a window's end).
        since: Inclusive lower bound, or None for all history.
        customer_ids: Restrict to these customers (the API's single-customer path).
        sample_share: Below 1, only the customers :func:`read_training_rows` keeps at
            that share (the same stable hash).
        where_sql: A trusted SQL condition (e.g. a feature chunk's hash predicate).
    """
    import pandas as pd

    cols = ", ".join(
        "transaction_start_time AT TIME ZONE 'UTC' AS transaction_start_time"
        if c == "transaction_start_time"
        else c
        for c in TRANSACTION_COLUMNS
    )
    where = [f"transaction_start_time < '{before.isoformat()}T00:00:00Z'::timestamptz"]
    if since is not None:
        where.append(f"transaction_start_time >= '{since.isoformat()}T00:00:00Z'::timestamptz")
    if customer_ids is not None:
        quoted = ", ".join("'" + c.replace("'", "''") + "'" for c in customer_ids)
        where.append(f"customer_id IN ({quoted or 'NULL'})")
    if sample_share < 1.0:
        where.append(_sample_predicate(sample_share, "customer_id"))
    if where_sql:
        where.append(where_sql)
    frame = _copy_out(
        # COPY takes no bind parameters: columns are constants, dates come from date
        # objects and ids are quoted as literals (quotes doubled) above
        engine, f"SELECT {cols} FROM raw_transactions WHERE {' AND '.join(where)}"  # nosec B608
    )
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in TRANSACTION_COLUMNS})
    frame["transaction_start_time"] = pd.to_datetime(frame["transaction_start_time"], utc=True)
    frame["customer_id"] = frame["customer_id"].astype("str")
    return frame


def latest_transaction_day(engine: Engine) -> dt.date | None:
    """The UTC day of the newest loaded transaction (None when nothing is loaded)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        value = conn.execute(
            sa.text(
                "SELECT (max(transaction_start_time) AT TIME ZONE 'UTC')::date"
                " FROM raw_transactions"
            )
        ).scalar_one()
    return value


def _copy_in(cursor: object, table: str, columns: Sequence[str], frame: pd.DataFrame) -> None:
    buf = io.StringIO()
    frame.to_csv(buf, index=False, header=False, columns=list(columns), na_rep="")
    buf.seek(0)
    cursor.copy_expert(  # type: ignore[attr-defined]
        f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", buf
    )


def _copy_in_arrow(cursor: object, table: str, columns: Sequence[str],
                   frame: pd.DataFrame) -> None:
    """COPY a frame of text and float columns, the CSV written by pyarrow.

    Arrow prints each float in its shortest form that reads back to the same double
    (as ``repr`` does), about 10x faster than ``DataFrame.to_csv``.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    buf = io.BytesIO()
    pacsv.write_csv(pa.Table.from_pandas(frame[list(columns)], preserve_index=False), buf,
                    write_options=pacsv.WriteOptions(include_header=False))
    buf.seek(0)
    cursor.copy_expert(  # type: ignore[attr-defined]
        f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", buf
    )


def replace_features(engine: Engine, as_of: dt.date, features: pd.DataFrame, run_id: str) -> int:
    """Replace the date's rows of ``customer_features`` in one transaction.

    Readers see the whole old date or the whole new one; a re-run never duplicates.
    """
    with raw_cursor(engine) as cur:
        return write_features(cur, as_of, features, run_id)


def write_features(cursor: object, as_of: dt.date, features: pd.DataFrame, run_id: str) -> int:
    """Replace the date's ``customer_features`` rows in the cursor's open transaction."""

    frame = features.reset_index()
    frame.insert(1, "as_of_date", as_of.isoformat())
    frame["run_id"] = run_id
    cursor.execute(  # type: ignore[attr-defined]
        "DELETE FROM customer_features WHERE as_of_date = %s", (as_of,)
    )
    _copy_in_arrow(
        cursor, "customer_features", ["customer_id", "as_of_date", *FEATURE_NAMES, "run_id"],
        frame,
    )
    return len(frame)


def stage_features(cursor: object, as_of: dt.date, features: pd.DataFrame, run_id: str) -> int:
    """Add one chunk's rows to ``customer_features_stage`` (the date's stage was cleared)."""

    frame = features.reset_index()
    frame.insert(1, "as_of_date", as_of.isoformat())
    frame["run_id"] = run_id
    _copy_in_arrow(cursor, "customer_features_stage",
             ["customer_id", "as_of_date", *FEATURE_NAMES, "run_id"], frame)
    return len(frame)


def forget_staged_chunk(cursor: Any, as_of: dt.date, chunk: int, n_chunks: int) -> bool:
    """Drop an earlier try of one chunk of the date: its stage and state rows and its
    ``customer_features_stage_chunks`` row (the cursor's transaction).

    All three are written in one transaction, so a chunk without its row has nothing
    staged or folded either: only a chunk that already committed pays for the deletes.
    Returns whether there was such a try.
    """
    from creditrisk.storage.aggregates import chunk_predicate

    cursor.execute("DELETE FROM customer_features_stage_chunks WHERE as_of_date = %s"
                   " AND chunk = %s RETURNING chunk", (as_of, chunk))
    if cursor.fetchone() is None:
        return False
    pred = chunk_predicate(chunk, n_chunks)  # two ints
    for table in ("customer_features_stage", "customer_feature_state"):
        cursor.execute(f"DELETE FROM {table} WHERE as_of_date = %s AND {pred}",  # nosec B608 - constants and ints
                       (as_of,))
    return True


def record_staged_chunk(cursor: Any, as_of: dt.date, chunk: int, n_chunks: int,
                        base: dt.date | None, n_rows: int, run_id: str) -> None:
    """Mark one chunk of the date staged (in the transaction that staged it)."""
    cursor.execute("INSERT INTO customer_features_stage_chunks (as_of_date, chunk, n_chunks,"
                   " base_date, n_rows, run_id) VALUES (%s, %s, %s, %s, %s, %s)",
                   (as_of, chunk, n_chunks, base, n_rows, run_id))


def forget_staged_chunks(cursor: Any, as_of: dt.date) -> None:
    """Drop every chunk row of the date (a new plan, or the date published)."""
    cursor.execute("DELETE FROM customer_features_stage_chunks WHERE as_of_date = %s", (as_of,))


def has_staged_chunks(cursor: Any, as_of: dt.date) -> bool:
    """Whether any chunk of the date is staged (a build of it is under way)."""
    cursor.execute("SELECT EXISTS (SELECT 1 FROM customer_features_stage_chunks"
                   " WHERE as_of_date = %s)", (as_of,))
    return bool(cursor.fetchone()[0])


def check_staged_chunks(cursor: Any, as_of: dt.date, n_chunks: int, base: dt.date | None,
                        run_id: str, folded: int) -> int:
    """Every chunk of the plan staged by this run from its base, and the rows add up.

    ``folded`` is the date's customers in ``customer_feature_state``: a load that
    changed a day before the date since its chunks ran deleted their state, so the
    counts no longer agree.

    Returns:
        The staged rows.

    Raises:
        IncompleteBuildError: a chunk is missing or from another plan or run, or the
            staged, recorded and folded customers differ: nothing may be published.
    """
    from creditrisk.errors import IncompleteBuildError

    cursor.execute("SELECT chunk, n_rows, n_chunks <> %s OR base_date IS DISTINCT FROM %s"
                   " OR run_id <> %s FROM customer_features_stage_chunks"
                   " WHERE as_of_date = %s ORDER BY chunk", (n_chunks, base, run_id, as_of))
    rows = cursor.fetchall()
    missing = sorted(set(range(n_chunks)) - {int(r[0]) for r in rows})
    foreign = [int(r[0]) for r in rows if r[2]]
    if missing or foreign:
        why = [f"chunk(s) {missing} of {n_chunks} not staged"] if missing else []
        why += [f"chunk(s) {foreign} staged by another plan or run"] if foreign else []
        raise IncompleteBuildError(
            f"features as of {as_of}: {'; '.join(why)}: not publishing; run the missing "
            "chunk(s), or the whole build again")
    recorded = sum(int(r[1]) for r in rows)
    cursor.execute("SELECT count(*) FROM customer_features_stage WHERE as_of_date = %s",
                   (as_of,))
    staged = int(cursor.fetchone()[0])
    if not staged == recorded == folded:
        raise IncompleteBuildError(
            f"features as of {as_of}: {staged} rows staged, {recorded} recorded by the "
            f"chunks and {folded} customers folded (a load changed a day before "
            f"{as_of} since the chunks ran?): not publishing; run the whole build again")
    return staged


def read_features(
    engine: Engine, as_of: dt.date, customer_ids: Sequence[str] | None = None,
    where_sql: str | None = None, table: str = "customer_features", *, ordered: bool = True,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The stored features of a date, indexed by customer_id, catalogue columns.

    ``where_sql`` adds a trusted SQL condition (e.g. a scoring chunk's predicate);
    ``ordered=False`` skips sorting by customer (batch scoring needs no order).
    ``table`` may name ``customer_features_stage`` (a build's chunks before the swap).
    ``columns`` reads only those catalogue columns (kept in catalogue order): batch
    scoring reads what the model, the policy and monitoring use, not the whole row.

    One ``COPY ... TO STDOUT`` parsed by pyarrow with the types given, not guessed (an id
    of digits stays text): in COPY's text format, faster to write and to parse than CSV;
    a payload with any backslash (an escaped id) is read again as CSV, which pyarrow
    unquotes exactly.
    """
    if table not in ("customer_features", "customer_features_stage"):
        raise ValueError(f"not a feature table: {table}")
    cols = list(FEATURE_NAMES)
    if columns is not None:
        unknown = sorted(set(columns) - set(FEATURE_NAMES))
        if unknown:
            raise ValueError(f"not feature columns: {unknown}")
        cols = [c for c in FEATURE_NAMES if c in set(columns)]

    where = f"as_of_date = '{as_of.isoformat()}'"
    if where_sql:
        where += f" AND {where_sql}"
    if customer_ids is not None:
        quoted = ", ".join("'" + c.replace("'", "''") + "'" for c in customer_ids)
        where += f" AND customer_id IN ({quoted or 'NULL'})"
    # COPY: catalogue columns, a date object's ISO text and quoted-literal ids
    query = (f"SELECT customer_id, {', '.join(cols)} FROM {table} WHERE {where}"  # nosec B608
             + (" ORDER BY customer_id" if ordered else ""))
    for fmt in ("text", "csv"):
        buf = io.BytesIO()
        with raw_cursor(engine) as cur:
            cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT {fmt})", buf)
        data = buf.getvalue()  # the BytesIO's own bytes, not copied
        if fmt == "csv" or data.find(b"\\") < 0:
            return _feature_frame(data, cols, csv=fmt == "csv")
    raise AssertionError("unreachable")  # pragma: no cover


def _feature_frame(data: bytes, cols: list[str], *, csv: bool) -> pd.DataFrame:
    """COPY rows of ``customer_id`` + ``cols`` (CSV, or text without escapes) as the
    frame read_features returns."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if not data:
        return pd.DataFrame({c: pd.Series([], dtype="float64") for c in cols},
                            index=pd.Index([], name="customer_id", dtype="str"))
    names = ["customer_id", *cols]
    table = pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(column_names=names),
        parse_options=(pacsv.ParseOptions() if csv else
                       pacsv.ParseOptions(delimiter="\t", quote_char=False)),
        convert_options=pacsv.ConvertOptions(
            column_types={"customer_id": pa.string(), **{c: pa.float64() for c in cols}}))
    frame = table.to_pandas()
    frame["customer_id"] = frame["customer_id"].astype("str")
    return frame.set_index("customer_id")


def count_features(engine: Engine, as_of: dt.date) -> int:
    """Customers with features as of a date."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        return int(conn.execute(
            sa.text("SELECT count(*) FROM customer_features WHERE as_of_date = :d"), {"d": as_of}
        ).scalar_one())


def feature_dates(engine: Engine) -> list[dt.date]:
    """Every as-of date that has features."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT DISTINCT as_of_date FROM customer_features ORDER BY 1")
        ).scalars()
        return list(rows)


def replace_labels(
    engine: Engine,
    as_of: dt.date,
    strategy: str,
    labels: pd.DataFrame,
    produced_by: dict[str, object],
    run_id: str,
) -> int:
    """Replace the (date, strategy) labels in one transaction."""
    with raw_cursor(engine) as cur:
        return write_labels(cur, as_of, strategy, labels, produced_by, run_id)


def write_labels(
    cursor: object,
    as_of: dt.date,
    strategy: str,
    labels: pd.DataFrame,
    produced_by: dict[str, object],
    run_id: str,
    *,
    replace: bool = True,
) -> int:
    """Replace the (date, strategy) labels in the cursor's open transaction (or, with
    ``replace=False``, add these customers' to those already written in it)."""
    frame = labels.reset_index()[["customer_id", "is_high_risk", "window_start", "window_end"]]
    frame.insert(1, "as_of_date", as_of.isoformat())
    frame.insert(2, "label_strategy", strategy)
    frame["produced_by"] = json.dumps(produced_by, default=str)
    frame["run_id"] = run_id
    frame["is_high_risk"] = frame["is_high_risk"].map({True: "t", False: "f"})
    if replace:
        cursor.execute(  # type: ignore[attr-defined]
            "DELETE FROM customer_labels WHERE as_of_date = %s AND label_strategy = %s",
            (as_of, strategy),
        )
    _copy_in(
        cursor,
        "customer_labels",
        ["customer_id", "as_of_date", "label_strategy", "is_high_risk", "window_start",
         "window_end", "produced_by", "run_id"],
        frame,
    )
    return len(frame)


def read_labels(engine: Engine, as_of: dt.date, strategy: str) -> pd.Series:
    """Stored labels of a date and strategy: a boolean Series indexed by customer_id."""
    import pandas as pd

    frame = _copy_out(
        engine,
        # COPY: a date object's ISO text and the strategy name with any quote removed
        "SELECT customer_id, is_high_risk FROM customer_labels WHERE as_of_date = "  # nosec B608
        f"'{as_of.isoformat()}' AND label_strategy = '{strategy.replace(chr(39), '')}'",
    )
    if frame.empty:
        return pd.Series(dtype="bool", name="is_high_risk", index=pd.Index([], name="customer_id"))
    frame["customer_id"] = frame["customer_id"].astype("str")
    # COPY writes booleans as t/f, which pyarrow leaves as text.
    flags = frame["is_high_risk"].astype("str").str.lower().isin(["t", "true"])
    return pd.Series(flags.to_numpy(), index=pd.Index(frame["customer_id"], name="customer_id"),
                     name="is_high_risk")


def first_transaction_day(engine: Engine) -> dt.date | None:
    """The UTC day of the oldest loaded transaction (None when nothing is loaded)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        value: dt.date | None = conn.execute(
            sa.text(
                "SELECT (min(transaction_start_time) AT TIME ZONE 'UTC')::date"
                " FROM raw_transactions"
            )
        ).scalar_one()
    return value


def labelled_dates(engine: Engine, strategy: str) -> set[dt.date]:
    """The as-of dates that have labels of ``strategy``."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT DISTINCT as_of_date FROM customer_labels WHERE label_strategy = :s"),
            {"s": strategy},
        ).scalars()
        return set(rows)


#: customers are sampled for training in 1/SAMPLE_BUCKETS steps, by a stable hash of the id
SAMPLE_BUCKETS = 10_000


def _sample_predicate(share: float, column: str = "f.customer_id") -> str:
    """SQL condition keeping about ``share`` of the customers, the same ones on every date."""
    keep = max(1, min(SAMPLE_BUCKETS, round(float(share) * SAMPLE_BUCKETS)))
    return f"mod(abs(hashtext({column})::bigint), {SAMPLE_BUCKETS}) < {int(keep)}"


def last_purchase_ages(engine: Engine, as_of: dt.date, sample_share: float = 1.0) -> pd.Series:
    """Days from each customer's last customer-initiated purchase before ``as_of`` to
    ``as_of`` midnight (NaN: no purchase), for every customer with a transaction before it.

    Aggregated in PostgreSQL: one row per customer comes out, never the history
    (:func:`creditrisk.features.population.last_purchase_age` over the same rows gives
    the same numbers). ``sample_share`` as in :func:`load_transactions`.
    """
    from creditrisk.storage.aggregates import PURCHASE_SQL

    cut = f"'{as_of.isoformat()}T00:00:00Z'::timestamptz"
    sample = f" AND {_sample_predicate(sample_share, 'r.customer_id')}" if sample_share < 1.0 \
        else ""
    frame = _copy_out(
        # COPY: a date object's ISO form, constant SQL, the sample predicate from a number
        engine, f"SELECT r.customer_id, extract(epoch FROM {cut} - max(r.transaction_start_time)"  # nosec B608
                f" FILTER (WHERE {PURCHASE_SQL})) / 86400.0 AS age FROM raw_transactions r"
                f" WHERE r.transaction_start_time < {cut}{sample} GROUP BY r.customer_id")
    if frame.empty:
        import pandas as pd

        return pd.Series(dtype="float64", index=pd.Index([], name="customer_id", dtype="str"))
    ages = frame.set_index(frame["customer_id"].astype("str"))["age"].astype("float64")
    return ages.rename_axis("customer_id").sort_index()


def count_training_rows(engine: Engine, dates: Sequence[dt.date], strategy: str) -> int:
    """How many rows :func:`read_training_rows` would return unsampled."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        return int(conn.execute(sa.text(
            "SELECT count(*) FROM customer_features f JOIN customer_labels l"
            " USING (customer_id, as_of_date)"
            " WHERE f.as_of_date = ANY(:d) AND l.label_strategy = :s"),
            {"d": list(dates), "s": strategy}).scalar_one())


def read_training_rows(engine: Engine, dates: Sequence[dt.date], strategy: str,
                       sample_share: float = 1.0) -> pd.DataFrame:
    """customer_features joined to customer_labels for ``dates`` and ``strategy``.

    With ``sample_share < 1`` only that share of the customers is read (whole customers,
    the same ones on every date, by a stable hash of the id), so the rows held in memory
    are bounded however many customers the warehouse has.
    """

    days = ", ".join(f"'{d.isoformat()}'" for d in dates) or "NULL"
    cols = ", ".join(f"f.{c}" for c in FEATURE_NAMES)
    sample = f" AND {_sample_predicate(sample_share)}" if sample_share < 1.0 else ""
    frame = _copy_out(
        engine,
        # COPY: constant columns, dates from date objects, the strategy without quotes,
        # the sample predicate from a number
        f"SELECT f.customer_id, f.as_of_date, {cols}, l.is_high_risk FROM customer_features f"  # nosec B608
        " JOIN customer_labels l USING (customer_id, as_of_date)"
        f" WHERE f.as_of_date IN ({days}) AND l.label_strategy = "
        f"'{strategy.replace(chr(39), '')}'{sample} ORDER BY f.as_of_date, f.customer_id",
    )
    if frame.empty:
        return frame
    frame["customer_id"] = frame["customer_id"].astype("str")
    frame["as_of_date"] = pd_dates(frame["as_of_date"])
    frame["is_high_risk"] = frame["is_high_risk"].astype("str").str.lower().isin(["t", "true"])
    return frame


def pd_dates(values: pd.Series) -> pd.Series:
    """A column of ISO dates (as parsed by pyarrow) as ``datetime.date`` objects."""
    import pandas as pd

    return pd.to_datetime(values).dt.date


def label_window_starts(
    engine: Engine, dates: Sequence[dt.date], strategy: str
) -> dict[dt.date, dt.date | None]:
    """Per as-of date, the earliest outcome-window start of its labels (None if any lacks one)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT as_of_date, CASE WHEN bool_or(window_start IS NULL) THEN NULL"
                " ELSE min(window_start) END FROM customer_labels"
                " WHERE label_strategy = :s AND as_of_date = ANY(:d) GROUP BY as_of_date"
            ),
            {"s": strategy, "d": list(dates)},
        ).all()
    return {r[0]: r[1] for r in rows}


def stale_feature_dates(engine: Engine, dates: Sequence[dt.date]) -> set[dt.date]:
    """Dates whose features were computed before some transaction they cover was loaded.

    A history backfill after a date's features were built makes them stale: they missed
    rows that are before their cut-off. Rebuilding them is idempotent.
    """
    import sqlalchemy as sa

    stale = set()
    with engine.connect() as conn:
        for day in dates:
            row = conn.execute(
                sa.text(
                    "SELECT (SELECT min(computed_at) FROM customer_features"
                    "        WHERE as_of_date = :d),"
                    "       (SELECT max(ingested_at) FROM raw_transactions"
                    "        WHERE transaction_start_time < CAST(:d AS date)::timestamp"
                    "        AT TIME ZONE 'UTC')"
                ),
                {"d": day},
            ).one()
            if row[0] is not None and row[1] is not None and row[1] > row[0]:
                stale.add(day)
    return stale
