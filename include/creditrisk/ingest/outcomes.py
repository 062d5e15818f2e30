"""Validate and load the outcome loop's landing files: ``loans_`` and ``repayments_YYYY-MM-DD.csv``.

The same gate as the transaction files (:mod:`creditrisk.ingest.load`), reused where it
fits: the strict reader (a broken file fails whole, with its line), one
``ingestion_runs`` row per file that reads ``running`` until the file's outcome is
recorded in the load's own transaction (the liveness lock and crash handling of
``load.py``), the per-file quarantine threshold with :class:`QuarantineThresholdError`
(the DAG turns it into one quarantine alert), and an idempotent load.

Each file is checked by its versioned suite (``great_expectations/expectations/loans.json``
or ``repayments.json``, Great Expectations 1.x, in memory, failing rows listed by line),
then, in the file's transaction, by the checks only the warehouse can make
(:data:`creditrisk.storage.loans.REPAYMENT_CHECKS`: an unknown loan id, a payment before
issue, an installment beyond the schedule or due on another day; a key already loaded
with other content). Within a day the loans file loads before the repayments file, so a
loan repaid on its issue day is known.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from creditrisk.errors import InputError
from creditrisk.ingest.load import (
    DEFAULT_QUARANTINE_THRESHOLD,
    IngestResult,
    QuarantineThresholdError,
    ValidationFailedError,
    _Liveness,
    _over,
    _RunBook,
    landing_folder_problem,
)
from creditrisk.ingest.read import read_landing_file
from creditrisk.ingest.validate import _definitions, _reason, _validator
from creditrisk.schema import OUTCOME_KINDS, outcome_file_name
from creditrisk.storage import loans as sql
from creditrisk.storage.db import check_connection, make_engine, raw_cursor

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)
LINE_COLUMN = "line_number"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _epoch(values: pd.Series, fmt: str) -> pd.Series:
    import pandas as pd

    parsed = pd.to_datetime(values, format=fmt, errors="coerce", utc=True)
    return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()


def _number(values: pd.Series, *, integer: bool = False) -> pd.Series:
    """Numeric values; a given value that does not parse (or is not whole) becomes -1,
    so that the suite's range check fails it rather than skipping it as missing."""
    import pandas as pd

    parsed = pd.to_numeric(values, errors="coerce")
    if integer:
        parsed = parsed.where(parsed == parsed.round())
    return parsed.where(parsed.notna() | values.isna(), -1.0)


