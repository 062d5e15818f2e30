"""Validate and load a run's daily landing files into ``raw_transactions``.

A run covers one day or a range of days. It reads each landing file strictly (a broken
file fails with its name, line and problem, and nothing of it is loaded), validates the
rows of all its files with the Great Expectations suite as one batch (one validation
and one Data Docs build per run), then loads the files one by one, in order: each
file's bad rows are quarantined with every reason, and its good rows are COPY'd
straight into ``raw_transactions``. Only when a row's transaction id is already loaded
does the file go through a staging table, where the rows that conflicted are compared
with what is loaded (a changed duplicate is quarantined, an unchanged one skipped). The
file's days are marked in ``customer_aggregate_dirty_days`` for the next feature build
to re-aggregate (storage.aggregates). All of a file's writes happen in one transaction,
so a crash leaves the previous state and a re-run leaves exactly what one clean run
leaves. The run stops at the first file that
fails, after loading the files before it, as a file-by-file loop would.

Every file of a run has one ``ingestion_runs`` row. It reads ``running`` from the start
of the file's load (committed on its own, while the run holds the file's liveness lock
on a connection of its own) and becomes the outcome (``succeeded``,
``failed_threshold``, ``failed``) in the same transaction as the load. A failure is
recorded with its one-line reason, a lost database connection included (from a fresh
connection, when the database answers). A run that dies outright (SIGKILL, a lost
worker) leaves ``running``: the next run of the same file, finding that run's lock
free, closes the row as ``failed`` with a message naming itself; a run still in flight
keeps its lock and is left alone.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from creditrisk.errors import CreditRiskError, InputError, ServiceUnavailableError
from creditrisk.ingest.read import read_landing_file
from creditrisk.ingest.validate import TRANSACTIONS, Suite, validate_files
from creditrisk.schema import XENTE_COLUMNS, landing_file_name
from creditrisk.storage import aggregates
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


# ----------------------------------------------------------------------------- loading


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Liveness:
    """The run's liveness connection: out of the pool, in autocommit, opened once.

    It takes each file's liveness lock as the file's load starts and holds it until the
    run ends (closing the connection really disconnects, which releases every lock), and
    commits the files' ``running`` rows, so a run whose process dies is visible (and the
    next run of the file closes it as failed).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None

    def start(self, result: IngestResult, started: dt.datetime) -> None:
        """Take the file's lock, then commit its ``running`` row."""
        if self._conn is None:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            conn.detach()
            self._conn = conn
        sql.hold_run_lock(self._conn, result.run_id, result.source_file)
        cur = self._conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            sql.record_run(cur, _run_record(result, started, sql.RUNNING))
        finally:
            cur.close()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a terminated session is gone already
                self._conn.close()


class _RunBook:
    """A file's ``ingestion_runs`` row: ``running`` while in flight, then one outcome.

    ``open`` starts the file on the run's liveness connection. ``record_in`` writes the
    outcome in the caller's transaction (with the file's load); ``fail`` writes a
    failure on its own.
    """

    def __init__(self, engine: Engine, result: IngestResult, live: _Liveness) -> None:
        self.engine, self.result, self.live = engine, result, live
        self.started = _now()
        self.recorded = False

    def open(self) -> None:
        with database_failures(self.engine, f"{self.result.source_file}: starting the "
                                            "ingestion run"):
            self.live.start(self.result, self.started)

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

    def guard(self, path: Path, exc: Exception) -> Exception:
        """Record ``exc`` as the file's failure (unless recorded); the exception to raise."""
        if self.recorded or isinstance(exc, sql.RunLockBusy):  # the live attempt's row stays
            return exc
        if is_database_failure(exc):
            message = (
                f"{path}: the database connection was lost mid-load ({first_line(exc)}); "
                "the file's transaction was rolled back, nothing of it was loaded: re-run the day"
            )
            self.fail_quietly(message)
            error = ServiceUnavailableError(message)
            error.__cause__ = exc
            return error
        self.fail_quietly(str(exc) if isinstance(exc, CreditRiskError)
                          else f"{path}: {type(exc).__name__}: {first_line(exc)}")
        return exc


@dataclass
class _File:
    """One file of the run: where it is, what it held and what became of it."""

    path: Path
    day: dt.date
    result: IngestResult
    frame: Any = None
    lines: list[str] = field(default_factory=list)
    #: the header the file must have (the Xente schema; an outcome file: its kind's)
    columns: Sequence[str] = XENTE_COLUMNS


