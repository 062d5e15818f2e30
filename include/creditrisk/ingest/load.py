"""Validate and load daily landing files into ``raw_transactions``.

For one day: read the landing file strictly (a broken file fails with its name, line
and problem, and nothing is loaded), validate every row with the Great Expectations
suite, quarantine bad rows with every reason, and COPY the good rows through a
staging table. All of a file's writes happen in one transaction, so a crash leaves
the previous state and a re-run leaves exactly what one clean run leaves.

Every run of a file has one ``ingestion_runs`` row. It reads ``running`` from the start
(committed on its own, while the run holds a liveness lock on a connection of its own)
and becomes the outcome (``succeeded``, ``failed_threshold``, ``failed``) in the same
transaction as the load. A failure is recorded with its one-line reason, a lost
database connection included (from a fresh connection, when the database answers). A
run that dies outright (SIGKILL, a lost worker) leaves ``running``: the next run of the
same file, finding that run's lock free, closes the row as ``failed`` with a message
naming itself; a run still in flight keeps its lock and is left alone.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from creditrisk.errors import CreditRiskError, InputError, ServiceUnavailableError
from creditrisk.ingest.read import read_landing_file
from creditrisk.ingest.validate import validate_frame
from creditrisk.schema import XENTE_COLUMNS, landing_file_name
from creditrisk.storage import transactions as sql
from creditrisk.storage.db import (
    check_connection,
    database_failures,
    first_line,
    is_database_failure,
    make_engine,
    raw_cursor,
)
from creditrisk.storage.transactions import RunRecord

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


log = logging.getLogger(__name__)


DEFAULT_QUARANTINE_THRESHOLD = 0.05


class QuarantineThresholdError(CreditRiskError):
    """Too large a share of a file's rows failed validation: the pipeline stops here."""

    def __init__(self, message: str, result: IngestResult | None = None,
                 threshold: float | None = None) -> None:
        super().__init__(message)
        self.result, self.threshold = result, threshold


class ValidationFailedError(InputError):
    """The file as a whole failed the suite (e.g. no rows, wrong columns)."""


@dataclass
class IngestResult:
    """What one file's ingestion did (plain values, fit for XCom and logs)."""

    source_file: str
    logical_date: str
    run_id: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_unchanged: int = 0
    gx_success: bool | None = None
    status: str = "failed"
    message: str | None = None
    data_docs: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# ----------------------------------------------------------------------------- reading


# ----------------------------------------------------------------------------- loading


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _RunBook:
    """The run's ``ingestion_runs`` row: ``running`` while in flight, then one outcome.

    ``open`` takes the run's liveness lock on a connection held until ``close`` and
    commits a ``running`` row, so a run whose process dies is visible (and the next
    run of the file closes it as failed). ``record_in`` writes the outcome in the
    caller's transaction (with the file's load); ``fail`` writes a failure on its own.
    """

    def __init__(self, engine: Engine, result: IngestResult, started: dt.datetime) -> None:
        self.engine, self.result, self.started = engine, result, started
        self.recorded = False
        self._live: Connection | None = None

    def open(self) -> None:

        # A connection of its own, out of the pool (closing it really disconnects, which
        # releases the session lock) and in autocommit (never idle in a transaction).
        self._live = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._live.detach()
        sql.hold_run_lock(self._live, self.result.run_id, self.result.source_file)
        with raw_cursor(self.engine) as cur:
            sql.record_run(cur, _run_record(self.result, self.started, sql.RUNNING))

    def record_in(self, cur: object) -> None:

        closed = sql.close_abandoned_runs(cur, self.result.source_file, self.result.run_id)
        if closed:
            log.warning("%s: closed the unfinished run(s) %s as failed", self.result.source_file,
                        ", ".join(closed))
        sql.record_run(cur, _run_record(self.result, self.started))

    def fail(self, message: str) -> None:
        """Record a failure in its own transaction: nothing of the file is loaded."""
        self.result.status, self.result.message = "failed", message
        # counts of a load that was rolled back describe nothing that is in the tables
        self.result.rows_loaded = self.result.rows_quarantined = self.result.rows_unchanged = 0
        with raw_cursor(self.engine) as cur:
            self.record_in(cur)
        self.recorded = True

    def fail_quietly(self, message: str) -> None:
        """Record a failure if the database lets us; the ``running`` row says it otherwise."""
        try:
            self.fail(message)
        except Exception as exc:
            log.warning("could not record the failure of %s in ingestion_runs (%s): the row "
                        "stays 'running' until the next run of the file closes it",
                        self.result.source_file, exc)

    def close(self) -> None:
        if self._live is not None:
            with contextlib.suppress(Exception):  # a terminated session is gone already
                self._live.close()


