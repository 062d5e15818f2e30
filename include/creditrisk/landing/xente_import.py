"""Split a real Xente CSV (such as the public training file) into daily landing files.

Rows are copied byte for byte: nothing is parsed beyond the field count and the
``TransactionStartTime`` needed to pick the UTC day, so amounts, ids and timestamps land
exactly as the source spells them.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from creditrisk import schema
from creditrisk.errors import InputError
from creditrisk.landing.files import _write_day_files

__all__ = ["ImportSummary", "import_xente"]

_TIME_FIELD = schema.XENTE_COLUMNS.index("TransactionStartTime")
_CUSTOMER_FIELD = schema.XENTE_COLUMNS.index("CustomerId")
_CANONICAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_xente` wrote.

    Attributes:
        rows: Data rows copied.
        customers: Distinct ``CustomerId`` values among them.
        files: The landing files, one per UTC day that has rows, in day order.
        first_day: First UTC day with a transaction.
        last_day: Last UTC day with a transaction.
    """

    rows: int
    customers: int
    files: list[Path]
    first_day: dt.date
    last_day: dt.date


def import_xente(path: Path, out_dir: Path, *, overwrite: bool = False) -> ImportSummary:
    """Split a Xente CSV into one landing file per UTC day of ``TransactionStartTime``.

    Each output file has the Xente header and the source's rows of that day, unchanged
    and in their original order. Blank lines are skipped; line ends become ``\\n``.
    Timestamps are ISO-8601; one without an offset is taken as UTC, as Xente's are.

    Args:
        path: The source CSV (UTF-8, header exactly ``schema.XENTE_COLUMNS``).
        out_dir: Directory for the landing files; created if missing.
        overwrite: Replace existing landing files instead of refusing.

    Returns:
        A summary of what was written.

    Raises:
        InputError: If the file is missing, unreadable, not UTF-8, has a wrong header, a row
            with the wrong number of fields or an unparseable timestamp, has no data rows, or
            if a target file exists and ``overwrite`` is false (nothing is written then).
    """
    path = Path(path)
    text = _read_text(path)
    if not text:
        raise InputError(f"{path}: empty file, expected the Xente header and rows")
    lines = text.split("\n")
    header = _strip_cr(lines[0]).removeprefix("\ufeff")
    _check_header(path, header)

    by_day: dict[dt.date, list[str]] = {}
    day_cache: dict[str, dt.date] = {}
    customers: set[str] = set()
    rows = 0
    for number, raw in enumerate(lines[1:], start=2):
        line = _strip_cr(raw)
        if not line.strip():
            continue
        fields = _fields(path, number, line)
        stamp = fields[_TIME_FIELD]
        day = _utc_day(path, number, stamp, day_cache)
        by_day.setdefault(day, []).append(line)
        customers.add(fields[_CUSTOMER_FIELD])
        rows += 1
    if rows == 0:
        raise InputError(f"{path}: no data rows after the header")

    header_bytes = (",".join(schema.XENTE_COLUMNS) + "\n").encode("utf-8")
    contents = {
        day: [header_bytes, ("\n".join(day_lines) + "\n").encode("utf-8")]
        for day, day_lines in by_day.items()
    }
    files = _write_day_files(Path(out_dir), contents, overwrite=overwrite)
    return ImportSummary(
        rows=rows,
        customers=len(customers),
        files=files,
        first_day=min(by_day),
        last_day=max(by_day),
    )


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a directory, not a CSV file") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{path}: line {line}: not UTF-8 text") from exc


def _strip_cr(line: str) -> str:
    return line[:-1] if line.endswith("\r") else line


def _check_header(path: Path, header: str) -> None:
    got = next(csv.reader([header]), []) if header else []
    want = list(schema.XENTE_COLUMNS)
    if got == want:
        return
    if not got:
        raise InputError(f"{path}: line 1: no header, expected the Xente header")
    missing = [c for c in want if c not in got]
    extra = [c for c in got if c not in want]
    repeated = sorted({c for c in got if got.count(c) > 1})
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected {', '.join(extra)}")
    if repeated:
        problems.append(f"repeated {', '.join(repeated)}")
    if not problems:
        pos = next(i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w)
        problems.append(f"out of order: column {pos + 1} is {got[pos]}, expected {want[pos]}")
    raise InputError(f"{path}: line 1: not the Xente header ({'; '.join(problems)})")


def _fields(path: Path, number: int, line: str) -> list[str]:
    # Plain split is exact for Xente rows, which never quote; fall back to the csv module
    # only when a quote appears.
    fields = line.split(",") if '"' not in line else next(csv.reader([line]))
    if len(fields) != len(schema.XENTE_COLUMNS):
        raise InputError(
            f"{path}: line {number}: expected {len(schema.XENTE_COLUMNS)} fields, got {len(fields)}"
        )
    return fields


def _utc_day(path: Path, number: int, stamp: str, cache: dict[str, dt.date]) -> dt.date:
    if _CANONICAL_TIME.fullmatch(stamp):
        # The usual "YYYY-MM-DDTHH:MM:SSZ": the day is its first ten characters.
        key = stamp[:10]
        day = cache.get(key)
        if day is None:
            day = _parse_day(path, number, stamp)
            cache[key] = day
        elif not _valid_clock(stamp):
            raise InputError(f"{path}: line {number}: unparseable TransactionStartTime {stamp!r}")
        return day
    return _parse_day(path, number, stamp)


def _valid_clock(stamp: str) -> bool:
    return int(stamp[11:13]) < 24 and int(stamp[14:16]) < 60 and int(stamp[17:19]) < 60


def _parse_day(path: Path, number: int, stamp: str) -> dt.date:
    try:
        moment = dt.datetime.fromisoformat(stamp.strip())
    except ValueError as exc:
        raise InputError(
            f"{path}: line {number}: unparseable TransactionStartTime {stamp!r}"
        ) from exc
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.date()
