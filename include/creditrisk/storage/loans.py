"""All SQL on loans, repayments, quarantined_outcomes, loan_performance and outcome_backtest.

A loans or repayments landing file is loaded in one transaction: its rows (those the
Great Expectations suite passed) are COPY'd into a temporary staging table; the checks
that need the warehouse run there (a repayment of an unknown loan, paid before the loan
was issued, an installment beyond the loan's schedule or due on another day; a loan id
or an installment already loaded with other content); only new keys are inserted. A
re-run leaves exactly what one clean run leaves: unchanged rows are skipped, changed
ones quarantined, never overwritten.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from creditrisk.schema import OUTCOME_KINDS

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

_KEYS = {"loans": ("loan_id",), "repayments": ("loan_id", "installment")}
_CASTS = {
    "issued_at": "timestamptz", "amount": "numeric(18,2)", "term_days": "smallint",
    "installments": "smallint", "pd_at_issue": "double precision", "exploration": "boolean",
    "installment": "smallint", "due_date": "date", "paid_at": "timestamptz",
}
#: the checks that need the warehouse, as (reason, condition on staged row s)
REPAYMENT_CHECKS: tuple[tuple[str, str], ...] = (
    ("unknown_loan: loan_id is not in loans", "l.loan_id IS NULL"),
    ("paid_before_issue: paid_at is before the loan's issued_at",
     "s.paid_at::timestamptz < l.issued_at"),
    ("installment_beyond_schedule: the loan has fewer installments",
     "s.installment::smallint > l.installments"),
    ("due_date_mismatch: not the loan's schedule",
     "s.installment::smallint <= l.installments AND s.due_date::date <> i.due_date"),
)
CHANGED_DUPLICATE = {
    "loans": "changed_duplicate: loan_id already loaded with different content",
    "repayments": "duplicate_installment: (loan_id, installment) already loaded with "
                  "different content",
}


def _stage(kind: str) -> str:
    if kind not in OUTCOME_KINDS:
        raise ValueError(f"unknown outcome kind {kind!r}")
    return f"stage_{kind}"


def _cast(col: str) -> str:
    cast = _CASTS.get(col)
    return f"s.{col}::{cast}" if cast else f"s.{col}"


def stage_rows(cursor: Any, kind: str, csv_text: str) -> None:
    """Create the kind's staging table and COPY ``line_number`` + the file's fields into it."""
    cols = ", ".join(f"{c} text" for c in OUTCOME_KINDS[kind])
    cursor.execute(f"CREATE TEMP TABLE {_stage(kind)} (line_number integer, {cols})"
                   " ON COMMIT DROP")
    cursor.copy_expert(f"COPY {_stage(kind)} FROM STDIN WITH (FORMAT csv)",  # nosec B608 - constant
                       io.StringIO(csv_text))


def repayment_problems(cursor: Any) -> dict[int, list[str]]:
    """Staged repayment lines that fail a warehouse check, with every reason."""
    problems: dict[int, list[str]] = {}
    for reason, condition in REPAYMENT_CHECKS:
        # constant conditions; no value enters the text
        cursor.execute(
            "SELECT s.line_number FROM stage_repayments s"  # nosec B608 - constant checks
            " LEFT JOIN loans l ON l.loan_id = s.loan_id"
            " LEFT JOIN loan_installments i ON i.loan_id = s.loan_id"
            " AND i.installment = s.installment::smallint"
            f" WHERE {condition} ORDER BY 1")
        for (line,) in cursor.fetchall():
            problems.setdefault(int(line), []).append(reason)
    return problems


def changed_duplicates(cursor: Any, kind: str) -> tuple[list[int], int]:
    """Staged lines whose key is loaded with other content, and the unchanged count."""
    columns = OUTCOME_KINDS[kind]
    table = kind
    staged = ", ".join(_cast(c) for c in columns)
    loaded = ", ".join(f"t.{c}" for c in columns)
    on = " AND ".join(f"t.{k} = {_cast(k)}" for k in _KEYS[kind])
    cursor.execute(
        f"SELECT s.line_number, ({loaded}) IS DISTINCT FROM ({staged})"  # nosec B608 - constant names
        f" FROM {_stage(kind)} s JOIN {table} t ON {on}")
    changed, unchanged = [], 0
    for line, is_changed in cursor.fetchall():
        if is_changed:
            changed.append(int(line))
        else:
            unchanged += 1
    return sorted(changed), unchanged


def insert_new_rows(cursor: Any, kind: str, source_file: str, run_id: str,
                    skip_lines: Iterable[int]) -> int:
    """Insert the staged rows not in ``skip_lines`` whose key is new; return how many."""
    columns = OUTCOME_KINDS[kind]
    cols = ", ".join(columns)
    values = ", ".join(_cast(c) for c in columns)
    keys = ", ".join(_KEYS[kind])
    cursor.execute(  # values are bound parameters
        f"INSERT INTO {kind} ({cols}, source_file, ingest_run_id)"  # nosec B608 - constant names
        f" SELECT {values}, %(source_file)s, %(run_id)s FROM {_stage(kind)} s"
        f" WHERE NOT (s.line_number = ANY(%(skip)s)) ORDER BY s.line_number"
        f" ON CONFLICT ({keys}) DO NOTHING",
        {"source_file": source_file, "run_id": run_id, "skip": sorted(skip_lines)})
    return int(cursor.rowcount)


def replace_quarantine(cursor: Any, kind: str, source_file: str, run_id: str,
                       rows: Iterable[tuple[int, dict[str, str | None], list[str]]]) -> int:
    """Replace the file's quarantine with ``rows`` (line, raw row, reasons)."""
    cursor.execute("DELETE FROM quarantined_outcomes WHERE source_file = %s", (source_file,))
    buf = io.StringIO()
    writer = csv.writer(buf)
    n = 0
    for line, raw_row, reasons in rows:
        writer.writerow([kind, raw_row.get("loan_id") or None,
                         json.dumps(raw_row, ensure_ascii=False), source_file, line,
                         json.dumps(list(reasons)), run_id])
        n += 1
    if n:
        buf.seek(0)
        cursor.copy_expert(
            "COPY quarantined_outcomes (kind, loan_id, raw_row, source_file, line_number,"
            " reasons, run_id) FROM STDIN WITH (FORMAT csv)", buf)
    return n