def ingest_file(
    path: Path,
    file_day: dt.date,
    *,
    engine: Engine,
    run_id: str,
    threshold: float = DEFAULT_QUARANTINE_THRESHOLD,
    data_docs: bool = True,
) -> IngestResult:
    """Validate one landing file and load it; see the module docstring.

    The run's ``ingestion_runs`` row reads ``running`` until the outcome is recorded;
    every failure is recorded (a lost database connection too, when the database still
    answers), and a run that died without recording is closed by the file's next run.

    Args:
        path: The landing file.
        file_day: The UTC day the file holds.
        engine: Warehouse engine.
        run_id: Airflow run id or CLI run id, recorded on every row written.
        threshold: Largest share of bad rows that still lets the file load.
        data_docs: Build Data Docs for the validation.

    Returns:
        The counts; ``status`` is ``succeeded``.

    Raises:
        BrokenFileError, ValidationFailedError, QuarantineThresholdError: after the
            failure is recorded in ``ingestion_runs`` (and bad rows quarantined).
        ServiceUnavailableError: the database failed mid-load; the file's transaction
            was rolled back and nothing of it is loaded.
    """

    result = IngestResult(source_file=path.name, logical_date=file_day.isoformat(), run_id=run_id)
    book = _RunBook(engine, result, _now())
    try:
        with database_failures(engine, f"{path}: starting the ingestion run"):
            book.open()
        return _ingest(path, file_day, book, threshold=threshold, data_docs=data_docs)
    except Exception as exc:
        if book.recorded or isinstance(exc, sql.RunLockBusy):  # the live attempt's row stays
            raise
        if is_database_failure(exc):
            message = (
                f"{path}: the database connection was lost mid-load ({first_line(exc)}); "
                "the file's transaction was rolled back, nothing of it was loaded: re-run the day"
            )
            book.fail_quietly(message)
            raise ServiceUnavailableError(message) from exc
        book.fail_quietly(str(exc) if isinstance(exc, CreditRiskError)
                          else f"{path}: {type(exc).__name__}: {first_line(exc)}")
        raise
    finally:
        book.close()


def _read_and_validate(
    path: Path, file_day: dt.date, book: _RunBook, *, data_docs: bool
) -> tuple[list[str], Any]:
    """Read the file strictly and run the GX suite; a broken or failing file is recorded."""
    result = book.result
    t0 = time.perf_counter()
    try:
        frame, lines = read_landing_file(path)
    except InputError as exc:
        book.fail(str(exc))
        raise
    result.rows_read = len(frame)
    result.timings["read_s"] = round(time.perf_counter() - t0, 3)
    t1 = time.perf_counter()
    outcome = validate_frame(frame, file_day, data_docs=data_docs)
    result.gx_success = outcome.success
    result.data_docs = outcome.data_docs
    result.timings["validate_s"] = round(time.perf_counter() - t1, 3)
    if outcome.data_docs:
        log.info("Data Docs for %s: %s", path.name, outcome.data_docs)
    if outcome.table_reasons:
        book.fail(f"{path}: the file failed validation: {'; '.join(outcome.table_reasons)}")
        raise ValidationFailedError(result.message)
    return lines, outcome


