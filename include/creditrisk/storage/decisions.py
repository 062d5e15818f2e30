"""All SQL on decision_log (the audit log of the real-time API's decisions)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from creditrisk.storage.db import raw_cursor

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: Column order of a row given to :func:`insert_decisions`.
COLUMNS: tuple[str, ...] = (
    "request_id", "client_request_id", "item", "decided_at", "route", "customer_id", "model_name",
    "model_version", "feature_source", "feature_as_of_date", "amount", "product_category",
    "thin_file", "probability_of_default", "credit_score", "risk_band", "decision",
    "recommended_limit", "recommended_term_days", "reason_codes", "shadow",
)
# decided_at arrives as epoch seconds and reason_codes as JSON text: both are converted
# by PostgreSQL, so the API's writer thread does no per-row datetime or JSON work twice.
_STAGE = "decision_log_incoming"
_STAGE_TYPES = {"item": "integer", "decided_at": "double precision", "amount": "double precision",
                "thin_file": "boolean", "probability_of_default": "double precision",
                "credit_score": "integer", "recommended_limit": "double precision",
                "recommended_term_days": "integer", "shadow": "boolean"}
# one per connection (the writer keeps its one), emptied by every commit: no catalog
# churn from a table created and dropped five times a second
_CREATE_STAGE = (f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} ("
                 + ", ".join(f"{c} {_STAGE_TYPES.get(c, 'text')}" for c in COLUMNS)
                 + ") ON COMMIT DELETE ROWS")
_COPY = f"COPY {_STAGE} ({', '.join(COLUMNS)}) FROM STDIN"
# column names are this module's constants; the values arrive by COPY
_INSERT = (f"INSERT INTO decision_log ({', '.join(COLUMNS)}) SELECT "  # nosec B608
           + ", ".join("to_timestamp(decided_at)" if c == "decided_at"
                       else "reason_codes::jsonb" if c == "reason_codes"
                       else "feature_as_of_date::date" if c == "feature_as_of_date" else c
                       for c in COLUMNS)
           + f" FROM {_STAGE} ON CONFLICT DO NOTHING")  # no conflict target: no SELECT needed
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any) -> str:
    """One value in COPY's text format (floats by ``repr``: they round-trip exactly;
    ``float.__repr__`` so that a numpy float reads ``0.5``, not ``np.float64(0.5)``)."""
    kind = value.__class__
    if kind is str:  # most need no escaping: two C-speed checks instead of a translate
        return (value if "\\" not in value and value.isprintable()
                else value.translate(_ESCAPES))
    if value is None:
        return "\\N"
    if kind is bool:
        return "t" if value else "f"
    if isinstance(value, float):
        return float.__repr__(value)
    if isinstance(value, str):  # a str subclass
        return _copy_text(str(value))
    return str(value)


def insert_decisions(engine: Engine, rows: Sequence[Sequence[Any]]) -> int:
    """Append decisions in one transaction; return how many rows were new.

    Args:
        engine: Warehouse engine.
        rows: Tuples in :data:`COLUMNS` order, ``decided_at`` as epoch seconds,
            ``feature_as_of_date`` as an ISO date string or None, ``reason_codes`` as
            JSON text.

    ``request_id`` is the server's own id of the HTTP request (a uuid4, never the
    client's: that one is ``client_request_id``), so ``(request_id, item)`` is unique
    per decision. A row whose key is already logged can only be the same decision sent
    again (a retried write whose first commit did succeed): it is skipped, not an error.

    The rows are COPYed into a temporary table of the connection, then inserted from it
    with ``ON CONFLICT DO NOTHING``. This runs in the API's process, beside the event
    loop: formatting a row for COPY costs ~10 µs of the writer's CPU, where
    ``execute_values`` (a ``mogrify`` per row) cost 20–30 µs and, holding the GIL,
    slowed the request path as well. Needs only the INSERT privilege on decision_log (the API's
    ``creditrisk_api`` role) and the default TEMPORARY privilege on the database.
    """
    import io

    if not rows:
        return 0
    text = io.StringIO("".join(["\t".join([_copy_text(v) for v in row]) + "\n"
                                for row in rows]))
    with raw_cursor(engine) as cur:
        # Don't wait for the WAL flush: the writer commits every fraction of a second,
        # and each fsync stalled the API's own log writes on the same disk (measured:
        # p50 +0.4 ms). A PostgreSQL crash can lose at most wal_writer_delay of logged
        # decisions — the same order as the API's in-memory queue already risks.
        cur.execute("SET LOCAL synchronous_commit = off")
        cur.execute(_CREATE_STAGE)
        cur.copy_expert(_COPY, text)
        cur.execute(_INSERT)
        return max(cur.rowcount, 0)


def decisions_for_request(engine: Engine, request_id: str) -> list[dict[str, Any]]:
    """Every logged decision under one request id: the server's or the client's.

    A client that reused its X-Request-ID gets every decision made under it, oldest first.
    """
    import sqlalchemy as sa

    with engine.connect() as conn:
        result = conn.execute(
            sa.text(f"SELECT {', '.join(COLUMNS)} FROM decision_log"  # nosec B608 - constants
                    " WHERE request_id = :r OR client_request_id = :r"
                    " ORDER BY decided_at, request_id, item"), {"r": request_id})
        out = [dict(r._mapping) for r in result]
    for row in out:
        if isinstance(row["decided_at"], dt.datetime):
            row["decided_at"] = row["decided_at"].astimezone(dt.UTC)
    return out
