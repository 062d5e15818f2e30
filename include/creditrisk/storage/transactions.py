"""All SQL on raw_transactions, quarantined_transactions and ingestion_runs.

A file is loaded in one transaction, insert first: its good rows are COPY'd straight
into ``raw_transactions`` (:func:`copy_new_rows`, in a savepoint). Only when one of
them is already loaded (the COPY hits the primary key, and the savepoint undoes it) do
they go through a temporary staging table, where the rows that conflict are compared
with what is loaded and only new transaction ids are inserted. A transaction id that
is already loaded with different content is a *changed duplicate*: it is quarantined,
never overwritten.

An ingestion run's ``ingestion_runs`` row says ``running`` while the run is in flight;
the run holds a session-level advisory lock keyed on (run id, file) for as long, so
the lock is free exactly when the run is gone (finished, or its process or connection
died). The next run of the same file closes a ``running`` row whose lock is free as
``failed`` with a message saying why (see :func:`close_abandoned_runs`).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from creditrisk.errors import ServiceUnavailableError
from creditrisk.schema import WAREHOUSE_COLUMNS

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_STAGE = "stage_raw_transactions"
_CASTS = {
    "country_code": "smallint",
    "amount": "numeric(18,2)",
    "value": "numeric(18,2)",
    "transaction_start_time": "timestamptz",
    "pricing_strategy": "smallint",
    "fraud_result": "smallint",
}
CHANGED_DUPLICATE = "changed_duplicate: transaction_id already loaded with different content"


def _cast(col: str, alias: str = "s") -> str:
    cast = _CASTS.get(col)
    return f"{alias}.{col}::{cast}" if cast else f"{alias}.{col}"


@dataclass(frozen=True)
class LoadCounts:
    """What the staging comparison found and what was inserted."""

    loaded: int
    unchanged: int
    changed_duplicate_lines: list[int]


def copy_new_rows(cursor: Any, csv_text: str) -> int | None:
    """COPY rows straight into ``raw_transactions``; None if one's id is already loaded.

    Args:
        cursor: A cursor in the file's transaction.
        csv_text: CSV rows: the 16 Xente fields as the file has them (empty is null),
            then ``source_file`` and ``ingest_run_id``.

    Returns:
        How many rows were inserted, or None when a row's transaction id is already
        loaded: the COPY is then undone (rolled back to its savepoint), nothing of it stays.
    """
    import psycopg2.errors

    if not csv_text:
        return 0
    cols = ", ".join(WAREHOUSE_COLUMNS)
    cursor.execute("SAVEPOINT copy_new_rows")
    try:
        cursor.copy_expert(
            f"COPY raw_transactions ({cols}, source_file, ingest_run_id) FROM STDIN"
            " WITH (FORMAT csv)", io.StringIO(csv_text))
    except psycopg2.errors.UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT copy_new_rows")
        return None
    inserted = int(cursor.rowcount)
    cursor.execute("RELEASE SAVEPOINT copy_new_rows")
    return inserted


def stage_rows(cursor: Any, csv_text: str) -> None:
    """Create the staging table and COPY ``line_number`` + the 16 Xente fields into it."""
    cols = ", ".join(f"{c} text" for c in WAREHOUSE_COLUMNS)
    cursor.execute(f"CREATE TEMP TABLE {_STAGE} (line_number integer, {cols}) ON COMMIT DROP")
    cursor.copy_expert(f"COPY {_STAGE} FROM STDIN WITH (FORMAT csv)", io.StringIO(csv_text))


def find_changed_duplicates(cursor: Any) -> tuple[list[int], int]:
    """Staged lines whose transaction id is loaded with other content, and the unchanged count."""
    staged = ", ".join(_cast(c) for c in WAREHOUSE_COLUMNS[1:])
    loaded = ", ".join(f"r.{c}" for c in WAREHOUSE_COLUMNS[1:])
    # column names are the schema's constants; values never enter the text
    query = (f"SELECT s.line_number, ({loaded}) IS DISTINCT FROM ({staged}) AS changed"  # nosec B608
             f" FROM {_STAGE} s JOIN raw_transactions r USING (transaction_id)")
    cursor.execute(query)
    changed, unchanged = [], 0
    for line, is_changed in cursor.fetchall():
        if is_changed:
            changed.append(int(line))
        else:
            unchanged += 1
    return sorted(changed), unchanged


def insert_new_rows(cursor: Any, source_file: str, run_id: str) -> int:
    """Insert the staged rows whose transaction id is not loaded yet; return how many.

    ``ON CONFLICT DO NOTHING`` alone skips the ids already loaded: a ``NOT EXISTS``
    anti-join on top would probe the primary key a second time for every new row.
    """
    cols = ", ".join(WAREHOUSE_COLUMNS)
    values = ", ".join(_cast(c) for c in WAREHOUSE_COLUMNS)
    # column names are the schema's constants; values are bound parameters
    query = (f"INSERT INTO raw_transactions ({cols}, source_file, ingest_run_id)"  # nosec B608
             f" SELECT {values}, %(source_file)s, %(run_id)s FROM {_STAGE} s"
             " ON CONFLICT (transaction_id) DO NOTHING")
    cursor.execute(query, {"source_file": source_file, "run_id": run_id})
    return int(cursor.rowcount)


@dataclass(frozen=True)
class QuarantineRow:
    """One rejected row, exactly as received, with every reason."""

    line_number: int
    raw_row: dict[str, str | None]
    reasons: Sequence[str]


def replace_quarantine(
    cursor: Any, source_file: str, run_id: str, rows: Iterable[QuarantineRow]
) -> int:
    """Replace the file's quarantine with ``rows`` (a re-run leaves one run's worth)."""
    cursor.execute(
        "DELETE FROM quarantined_transactions WHERE source_file = %s", (source_file,)
    )
    buf = io.StringIO()
    writer = csv.writer(buf)
    n = 0
    for row in rows:
        writer.writerow(
            [
                row.raw_row.get("TransactionId") or None,
                json.dumps(row.raw_row, ensure_ascii=False),
                source_file,
                row.line_number,
                json.dumps(list(row.reasons)),
                run_id,
            ]
        )
        n += 1
    if n:
        buf.seek(0)
        cursor.copy_expert(
            "COPY quarantined_transactions (transaction_id, raw_row, source_file, line_number,"
            " reasons, run_id) FROM STDIN WITH (FORMAT csv)",
            buf,
        )
    return n


RUNNING = "running"


class RunLockBusy(ServiceUnavailableError):
    """Another attempt of the same run still holds the run's liveness lock."""