def _ingest(
    path: Path, file_day: dt.date, book: _RunBook, *, threshold: float, data_docs: bool
) -> IngestResult:

    result, engine = book.result, book.engine
    lines, outcome = _read_and_validate(path, file_day, book, data_docs=data_docs)
    t2 = time.perf_counter()
    reasons = {line: list(r) for line, r in outcome.row_reasons.items()}
    good = [n for n in range(2, len(lines) + 1) if n not in reasons]
    stage_csv = "".join(f"{n},{lines[n - 1]}\n" for n in good)
    with raw_cursor(engine) as cur:
        sql.stage_rows(cur, stage_csv)
        changed, unchanged = sql.find_changed_duplicates(cur)
        for line in changed:
            reasons.setdefault(line, []).append(sql.CHANGED_DUPLICATE)
        result.rows_unchanged = unchanged
        result.rows_quarantined = len(reasons)
        bad_share = result.rows_quarantined / max(result.rows_read, 1)
        over = bad_share > threshold
        if not over:
            if changed:
                cur.execute(
                    "DELETE FROM stage_raw_transactions WHERE line_number = ANY(%s)", (changed,)
                )
            result.rows_loaded = sql.insert_new_rows(cur, path.name, result.run_id)
        sql.replace_quarantine(
            cur,
            path.name,
            result.run_id,
            (
                sql.QuarantineRow(
                    line_number=line,
                    raw_row=dict(zip(XENTE_COLUMNS, next(csv.reader([lines[line - 1]])),
                                     strict=True)),
                    reasons=r,
                )
                for line, r in sorted(reasons.items())
            ),
        )
        if over:
            result.status = "failed_threshold"
            result.message = (
                f"{path}: {result.rows_quarantined} of {result.rows_read} rows "
                f"({bad_share:.1%}) failed validation, over the {threshold:.1%} threshold; "
                "they are in quarantined_transactions and nothing else was loaded"
            )
        else:
            result.status = "succeeded"
        result.timings["load_s"] = round(time.perf_counter() - t2, 3)
        book.record_in(cur)
    book.recorded = True
    log.info(
        "%s: read %d, loaded %d, unchanged %d, quarantined %d (status %s)",
        path.name, result.rows_read, result.rows_loaded, result.rows_unchanged,
        result.rows_quarantined, result.status,
    )
    if result.status != "succeeded":
        raise QuarantineThresholdError(result.message or "quarantine threshold exceeded",
                                       result, threshold)
    return result


def _run_record(
    result: IngestResult, started: dt.datetime, status: str | None = None
) -> RunRecord:

    return RunRecord(
        run_id=result.run_id, source_file=result.source_file,
        logical_date=dt.date.fromisoformat(result.logical_date),
        rows_read=result.rows_read, rows_loaded=result.rows_loaded,
        rows_quarantined=result.rows_quarantined, rows_unchanged=result.rows_unchanged,
        gx_success=result.gx_success, status=status or result.status, message=result.message,
        started_at=started, finished_at=started if status else _now(), timings=result.timings,
    )


# ----------------------------------------------------------------------------- days


def ingest_day(
    day: dt.date,
    *,
    database_url: str,
    landing_dir: Path,
    run_id: str,
    threshold: float = DEFAULT_QUARANTINE_THRESHOLD,
    data_docs: bool = True,
) -> dict[str, object]:
    """Ingest the landing file of one day; returns plain values for XCom and the CLI."""

    problem = landing_folder_problem(landing_dir)
    path = landing_dir / landing_file_name(day)
    engine = make_engine(database_url)
    try:
        if problem:
            _record_folder_failure(engine, path, day, run_id, problem)
            raise InputError(problem)
        check_connection(engine)
        return ingest_file(
            path, day, engine=engine, run_id=run_id, threshold=threshold, data_docs=data_docs
        ).as_dict()
    finally:
        engine.dispose()


def landing_folder_problem(landing_dir: Path) -> str | None:
    """Why the landing folder cannot be listed (missing, not a folder, no permission), or None.

    ``Path.is_dir`` would report a folder behind an unreadable parent as missing: the
    folder is stat'ed and listed for real, so the reason names the actual problem.
    """
    import os
    import stat

    try:
        mode = landing_dir.stat().st_mode
    except FileNotFoundError:
        return f"{landing_dir}: landing folder does not exist"
    except PermissionError:
        return f"{landing_dir}: permission denied reaching the landing folder"
    if not stat.S_ISDIR(mode):
        return f"{landing_dir}: is not a folder (the landing folder must be one)"
    try:
        with os.scandir(landing_dir) as entries:
            next(entries, None)
    except PermissionError:
        return f"{landing_dir}: permission denied reading the landing folder"
    return None


def _record_folder_failure(
    engine: Engine, path: Path, day: dt.date, run_id: str, problem: str
) -> None:
    """Record the day's failure in ``ingestion_runs`` when the database answers.

    The folder's problem is the error either way: with the database down too, it is
    raised without a record rather than hidden behind the connection error.
    """

    result = IngestResult(source_file=path.name, logical_date=day.isoformat(), run_id=run_id,
                          message=problem)
    try:
        with raw_cursor(engine) as cur:
            sql.record_run(cur, _run_record(result, _now()))
    except Exception as exc:  # e.g. the database is down as well: the folder is the news
        log.info("could not record the failure of %s in ingestion_runs: %s", path.name, exc)


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every day from ``start`` to ``end`` inclusive; an empty range is an error."""
    if end < start:
        raise InputError(f"--to {end} is before --from {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