F = TypeVar("F", bound=_File)


def ingest_file(
    path: Path,
    file_day: dt.date,
    *,
    engine: Engine,
    run_id: str,
    threshold: float = DEFAULT_QUARANTINE_THRESHOLD,
    data_docs: bool = True,
) -> IngestResult:
    """Validate one landing file and load it: a run of one file (see :func:`ingest_files`)."""
    return ingest_files([(path, file_day)], engine=engine, run_id=run_id, threshold=threshold,
                        data_docs=data_docs)[0]


def ingest_files(
    files: Sequence[tuple[Path, dt.date]],
    *,
    engine: Engine,
    run_id: str,
    threshold: float = DEFAULT_QUARANTINE_THRESHOLD,
    data_docs: bool = True,
    batch_bytes: int | None = None,
) -> list[IngestResult]:
    """Validate a run's landing files in batches and load them in order; see the module.

    Memory is bounded by the batch: files are read, validated (one Great Expectations
    validation per batch) and loaded ``batch_bytes`` of CSV at a time
    (``CREDITRISK_INGEST_BATCH_MB``, 256 by default), so a long backfill never holds the
    whole range in one process.

    Each file's ``ingestion_runs`` row reads ``running`` until its outcome is recorded;
    every failure is recorded (a lost database connection too, when the database still
    answers), and a run that died without recording is closed by the file's next run.

    Args:
        files: The landing files and the UTC day each holds, in load order.
        engine: Warehouse engine.
        run_id: Airflow run id or CLI run id, recorded on every row written.
        threshold: Largest share of a file's rows that may be bad and still let it load.
        data_docs: Build Data Docs for the run's validation.
        batch_bytes: Largest batch of CSV bytes held at once (default: the setting).

    Returns:
        One result per file, in order; every ``status`` is ``succeeded``.

    Raises:
        BrokenFileError, ValidationFailedError, QuarantineThresholdError: for the first
            file that fails, after the files before it are loaded and its failure is
            recorded in ``ingestion_runs`` (and its bad rows quarantined).
        ServiceUnavailableError: the database failed mid-load; the file's transaction
            was rolled back and nothing of it is loaded.
    """
    if batch_bytes is None:
        from creditrisk.config import get_settings

        batch_bytes = get_settings().ingest_batch_mb * 2**20
    results: list[IngestResult] = []
    for batch in batches_by_size(files, batch_bytes):
        results += _ingest_batch(batch, engine=engine, run_id=run_id, threshold=threshold,
                                 data_docs=data_docs)
    return results


def batches_by_size(files: Sequence[tuple[Path, dt.date]],
                    cap_bytes: int) -> Iterator[list[tuple[Path, dt.date]]]:
    """The files in order, cut into consecutive batches of at most ``cap_bytes`` on disk
    (a bigger file is a batch of its own; a missing one counts as empty)."""
    batch: list[tuple[Path, dt.date]] = []
    size = 0
    for path, day in files:
        try:
            n = path.stat().st_size
        except OSError:
            n = 0
        if batch and size + n > cap_bytes:
            yield batch
            batch, size = [], 0
        batch.append((path, day))
        size += n
    if batch:
        yield batch


def _ingest_batch(
    files: Sequence[tuple[Path, dt.date]], *, engine: Engine, run_id: str, threshold: float,
    data_docs: bool,
) -> list[IngestResult]:
    """Read, validate (once) and load one batch of a run's files; see :func:`ingest_files`."""
    run = [_File(path, day, IngestResult(source_file=path.name, logical_date=day.isoformat(),
                                         run_id=run_id)) for path, day in files]
    live = _Liveness(engine)
    try:
        readable, broken = _read_files(run)
        outcomes = _validate(readable, engine, live, data_docs=data_docs)
        results = [_load_file(f, outcome, engine, live, threshold=threshold)
                   for f, outcome in zip(readable, outcomes, strict=True)]
        if broken is not None:
            fail_broken(engine, broken, live)
        return results
    finally:
        live.close()


def fail_broken(engine: Engine, broken: tuple[Any, InputError], live: _Liveness) -> NoReturn:
    """Record a run's unreadable file as failed (its runs row says why), then raise its
    error; the files read before it are already loaded (shared with the outcome ingest)."""
    f, error = broken
    book = _RunBook(engine, f.result, live)
    try:
        book.open()
        book.fail(str(error))
    except Exception as exc:
        raise book.guard(f.path, exc) from exc
    raise error


