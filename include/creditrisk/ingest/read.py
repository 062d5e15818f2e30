"""Read a landing file strictly: a broken file fails with its name, line and problem.

Empty files, a BOM, text that is not UTF-8, a wrong header or delimiter, a wrong field
count and a truncated last line are refused before anything is validated or loaded.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from creditrisk.errors import InputError
from creditrisk.schema import XENTE_COLUMNS

HEADER = ",".join(XENTE_COLUMNS)

if TYPE_CHECKING:
    import pandas as pd


class BrokenFileError(InputError):
    """A landing file that cannot be read as a Xente CSV; nothing of it is loaded."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        super().__init__(f"{path}: line {line}: {problem}")
        self.path, self.line, self.problem = path, line, problem


def _header_problem(header: str, columns: Sequence[str] = XENTE_COLUMNS) -> str:
    for delim in (";", "\t", "|"):
        if delim in header and "," not in header:
            return f"wrong delimiter {delim!r}: fields must be separated by commas"
    got = header.split(",")
    missing = [c for c in columns if c not in got]
    extra = [c for c in got if c not in columns]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if extra:
            parts.append(f"unexpected columns {extra}")
        return "wrong header: " + "; ".join(parts)
    return f"wrong header: columns out of order, expected {','.join(columns)}"


def read_landing_file(
    path: Path, columns: Sequence[str] = XENTE_COLUMNS
) -> tuple[pd.DataFrame, list[str]]:
    """Read a landing file strictly as text.

    Args:
        path: The landing CSV.
        columns: Its header, in order: the Xente columns, or an outcome kind's.

    Returns:
        The rows as a text frame (Xente columns plus ``line_number``; empty fields are
        null) and the file's lines (without newlines; index 0 is the header).

    Raises:
        InputError: The file is missing or unreadable.
        BrokenFileError: Empty, BOM, not UTF-8, wrong header or delimiter, a row with
            too few or too many fields, or a truncated last line.
    """
    import pandas as pd

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such landing file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied reading the landing file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a landing file") from None
    if not raw.strip():
        raise BrokenFileError(path, 1, "empty file")
    if raw.startswith(codecs.BOM_UTF8):
        raise BrokenFileError(
            path, 1, "starts with a UTF-8 byte-order mark (BOM): write UTF-8 without BOM"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise BrokenFileError(
            path, line, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    text = text.replace("\r\n", "\n")
    if not text.endswith("\n"):
        raise BrokenFileError(
            path, text.count("\n") + 1, "truncated last line (the file does not end with a newline)"
        )
    lines = text[:-1].split("\n")
    if lines[0] != ",".join(columns):
        raise BrokenFileError(path, 1, _header_problem(lines[0], columns))
    # The usual file (no quote, no stray carriage return, no blank line) goes through
    # Arrow's CSV reader, several times faster than splitting in Python; anything it
    # rejects or counts differently is read again below, so the exact problem and line
    # are reported. (Arrow would take a blank line for a row of nulls, hence the test.)
    if '"' not in text and "\r" not in text and "\n\n" not in text:
        fast = _arrow_frame(raw, len(lines) - 1, columns)
        if fast is not None:
            return fast, lines
    width = len(columns)
    # Xente files carry no quotes; only then is the slower csv module needed.
    records = (
        list(csv.reader(lines[1:])) if '"' in text else [ln.split(",") for ln in lines[1:]]
    )
    for i, rec in enumerate(records):
        if len(rec) != width:
            kind = "too few" if len(rec) < width else "too many"
            raise BrokenFileError(
                path, i + 2, f"{kind} fields: {len(rec)} instead of {width}"
            )
    frame = pd.DataFrame(records, columns=list(columns), dtype="str")
    frame = frame.mask(frame == "")
    frame.insert(0, "line_number", range(2, len(records) + 2))
    return frame, lines


def _arrow_frame(raw: bytes, rows: int,
                 columns: Sequence[str] = XENTE_COLUMNS) -> pd.DataFrame | None:
    """The data rows parsed by Arrow exactly as the Python path would, or None.

    Args:
        raw: The file's bytes: valid UTF-8, the right header, no quote and no lone CR.
        rows: Number of data lines in the file.

    Returns:
        The same frame as the Python path (text columns, empty fields null, plus
        ``line_number``), or None when Arrow rejects a line or counts other rows.
    """
    import pandas as pd
    import pyarrow as pa
    from pyarrow import csv as pacsv

    try:
        table = pacsv.read_csv(
            io.BytesIO(raw),
            read_options=pacsv.ReadOptions(column_names=list(columns), skip_rows=1),
            parse_options=pacsv.ParseOptions(
                delimiter=",", quote_char=False, double_quote=False, escape_char=False,
                newlines_in_values=False, ignore_empty_lines=False,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(columns, pa.string()),
                strings_can_be_null=True, null_values=[""],
            ),
        )
    except pa.ArrowInvalid:
        return None
    if table.num_rows != rows:
        return None
    text_dtype = pd.Series([], dtype="str").dtype
    frame = table.to_pandas(
        types_mapper=lambda t: text_dtype if t == pa.string() else None
    )
    frame.insert(0, "line_number", range(2, rows + 2))
    return frame