_RUN_LOCK = "hashtextextended('ingestion_run:' || %s || '/' || %s, 0)"


def hold_run_lock(conn: Connection, run_id: str, source_file: str) -> None:
    """Take the run's liveness lock on the connection's session (held until it disconnects).

    Blocks while another attempt of the same run id still holds it (a retry waits for
    a zombie attempt rather than run alongside it), for at most the connection's
    ``lock_timeout`` (which bounds advisory locks too).

    Raises:
        RunLockBusy: the other attempt still held the lock when ``lock_timeout`` ran out.
    """
    import psycopg2.errors
    from sqlalchemy.exc import OperationalError

    try:
        conn.exec_driver_sql(f"SELECT pg_advisory_lock({_RUN_LOCK})", (run_id, source_file))
    except OperationalError as exc:
        if not isinstance(exc.orig, psycopg2.errors.LockNotAvailable):
            raise
        waited = "lock_timeout"
        with contextlib.suppress(Exception):  # autocommit: the session still answers
            waited = f"lock_timeout {conn.exec_driver_sql('SHOW lock_timeout').scalar()}"
        raise RunLockBusy(
            f"{source_file}: another attempt of run {run_id} still holds the run's lock after "
            f"waiting {waited}; it is still loading the file or its connection "
            "is not yet dropped: nothing was loaded by this attempt, retry it later"
        ) from exc


def close_abandoned_runs(cursor: Any, source_file: str, run_id: str) -> list[str]:
    """Mark the file's ``running`` rows of dead runs ``failed``; return their run ids.

    A row is dead when its run's liveness lock is free (the run's session is gone);
    the rows of runs still in flight are left alone. Call it in the transaction that
    records ``run_id``'s own outcome.
    """
    cursor.execute(
        "SELECT run_id FROM ingestion_runs WHERE source_file = %s AND status = %s"
        " AND run_id <> %s ORDER BY started_at",
        (source_file, RUNNING, run_id),
    )
    closed = []
    for (other,) in cursor.fetchall():
        cursor.execute(f"SELECT pg_try_advisory_xact_lock({_RUN_LOCK})", (other, source_file))
        if not cursor.fetchone()[0]:
            continue  # still in flight
        cursor.execute(
            """
            UPDATE ingestion_runs SET status = 'failed', finished_at = now(), message =
                'did not finish: its process or database connection was lost before it '
                'recorded an outcome; nothing of it was loaded (a file loads in one '
                'transaction). Closed by run ' || %s
            WHERE run_id = %s AND source_file = %s AND status = %s
            """,
            (run_id, other, source_file, RUNNING),
        )
        closed.append(str(other))
    return closed


@dataclass(frozen=True)
class RunRecord:
    """One ``ingestion_runs`` row."""

    run_id: str
    source_file: str
    logical_date: dt.date
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    rows_unchanged: int
    gx_success: bool | None
    status: str
    message: str | None
    started_at: dt.datetime
    finished_at: dt.datetime
    timings: dict[str, float]


def record_run(cursor: Any, rec: RunRecord) -> None:
    """Upsert the file's ``ingestion_runs`` row (a retry of the same run replaces it).

    A ``running`` row is written first, in its own transaction, and replaced by the
    outcome; ``finished_at`` (not nullable) equals ``started_at`` while running.
    """
    params = asdict(rec)
    params["timings"] = json.dumps(rec.timings)
    cursor.execute(
        """
        INSERT INTO ingestion_runs (run_id, source_file, logical_date, rows_read, rows_loaded,
            rows_quarantined, rows_unchanged, gx_success, status, message, started_at,
            finished_at, timings)
        VALUES (%(run_id)s, %(source_file)s, %(logical_date)s, %(rows_read)s, %(rows_loaded)s,
            %(rows_quarantined)s, %(rows_unchanged)s, %(gx_success)s, %(status)s, %(message)s,
            %(started_at)s, %(finished_at)s, %(timings)s)
        ON CONFLICT (run_id, source_file) DO UPDATE SET
            logical_date = EXCLUDED.logical_date, rows_read = EXCLUDED.rows_read,
            rows_loaded = EXCLUDED.rows_loaded, rows_quarantined = EXCLUDED.rows_quarantined,
            rows_unchanged = EXCLUDED.rows_unchanged, gx_success = EXCLUDED.gx_success,
            status = EXCLUDED.status, message = EXCLUDED.message,
            started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
            timings = EXCLUDED.timings
        """,
        params,
    )