def _read_files(run: Sequence[F]) -> tuple[list[F], tuple[F, InputError] | None]:
    """Read the files in order, each against its own header, up to the first that cannot
    be read (and that one). Shared with the outcome ingest."""
    readable: list[F] = []
    for f in run:
        t0 = time.perf_counter()
        try:
            f.frame, f.lines = read_landing_file(f.path, f.columns)
        except InputError as exc:
            return readable, (f, exc)
        f.result.rows_read = len(f.frame)
        f.result.timings["read_s"] = round(time.perf_counter() - t0, 4)
        readable.append(f)
    return readable, None


def _validate(
    readable: Sequence[_File], engine: Engine, live: _Liveness, *, data_docs: bool,
    suite: Suite = TRANSACTIONS,
) -> list[Any]:
    """One GX validation of every readable file with ``suite``; a crash of it is every
    file's failure."""
    if not readable:
        return []
    t0 = time.perf_counter()
    try:
        outcomes = validate_files([(f.frame, f.day) for f in readable], data_docs=data_docs,
                                  suite=suite)
    except Exception as exc:
        for f in readable:  # none of them is loaded: each says why
            book = _RunBook(engine, f.result, live)
            with contextlib.suppress(Exception):
                book.open()
            book.fail_quietly(f"{f.path}: validating the run's {len(readable)} file(s) failed: "
                              f"{type(exc).__name__}: {first_line(exc)}")
        raise
    seconds = time.perf_counter() - t0
    total = max(sum(f.result.rows_read for f in readable), 1)
    for f, outcome in zip(readable, outcomes, strict=True):
        f.result.gx_success, f.result.data_docs = outcome.success, outcome.data_docs
        # the file's share of the run's one validation, by rows
        f.result.timings["validate_s"] = round(seconds * f.result.rows_read / total, 4)
        f.result.timings["validate_run_s"] = round(seconds, 3)
    if outcomes and outcomes[0].data_docs:
        names = readable[0].path.name if len(readable) == 1 else (
            f"{readable[0].path.name} .. {readable[-1].path.name} ({len(readable)} files)")
        log.info("Data Docs for %s: %s", names, outcomes[0].data_docs)
    return outcomes


def _load_file(
    f: _File, outcome: Any, engine: Engine, live: _Liveness, *, threshold: float
) -> IngestResult:
    """Record the file's start, then load it (or record why not); raise if it failed."""
    book = _RunBook(engine, f.result, live)
    try:
        book.open()
        if outcome.table_reasons:
            book.fail(f"{f.path}: the file failed validation: {'; '.join(outcome.table_reasons)}")
            raise ValidationFailedError(f.result.message)
        _load(f, outcome, book, threshold=threshold)
    except Exception as exc:
        raise book.guard(f.path, exc) from exc
    result = f.result
    log.info(
        "%s: read %d, loaded %d, unchanged %d, quarantined %d (status %s)",
        f.path.name, result.rows_read, result.rows_loaded, result.rows_unchanged,
        result.rows_quarantined, result.status,
    )
    if result.status != "succeeded":
        raise QuarantineThresholdError(result.message or "quarantine threshold exceeded",
                                       result, threshold)
    return result


def _load(f: _File, outcome: Any, book: _RunBook, *, threshold: float) -> None:
    """The file's one transaction: new rows, quarantine and outcome (see the module)."""
    result, lines = f.result, f.lines
    t0 = time.perf_counter()
    reasons = {line: list(r) for line, r in outcome.row_reasons.items()}
    good = [n for n in range(2, len(lines) + 1) if n not in reasons] if reasons else None
    with raw_cursor(book.engine) as cur:
        over = len(reasons) / max(result.rows_read, 1) > threshold
        loaded = None if over else sql.copy_new_rows(
            cur, _direct_csv(lines, good, f.path.name, result.run_id))
        if loaded is None:  # over the threshold already, or some ids are loaded: compare
            changed, result.rows_unchanged, loaded = _staged_load(
                cur, f, good, insert=lambda n_changed: not _over(
                    len(reasons) + n_changed, result.rows_read, threshold))
            for line in changed:
                reasons.setdefault(line, []).append(sql.CHANGED_DUPLICATE)
        result.rows_quarantined = len(reasons)
        over = _over(result.rows_quarantined, result.rows_read, threshold)
        result.rows_loaded = loaded
        if loaded:  # its days' aggregates are stale: the next feature build redoes them
            aggregates.mark_days(cur, _file_days(f.frame), result.run_id)
        sql.replace_quarantine(cur, f.path.name, result.run_id, _quarantine_rows(lines, reasons))
        if over:
            result.status = "failed_threshold"
            result.message = (
                f"{f.path}: {result.rows_quarantined} of {result.rows_read} rows "
                f"({result.rows_quarantined / max(result.rows_read, 1):.1%}) failed validation,"
                f" over the {threshold:.1%} threshold; "
                "they are in quarantined_transactions and nothing else was loaded"
            )
        else:
            result.status = "succeeded"
        result.timings["load_s"] = round(time.perf_counter() - t0, 4)
        book.record_in(cur)
    book.recorded = True