PERFORMANCE_COLUMNS = (
    "loan_id", "customer_id", "issue_date", "amount", "term_days", "maturity_date",
    "pd_at_issue", "risk_band", "decision", "exploration", "model_version",
    "days_past_due", "bucket", "matured", "worst_dpd", "bad", "bad_date",
)


def read_performance(engine: Engine, as_of: dt.date, *, grace_days: int = 30,
                     charge_off_days: int = 90, bad_dpd: int = 30) -> pd.DataFrame:
    """``loan_performance(as_of, ...)`` as a frame, one row per loan issued before ``as_of``."""
    import pandas as pd
    import sqlalchemy as sa

    cols = ", ".join(PERFORMANCE_COLUMNS)
    with engine.connect() as conn:
        result = conn.execute(sa.text(
            f"SELECT {cols} FROM loan_performance(:d, :g, :c, :b)"  # nosec B608 - constant
            " ORDER BY issue_date, loan_id"),
            {"d": as_of, "g": grace_days, "c": charge_off_days, "b": bad_dpd})
        frame = pd.DataFrame(result.all(), columns=list(PERFORMANCE_COLUMNS))
    if not frame.empty:
        frame["amount"] = frame["amount"].astype(float)
        frame["pd_at_issue"] = pd.to_numeric(frame["pd_at_issue"], errors="coerce")
    return frame


VINTAGE_COLUMNS = ("issue_month", "months_on_book", "loans", "bad", "cumulative_bad_rate")


