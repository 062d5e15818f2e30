"""Validate and load the outcome loop's landing files: ``loans_`` and ``repayments_YYYY-MM-DD.csv``.

The same gate as the transaction files (:mod:`creditrisk.ingest.load`), reused where it
fits: the strict reader (a broken file fails whole, with its line), one
``ingestion_runs`` row per file that reads ``running`` until the file's outcome is
recorded in the load's own transaction (the liveness lock and crash handling of
``load.py``), the per-file quarantine threshold with :class:`QuarantineThresholdError`
(the DAG turns it into one quarantine alert), and an idempotent load.

A run reads its files first (in order, up to the first that cannot be read), then checks
each kind's files with its versioned suite (``great_expectations/expectations/loans.json``
or ``repayments.json``, Great Expectations 1.x) as **one batch per kind**, the way
:func:`creditrisk.ingest.validate.validate_files` checks transactions: through the
kind's checkpoint (``loans_checkpoint``, ``repayments_checkpoint``), which builds the
run's Data Docs page, when docs are wanted, failing rows listed by file and line. A
header-only file is clean without a validation. Then each file loads in order, checked
in its transaction by what only the warehouse can check
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
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from creditrisk.errors import InputError
from creditrisk.ingest.load import (
    DEFAULT_QUARANTINE_THRESHOLD,
    IngestResult,
    QuarantineThresholdError,
    ValidationFailedError,
    _File,
    _Liveness,
    _over,
    _read_files,
    _RunBook,
    _validate,
    fail_broken,
    landing_folder_problem,
)
from creditrisk.ingest.validate import FILE_COLUMN, Suite
from creditrisk.schema import OUTCOME_KINDS, outcome_file_name
from creditrisk.storage import loans as sql
from creditrisk.storage.db import check_connection, make_engine, raw_cursor

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)
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


def batch_frame(kind: str, parts: Sequence[tuple[pd.DataFrame, dt.date]]) -> pd.DataFrame:
    """A run's files of ``kind`` as one batch: derived columns, ``_file`` (the file's
    position), and the per-file unique key prefixed by it (unique within a file)."""
    import pandas as pd

    frames = [derived(kind, frame, day).assign(**{FILE_COLUMN: i})
              for i, (frame, day) in enumerate(parts)]
    batch = pd.concat(frames, ignore_index=True)
    key = "_file_loan_id" if kind == "loans" else "_file_installment"
    return batch.assign(**{key: batch[FILE_COLUMN].astype("str") + ":" + batch[key]})


#: kind -> its suite, asset, validation definition and checkpoint (Data Docs)
SUITES = {
    "loans": Suite(name="loans", asset="loans_daily_file", validation_definition="loans_daily",
                   checkpoint="loans_checkpoint", build=partial(batch_frame, "loans"),
                   reported_as={"_day_second": "_issued_epoch"}, validate_empty=False),
    "repayments": Suite(name="repayments", asset="repayments_daily_file",
                        validation_definition="repayments_daily",
                        checkpoint="repayments_checkpoint",
                        build=partial(batch_frame, "repayments"),
                        reported_as={"_day_second": "_paid_epoch"}, validate_empty=False),
}


@dataclass
class _OutcomeFile(_File):
    kind: str = "loans"


def ingest_outcome_files(
    files: Sequence[tuple[str, Path, dt.date]], *, engine: Engine, run_id: str,
    threshold: float = DEFAULT_QUARANTINE_THRESHOLD, data_docs: bool = True,
) -> list[IngestResult]:
    """Read a run's loans and repayments files, validate each kind's as one batch, then
    load them in order (see the module).

    Args:
        files: (kind, path, day) of each file, in load order.
        data_docs: Validate through the kinds' checkpoints, which build Data Docs.

    Returns:
        One result per file, in order; every ``status`` is ``succeeded``.

    Raises:
        InputError: a missing or broken file (the files before it are loaded; its
            failure is recorded).
        ValidationFailedError: a file failed a table-level expectation.
        QuarantineThresholdError: too many bad rows (they are quarantined, nothing else).
    """
    run = [_OutcomeFile(path, day, IngestResult(source_file=path.name,
                                                logical_date=day.isoformat(), run_id=run_id),
                        columns=OUTCOME_KINDS[kind], kind=kind) for kind, path, day in files]
    live = _Liveness(engine)
    try:
        readable, broken = _read_files(run)
        checked: dict[int, Any] = {}
        for kind, suite in SUITES.items():
            mine = [f for f in readable if f.kind == kind]
            outcomes = _validate(mine, engine, live, data_docs=data_docs, suite=suite)
            checked.update({id(f): o for f, o in zip(mine, outcomes, strict=True)})
        results = [_load_file(f, checked[id(f)], engine, live, threshold=threshold)
                   for f in readable]
        if broken is not None:
            fail_broken(engine, broken, live)
        return results
    finally:
        live.close()


def _load_file(f: _OutcomeFile, outcome: Any, engine: Engine, live: _Liveness, *,
               threshold: float) -> IngestResult:
    """Record the file's start, then load it (or record why not); raise if it failed."""
    result = f.result
    book = _RunBook(engine, result, live)
    try:
        book.open()
        if outcome.table_reasons:
            book.fail(f"{f.path}: the file failed validation: "
                      f"{'; '.join(outcome.table_reasons)}")
            raise ValidationFailedError(result.message)
        reasons = {line: list(r) for line, r in outcome.row_reasons.items()}
        _load(f.kind, f.path, f.lines, reasons, book, threshold=threshold)
    except Exception as exc:
        raise book.guard(f.path, exc) from exc
    log.info("%s: read %d, loaded %d, unchanged %d, quarantined %d (status %s)", f.path.name,
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
    data_docs: bool = True,
) -> list[dict[str, object]]:
    """Ingest the loans and repayments files of ``days`` as one run (see
    :func:`ingest_outcome_files`), in day order, loans first each day.

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
    try:
        check_connection(engine)
        files = [(kind, landing_dir / outcome_file_name(kind, day), day)
                 for day in days for kind in kinds]
        results = ingest_outcome_files(files, engine=engine, run_id=run_id,
                                       threshold=threshold, data_docs=data_docs)
        return [{"kind": kind, **r.as_dict()}
                for (kind, _, _), r in zip(files, results, strict=False)]
    finally:
        engine.dispose()
