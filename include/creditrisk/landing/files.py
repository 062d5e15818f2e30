"""Landing files, byte for byte: one Xente CSV per UTC day, written atomically.

Used by the generator (:mod:`creditrisk.landing.simulate`) and the real-file import
(:mod:`creditrisk.landing.xente_import`). Columns are rendered with pyarrow; a file is
written to a temp name and renamed, so a reader never sees half a day.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from creditrisk import schema
from creditrisk.errors import InputError

_DAY = 86_400
_NEEDS_QUOTES = r'[,"\r\n]'
_HEADER = (",".join(schema.XENTE_COLUMNS) + "\n").encode("utf-8")


def write_landing(df: pd.DataFrame, out_dir: Path, *, overwrite: bool = False) -> list[Path]:
    """Write a Xente frame as one landing CSV per UTC day of ``TransactionStartTime``.

    Every day from the first to the last transaction gets a file (header only if the day
    has no rows). Rows keep their order within a day. Text columns are written as they are;
    ``Amount`` is written as an integer when whole (``1000``) and with its shortest decimal
    form otherwise (``-236.9``); timestamps as ``YYYY-MM-DDTHH:MM:SSZ``.

    Args:
        df: A frame with exactly the columns ``schema.XENTE_COLUMNS``. Timestamps may be
            datetimes (naive ones are taken as UTC) or ISO-8601 text.
        out_dir: Directory for the files; created if missing.
        overwrite: Replace existing landing files instead of refusing.

    Returns:
        The files written, in day order.

    Raises:
        InputError: If the columns are wrong, a timestamp is unparseable, or a target file
            exists and ``overwrite`` is false (checked before anything is written).
    """
    if tuple(df.columns) != schema.XENTE_COLUMNS:
        raise InputError(f"frame columns are not the Xente columns: {list(df.columns)}")
    seconds = _epoch_seconds(df["TransactionStartTime"])
    if len(seconds) == 0:
        return []
    day_numbers = seconds // _DAY
    first, last = int(day_numbers.min()), int(day_numbers.max())
    days = [_EPOCH + dt.timedelta(days=n) for n in range(first, last + 1)]
    return _write_frame(df, seconds, days, out_dir, overwrite=overwrite)


def _refuse_existing(out_dir: Path, days: Iterable[dt.date]) -> None:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output directory {out_dir} is not a directory")
    for day in days:
        target = out_dir / schema.landing_file_name(day)
        if target.exists():
            raise InputError(f"landing file {target} already exists (pass overwrite to replace it)")


def _write_day_files(
    out_dir: Path,
    contents: Mapping[dt.date, Sequence[bytes | memoryview]],
    *,
    overwrite: bool,
) -> list[Path]:
    """Write one landing file per day, each atomically (temp file, fsync, rename).

    All targets are checked before anything is written, so a refusal leaves no file behind;
    a crash leaves whole files or none, never a truncated one.

    Args:
        out_dir: Directory for the files; created if missing.
        contents: For each day, the byte chunks of its file in order (header included).
        overwrite: Replace existing files instead of refusing.

    Returns:
        The files written, in day order.

    Raises:
        InputError: If a target exists and ``overwrite`` is false, or the directory cannot
            be created or written.
    """
    out_dir = Path(out_dir)
    days = sorted(contents)
    if not overwrite:
        _refuse_existing(out_dir, days)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output directory {out_dir}: {exc.strerror}") from exc
    written: list[Path] = []
    for day in days:
        target = out_dir / schema.landing_file_name(day)
        try:
            _atomic_write(target, contents[day])
        except OSError as exc:
            raise InputError(f"cannot write landing file {target}: {exc.strerror}") from exc
        written.append(target)
    return written


def _atomic_write(target: Path, chunks: Sequence[bytes | memoryview]) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; landing files are read by other services.
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


_EPOCH = dt.date(1970, 1, 1)


@functools.lru_cache(maxsize=1)
def _clock_strings() -> pa.Array:
    """``HH:MM:SSZ`` for every second of a day, indexed by second of day."""
    s = np.arange(_DAY)
    return pa.array(
        [
            f"{h:02d}:{m:02d}:{x:02d}Z"
            for h, m, x in zip(s // 3600, s // 60 % 60, s % 60, strict=True)
        ]
    )


def _epoch_seconds(col: pd.Series) -> np.ndarray:
    if not pd.api.types.is_datetime64_any_dtype(col):
        try:
            col = pd.to_datetime(col, utc=True, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise InputError(f"unparseable TransactionStartTime: {exc}") from exc
    if col.isna().any():
        raise InputError("TransactionStartTime has missing values")
    if col.dt.tz is None:
        col = col.dt.tz_localize("UTC")
    # Whole seconds: the landing format has no fractions.
    return np.asarray(col.dt.tz_convert("UTC").astype("datetime64[s, UTC]").astype("int64"))


def _text_column(col: pd.Series, name: str, seconds: np.ndarray) -> pa.Array:
    arr = _text_column_any(col, name, seconds)
    # Arrow-backed pandas columns may arrive in several chunks; the joins want one array.
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _text_column_any(col: pd.Series, name: str, seconds: np.ndarray) -> pa.Array:
    if name == "TransactionStartTime" and pd.api.types.is_datetime64_any_dtype(col):
        day_numbers = seconds // _DAY
        first = int(day_numbers.min())
        dates = pa.array(
            [
                f"{(_EPOCH + dt.timedelta(days=first + i)).isoformat()}T"
                for i in range(int(day_numbers.max()) - first + 1)
            ]
        )
        return pc.binary_join_element_wise(
            dates.take(pa.array(day_numbers - first)),
            _clock_strings().take(pa.array(seconds % _DAY)),
            "",
        )
    if pd.api.types.is_float_dtype(col):
        return _amount_text(col.to_numpy(dtype=np.float64, na_value=np.nan))
    if pd.api.types.is_integer_dtype(col) or pd.api.types.is_bool_dtype(col):
        arr = pa.array(col, from_pandas=True)
        if pa.types.is_boolean(arr.type):
            arr = arr.cast(pa.int8())
        return _quote(arr.cast(pa.string()).fill_null(""))
    if not (pd.api.types.is_string_dtype(col) or pd.api.types.is_object_dtype(col)):
        col = col.astype("str")
    return _quote(pa.array(col, from_pandas=True).cast(pa.string()).fill_null(""))


def _amount_text(values: np.ndarray) -> pa.Array:
    # Whole amounts as integers ("1000", not "1000.0"), others in their shortest form
    # ("-236.9"), as in the public file.
    whole = np.isfinite(values) & (values == np.floor(values)) & (np.abs(values) < 2.0**53)
    as_int = pa.array(np.where(whole, values, 0).astype(np.int64)).cast(pa.string())
    if whole.all():
        return as_int
    as_float = pa.array(np.where(np.isnan(values), 0.0, values)).cast(pa.string())
    text = pc.if_else(pa.array(whole), as_int, as_float)
    return pc.if_else(pa.array(np.isnan(values)), pa.scalar(""), text)


def _quote(arr: pa.Array) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not _has_special_bytes(arr):
        return arr
    needs = pc.match_substring_regex(arr, _NEEDS_QUOTES)
    quoted = pc.binary_join_element_wise(
        pa.scalar('"'), pc.replace_substring(arr, '"', '""'), pa.scalar('"'), ""
    )
    return pc.if_else(needs, quoted, arr)


def _value_bytes(arr: pa.Array) -> memoryview:
    """All values of a string array back to back, without copying.

    A string array stores its values contiguously in one data buffer, so the text of many
    rows is a single slice of it: no per-row work in Python.
    """
    if len(arr) == 0 or arr.buffers()[2] is None:
        return memoryview(b"")
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=width)[arr.offset : arr.offset + len(arr) + 1]
    return memoryview(arr.buffers()[2])[offsets[0] : offsets[-1]]


def _has_special_bytes(arr: pa.Array) -> bool:
    # Searching the raw bytes is several times faster than a regex kernel, and Xente text
    # never needs quoting, so the slow path is rarely taken.
    blob = bytes(_value_bytes(arr))
    return any(ch in blob for ch in (b",", b'"', b"\r", b"\n"))


def _write_frame(
    df: pd.DataFrame,
    seconds: np.ndarray,
    days: Sequence[dt.date],
    out_dir: Path,
    *,
    overwrite: bool,
) -> list[Path]:
    if not overwrite:
        _refuse_existing(out_dir, days)
    day_numbers = seconds // _DAY
    order = np.argsort(day_numbers, kind="stable")
    if not np.array_equal(order, np.arange(len(order))):
        df = df.iloc[order]
        seconds = seconds[order]
        day_numbers = day_numbers[order]
    columns = [_text_column(df[name], name, seconds) for name in schema.XENTE_COLUMNS]
    columns[-1] = pc.binary_join_element_wise(columns[-1], pa.scalar("\n"), "")
    first_numbers = np.array([(d - _EPOCH).days for d in days], dtype=np.int64)
    starts = np.searchsorted(day_numbers, first_numbers, side="left")
    ends = np.searchsorted(day_numbers, first_numbers, side="right")
    if ends.sum() - starts.sum() != len(day_numbers):
        raise InputError("some transactions fall outside the days being written")
    contents: dict[dt.date, list[bytes | memoryview]] = {}
    for day, a, b in zip(days, starts, ends, strict=True):
        # Joined a day at a time: small allocations the memory pool reuses.
        lines = pc.binary_join_element_wise(*(c.slice(a, b - a) for c in columns), ",")
        contents[day] = [_HEADER, _value_bytes(lines)]
    return _write_day_files(out_dir, contents, overwrite=overwrite)