def _file_days(frame: Any) -> set[dt.date]:
    """The UTC days of a file's rows (an unparseable time is a quarantined row's: it
    touches no aggregate)."""
    import pandas as pd

    days = pd.to_datetime(frame["TransactionStartTime"], utc=True, errors="coerce",
                          format="ISO8601")
    return set(days.dropna().dt.date)


def _over(bad: int, read: int, threshold: float) -> bool:
    return bad / max(read, 1) > threshold


def _csv_text(value: str) -> str:
    """``value`` as one quoted CSV field."""
    return '"' + value.replace('"', '""') + '"'


def _direct_csv(lines: list[str], good: list[int] | None, source_file: str, run_id: str) -> str:
    """The good rows as COPY input for ``raw_transactions``: the file's 16 fields (its line
    as it is: valid CSV, empty fields null), then the file's name and the run id."""
    suffix = f",{_csv_text(source_file)},{_csv_text(run_id)}\n"
    rows = lines[1:] if good is None else [lines[n - 1] for n in good]
    return suffix.join(rows) + suffix if rows else ""


def _staged_load(
    cur: Any, f: _File, good: list[int] | None, insert: Callable[[int], bool]
) -> tuple[list[int], int, int]:
    """Stage the good rows and find the changed duplicates among those already loaded;
    when ``insert(len(changed))`` says so, insert the new ones.

    Returns:
        The changed duplicates' lines, the unchanged count and the inserted count.
    """
    lines = f.lines
    numbers = range(2, len(lines) + 1) if good is None else good
    sql.stage_rows(cur, "".join(f"{n},{lines[n - 1]}\n" for n in numbers))
    changed, unchanged = sql.find_changed_duplicates(cur)
    if not insert(len(changed)):
        return changed, unchanged, 0
    if changed:
        cur.execute("DELETE FROM stage_raw_transactions WHERE line_number = ANY(%s)", (changed,))
    return changed, unchanged, sql.insert_new_rows(cur, f.path.name, f.result.run_id)


def _quarantine_rows(lines: list[str], reasons: dict[int, list[str]]) -> Iterator[Any]:
    for line, r in sorted(reasons.items()):
        raw_row: dict[str, str | None] = dict(
            zip(XENTE_COLUMNS, next(csv.reader([lines[line - 1]])), strict=True))
        yield sql.QuarantineRow(line_number=line, raw_row=raw_row, reasons=r)


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
    return ingest_days([day], database_url=database_url, landing_dir=landing_dir,
                       run_id=run_id, threshold=threshold, data_docs=data_docs)[0]


def ingest_days(
    days: Sequence[dt.date],
    *,
    database_url: str,
    landing_dir: Path,
    run_id: str,
    threshold: float = DEFAULT_QUARANTINE_THRESHOLD,
    data_docs: bool = True,
) -> list[dict[str, object]]:
    """Ingest the landing files of ``days`` as one run (see :func:`ingest_files`).

    Returns:
        Plain values per day, in order, for XCom and the CLI.
    """

    if not days:
        return []
    problem = landing_folder_problem(landing_dir)
    engine = make_engine(database_url)
    try:
        if problem:
            _record_folder_failure(engine, landing_dir / landing_file_name(days[0]), days[0],
                                   run_id, problem)
            raise InputError(problem)
        check_connection(engine)
        results = ingest_files([(landing_dir / landing_file_name(d), d) for d in days],
                               engine=engine, run_id=run_id, threshold=threshold,
                               data_docs=data_docs)
        return [r.as_dict() for r in results]
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