def derived(kind: str, frame: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """The typed and per-file columns the kind's suite checks (``_amount``, ``_day_second``...)."""
    day_start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()
    if kind == "loans":
        issued = _epoch(frame["issued_at"], _TIME_FORMAT)
        term = _number(frame["term_days"], integer=True)
        installments = _number(frame["installments"], integer=True)
        unexplained = (frame["exploration"] != "true") & frame["decision"].isin(
            ["REVIEW", "DECLINE"])
        return frame.assign(
            _amount=_number(frame["amount"]), _term_days=term, _installments=installments,
            _pd=_number(frame["pd_at_issue"]), _issued_epoch=issued,
            _day_second=issued - day_start, _file_loan_id=frame["loan_id"],
            _installments_over_term=(installments - term).fillna(0.0),
            _unexplained_decision=unexplained.astype(int),
        )
    paid = _epoch(frame["paid_at"], _TIME_FORMAT)
    return frame.assign(
        _amount=_number(frame["amount"]), _installment=_number(frame["installment"], integer=True),
        _due_epoch=_epoch(frame["due_date"], "%Y-%m-%d"), _paid_epoch=paid,
        _day_second=paid - day_start,
        _file_installment=frame["loan_id"].astype("str") + "#" + frame["installment"].astype("str"),
    )


#: suite name -> suite, loaded once per process
_SUITES: dict[str, Any] = {}


def validate(kind: str, frame: pd.DataFrame, day: dt.date) -> tuple[dict[int, list[str]],
                                                                      list[str]]:
    """The kind's suite on one file: per-line reasons and table-level failures."""
    context, validation, _ = _definitions()
    suite = _SUITES.get(kind)
    if suite is None:
        suite = _SUITES[kind] = context.suites.get(kind)
    if frame.empty:
        return {}, []
    result = _validator(validation, derived(kind, frame, day), {
        "result_format": "COMPLETE", "unexpected_index_column_names": [LINE_COLUMN],
        "return_unexpected_index_query": False,
    }).validate_expectation_suite(suite)
    rows: dict[int, list[str]] = {}
    table: list[str] = []
    for res in result.results:
        if res.success:
            continue
        index_list = (res.result or {}).get("unexpected_index_list")
        if res.exception_info and res.exception_info.get("raised_exception"):
            table.append(f"{_reason(res)}: {res.exception_info.get('exception_message')}")
        elif not index_list:
            table.append(_reason(res))
        else:
            for item in index_list:
                rows.setdefault(int(item[LINE_COLUMN]), []).append(_reason(res))
    return rows, table


def ingest_outcome_file(kind: str, path: Path, day: dt.date, *, engine: Engine, run_id: str,
                        live: _Liveness, threshold: float = DEFAULT_QUARANTINE_THRESHOLD,
                        ) -> IngestResult:
    """Read, validate and load one loans or repayments file (see the module).

    Raises:
        InputError: missing or broken file (nothing loaded; the failure is recorded).
        ValidationFailedError: the file failed a table-level expectation.
        QuarantineThresholdError: too many bad rows (they are quarantined, nothing else).
    """
    result = IngestResult(source_file=path.name, logical_date=day.isoformat(), run_id=run_id)
    book = _RunBook(engine, result, live)
    try:
        book.open()
        t0 = time.perf_counter()
        frame, lines = read_landing_file(path, OUTCOME_KINDS[kind])
        result.rows_read = len(frame)
        reasons, table = validate(kind, frame, day)
        result.gx_success = not reasons and not table
        result.timings["validate_s"] = round(time.perf_counter() - t0, 4)
        if table:
            book.fail(f"{path}: the file failed validation: {'; '.join(table)}")
            raise ValidationFailedError(result.message)
        _load(kind, path, lines, reasons, book, threshold=threshold)
    except Exception as exc:
        raise book.guard(path, exc) from exc
    log.info("%s: read %d, loaded %d, unchanged %d, quarantined %d (status %s)", path.name,
             result.rows_read, result.rows_loaded, result.rows_unchanged,
             result.rows_quarantined, result.status)
    if result.status != "succeeded":
        raise QuarantineThresholdError(result.message or "quarantine threshold exceeded",
                                       result, threshold)
    return result


def _load(kind: str, path: Path, lines: list[str], reasons: dict[int, list[str]],
          book: _RunBook, *, threshold: float) -> None:
    """The file's one transaction: warehouse checks, new rows, quarantine and outcome."""
    result = book.result
    t0 = time.perf_counter()
    good = [n for n in range(2, len(lines) + 1) if n not in reasons]
    with raw_cursor(book.engine) as cur:
        sql.stage_rows(cur, kind, "".join(f"{n},{lines[n - 1]}\n" for n in good))
        if kind == "repayments":
            for line, why in sql.repayment_problems(cur).items():
                reasons.setdefault(line, []).extend(why)
        changed, result.rows_unchanged = sql.changed_duplicates(cur, kind)
        for line in changed:
            reasons.setdefault(line, []).append(sql.CHANGED_DUPLICATE[kind])
        result.rows_quarantined = len(reasons)
        over = _over(len(reasons), result.rows_read, threshold)
        result.rows_loaded = 0 if over else sql.insert_new_rows(
            cur, kind, path.name, result.run_id, reasons)
        columns = OUTCOME_KINDS[kind]
        sql.replace_quarantine(cur, kind, path.name, result.run_id, (
            (line, dict(zip(columns, next(csv.reader([lines[line - 1]])), strict=False)), why)
            for line, why in sorted(reasons.items())))
        if over:
            result.status = "failed_threshold"
            result.message = (
                f"{path}: {result.rows_quarantined} of {result.rows_read} rows "
                f"({result.rows_quarantined / max(result.rows_read, 1):.1%}) failed validation,"
                f" over the {threshold:.1%} threshold; they are in quarantined_outcomes and "
                "nothing else was loaded")
        else:
            result.status = "succeeded"
        result.timings["load_s"] = round(time.perf_counter() - t0, 4)
        book.record_in(cur)
    book.recorded = True


def ingest_outcome_days(
    days: Sequence[dt.date], *, database_url: str, landing_dir: Path, run_id: str,
    threshold: float = DEFAULT_QUARANTINE_THRESHOLD, kinds: Sequence[str] = ("loans",
                                                                           "repayments"),
) -> list[dict[str, object]]:
    """Ingest the loans and repayments files of ``days``, in day order, loans first each day.

    Stops at the first file that fails, after loading the files before it.

    Returns:
        Plain values per file, in order, for XCom and the CLI (each has ``kind``).
    """
    if not days:
        return []
    problem = landing_folder_problem(landing_dir)
    if problem:
        raise InputError(problem)
    engine = make_engine(database_url)
    live = _Liveness(engine)
    out: list[dict[str, object]] = []
    try:
        check_connection(engine)
        for day in days:
            for kind in kinds:
                res = ingest_outcome_file(kind, landing_dir / outcome_file_name(kind, day), day,
                                          engine=engine, run_id=run_id, live=live,
                                          threshold=threshold)
                out.append({"kind": kind, **res.as_dict()})
        return out
    finally:
        live.close()
        engine.dispose()