def read_vintages(engine: Engine, as_of: dt.date, *, grace_days: int = 30,
                  bad_dpd: int = 30) -> pd.DataFrame:
    """``loan_vintages(as_of, ...)`` as a frame: issue month, month on book, loans, bad and
    the cumulative bad rate, in issue month and month on book order."""
    import pandas as pd
    import sqlalchemy as sa

    cols = ", ".join(VINTAGE_COLUMNS)
    with engine.connect() as conn:
        result = conn.execute(sa.text(
            f"SELECT {cols} FROM loan_vintages(:d, :g, :b)"  # nosec B608 - constant
            " ORDER BY issue_month, months_on_book"),
            {"d": as_of, "g": grace_days, "b": bad_dpd})
        return pd.DataFrame(result.all(), columns=list(VINTAGE_COLUMNS))


def loan_count(engine: Engine) -> int:
    """How many loans are loaded."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM loans")).scalar_one())


BACKTEST_COLUMNS = ("model_version", "risk_band", "loans", "bad", "realized_bad_rate", "mean_pd",
                    "interval_lo", "interval_hi", "within_interval", "exploration_loans")


def replace_backtest(engine: Engine, as_of: dt.date, table: pd.DataFrame, run_id: str) -> int:
    """Replace the date's ``outcome_backtest`` rows with ``table`` (one row per band)."""
    import sqlalchemy as sa

    records = [
        {"as_of_date": as_of, "run_id": run_id,
         **{c: (None if _missing(row[c]) else _plain(row[c])) for c in BACKTEST_COLUMNS}}
        for row in table.to_dict(orient="records")
    ]
    cols = ", ".join(("as_of_date", "run_id", *BACKTEST_COLUMNS))
    params = ", ".join(f":{c}" for c in ("as_of_date", "run_id", *BACKTEST_COLUMNS))
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM outcome_backtest WHERE as_of_date = :d"), {"d": as_of})
        if records:
            conn.execute(sa.text(
                f"INSERT INTO outcome_backtest ({cols}) VALUES ({params})"),  # nosec B608 - constant
                records)
    return len(records)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones, for the driver."""
    return value.item() if hasattr(value, "item") else value


def decisions_as_of(engine: Engine, day: dt.date) -> pd.DataFrame:
    """Each customer's newest ``risk_scores`` row on or before ``day``, indexed by customer."""
    import pandas as pd
    import sqlalchemy as sa

    cols = ["customer_id", "score_date", "probability_of_default", "risk_band", "decision",
            "recommended_limit", "recommended_term_days", "model_name", "model_version"]
    with engine.connect() as conn:
        result = conn.execute(sa.text(
            "SELECT DISTINCT ON (customer_id) " + ", ".join(cols) +  # nosec B608 - constant
            " FROM risk_scores WHERE score_date <= :d ORDER BY customer_id, score_date DESC"),
            {"d": day})
        frame = pd.DataFrame(result.all(), columns=cols)
    frame["probability_of_default"] = pd.to_numeric(frame["probability_of_default"])
    frame["recommended_limit"] = pd.to_numeric(frame["recommended_limit"]).fillna(0.0)
    return frame.set_index("customer_id")


SWAP_OUTCOME_COLUMNS = (
    "score_date", "model_name", "champion_version", "challenger_version", "from_band",
    "from_decision", "to_band", "to_decision", "customers", "loans", "matured", "bad",
    "realized_bad_rate",
)


def read_swap_set_outcomes(engine: Engine, as_of: dt.date, *, grace_days: int = 30,
                           bad_dpd: int = 30) -> pd.DataFrame:
    """``swap_set_outcomes(as_of, ...)`` (migration 0015) as a frame: per nightly swap-set
    cell, the loans its scores decided, matured and bad, in night and cell order."""
    import pandas as pd
    import sqlalchemy as sa

    cols = ", ".join(SWAP_OUTCOME_COLUMNS)
    with engine.connect() as conn:
        result = conn.execute(sa.text(
            f"SELECT {cols} FROM swap_set_outcomes(:d, :g, :b)"  # nosec B608 - constant
            " ORDER BY score_date, challenger_version, from_band, from_decision, to_band,"
            " to_decision"), {"d": as_of, "g": grace_days, "b": bad_dpd})
        return pd.DataFrame(result.all(), columns=list(SWAP_OUTCOME_COLUMNS))
