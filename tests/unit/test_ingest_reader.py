"""The strict landing-file reader and the ``creditrisk ingest`` argument errors (no database)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from creditrisk.errors import InputError
from creditrisk.ingest.load import days_between
from creditrisk.ingest.read import BrokenFileError, read_landing_file
from creditrisk.schema import XENTE_COLUMNS
from tests.unit.test_cli import assert_one_line_error, run_cli

HEADER = ",".join(XENTE_COLUMNS)
ROW1 = (
    "TransactionId_76871,BatchId_36123,AccountId_3957,SubscriptionId_887,CustomerId_4406,"
    "UGX,256,ProviderId_6,ProductId_10,airtime,ChannelId_3,1000,1000,2018-11-15T02:18:49Z,2,0"
)
ROW2 = (
    "TransactionId_73770,BatchId_15642,AccountId_4841,SubscriptionId_3829,CustomerId_4406,"
    "UGX,256,ProviderId_4,ProductId_6,financial_services,ChannelId_2,-236.9,236.9,"
    "2018-11-15T02:19:08Z,2,0"
)


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "xente_2018-11-15.csv"
    path.write_bytes(data)
    return path


def test_reads_rows_as_text_with_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n{ROW1}\n{ROW2}\n".encode())
    frame, lines = read_landing_file(path)
    assert list(frame.columns) == ["line_number", *XENTE_COLUMNS]
    assert frame["line_number"].tolist() == [2, 3]
    assert frame.iloc[1].tolist()[1:] == ROW2.split(",")  # text, as spelled: no float rounding
    assert frame["Amount"].tolist() == ["1000", "-236.9"]
    assert lines == [HEADER, ROW1, ROW2]


def test_empty_fields_are_null_and_crlf_is_accepted(tmp_path: Path) -> None:
    row = ROW1.replace("CustomerId_4406", "")
    path = write(tmp_path, f"{HEADER}\r\n{row}\r\n{ROW2}\r\n".encode())
    frame, lines = read_landing_file(path)
    assert pd.isna(frame.loc[0, "CustomerId"])
    assert frame.loc[1, "CustomerId"] == "CustomerId_4406"
    assert lines == [HEADER, row, ROW2]


def test_quoted_fields_go_through_the_csv_module(tmp_path: Path) -> None:
    quoted = ROW1.replace("airtime", '"airtime"')
    path = write(tmp_path, f"{HEADER}\n{quoted}\n".encode())
    frame, _ = read_landing_file(path)
    assert frame.loc[0, "ProductCategory"] == "airtime"


def test_header_only_gives_an_empty_frame(tmp_path: Path) -> None:
    frame, lines = read_landing_file(write(tmp_path, f"{HEADER}\n".encode()))
    assert len(frame) == 0 and list(frame.columns) == ["line_number", *XENTE_COLUMNS]
    assert lines == [HEADER]


@pytest.mark.parametrize(
    ("data", "line", "problem"),
    [
        (b"", 1, "empty file"),
        (b"  \n\n", 1, "empty file"),
        (f"\ufeff{HEADER}\n{ROW1}\n".encode(), 1, "byte-order mark (BOM)"),
        (f"{HEADER}\n{ROW1}\n".encode().replace(b"airtime", b"a\xefrtime"), 2,
         "not valid UTF-8 (byte 0xef at offset"),
        (f"{HEADER}\n{ROW1}\n{ROW2}".encode(), 3, "truncated last line"),
        (f"{HEADER}\n{ROW1}\n{ROW2[:30]}".encode(), 3, "truncated last line"),
        (f"{HEADER.replace(',', ';')}\n".encode(), 1, "wrong delimiter ';'"),
        (f"{HEADER.replace(',', '|')}\n".encode(), 1, "wrong delimiter '|'"),
        (f"{HEADER.replace(',FraudResult', '')}\n".encode(), 1,
         "wrong header: missing columns ['FraudResult']"),
        (f"{HEADER},Extra\n".encode(), 1, "wrong header: unexpected columns ['Extra']"),
        (f"{HEADER.replace('Amount,Value', 'Value,Amount')}\n".encode(), 1,
         "wrong header: columns out of order"),
        (f"{HEADER.lower()}\n".encode(), 1, "wrong header: missing columns"),
        (f"{HEADER}\n{ROW1}\n{ROW2.rsplit(',', 1)[0]}\n".encode(), 3,
         "too few fields: 15 instead of 16"),
        (f"{HEADER}\n{ROW1},1\n{ROW2}\n".encode(), 2, "too many fields: 17 instead of 16"),
        (f"{HEADER}\n{ROW1}\n\n{ROW2}\n".encode(), 3, "too few fields: 1 instead of 16"),
        (f'{HEADER}\n{ROW1.replace("airtime", chr(34) + "air,time" + chr(34))},x\n'.encode(),
         2, "too many fields: 17 instead of 16"),
    ],
    ids=[
        "empty", "blank", "bom", "latin1", "no_final_newline", "cut_row", "semicolon", "pipe",
        "missing_column", "extra_column", "out_of_order", "lowercase_header", "too_few",
        "too_many", "blank_line", "quoted_too_many",
    ],
)
def test_broken_files_name_file_line_and_problem(
    tmp_path: Path, data: bytes, line: int, problem: str
) -> None:
    path = write(tmp_path, data)
    with pytest.raises(BrokenFileError) as failed:
        read_landing_file(path)
    exc = failed.value
    assert (exc.path, exc.line) == (path, line)
    assert problem in exc.problem
    assert str(exc) == f"{path}: line {line}: {exc.problem}"
    assert "\n" not in str(exc)


TRICKY = {
    "empty_fields": f"{HEADER}\n{ROW1.replace('UGX', '').replace('BatchId_36123', '')}\n",
    "all_fields_empty": f"{HEADER}\n{',' * 15}\n{ROW2}\n",
    "spaces_kept": f"{HEADER}\n{ROW1.replace('UGX', ' UGX ')}\n",
    "na_words_are_text": f"{HEADER}\n{ROW1.replace('UGX', 'NA').replace('airtime', 'null')}\n",
    "crlf": f"{HEADER}\r\n{ROW1}\r\n{ROW2}\r\n",
    "non_ascii": f"{HEADER}\n{ROW1.replace('airtime', 'airtimé')}\n",
    "tab_inside_a_field": f"{HEADER}\n{ROW1.replace('airtime', 'air' + chr(9) + 'time')}\n",
    "header_only": f"{HEADER}\n",
    "blank_line": f"{HEADER}\n{ROW1}\n\n{ROW2}\n",
    "trailing_blank_line": f"{HEADER}\n{ROW1}\n\n",
    "lone_cr_joining_two_rows": f"{HEADER}\n{ROW1}\r{ROW2}\n",
    "too_many": f"{HEADER}\n{ROW1},x\n",
    "too_few": f"{HEADER}\n{ROW1.rsplit(',', 1)[0]}\n",
    "quoted": f'{HEADER}\n{ROW1.replace("airtime", chr(34) + "airtime" + chr(34))}\n',
}


def _read_or_error(path: Path) -> tuple[pd.DataFrame, list[str]] | str:
    try:
        return read_landing_file(path)
    except BrokenFileError as exc:
        return str(exc)


@pytest.mark.parametrize("text", TRICKY.values(), ids=TRICKY.keys())
def test_arrow_fast_path_reads_exactly_as_the_python_path(
    tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Arrow reader is a speed-up only: same frame, same lines, same errors."""
    import creditrisk.ingest.read as ingestion

    path = write(tmp_path, text.encode())
    fast = _read_or_error(path)
    monkeypatch.setattr(ingestion, "_arrow_frame", lambda raw, rows, columns: None)
    slow = _read_or_error(path)
    if isinstance(fast, str) or isinstance(slow, str):
        assert fast == slow
    else:
        pd.testing.assert_frame_equal(fast[0], slow[0])
        assert fast[1] == slow[1]


def test_arrow_fast_path_is_taken_for_real_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import creditrisk.ingest.read as ingestion
    from creditrisk.landing.xente_import import import_xente
    from tests.paths import REAL_SAMPLE

    files = import_xente(REAL_SAMPLE, tmp_path / "real").files[:8]
    fast = [read_landing_file(f) for f in files]
    monkeypatch.setattr(ingestion, "_arrow_frame", lambda raw, rows, columns: None)
    for f, (frame, lines) in zip(files, fast, strict=True):
        slow_frame, slow_lines = read_landing_file(f)
        pd.testing.assert_frame_equal(frame, slow_frame)
        assert lines == slow_lines
    # and the fast path really ran on them
    monkeypatch.undo()
    calls: list[int] = []
    real = ingestion._arrow_frame
    monkeypatch.setattr(
        ingestion, "_arrow_frame",
        lambda raw, rows, columns: calls.append(rows) or real(raw, rows, columns)
    )
    frame, lines = read_landing_file(files[0])
    assert calls == [len(lines) - 1] and len(frame) == calls[0]


def test_missing_and_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such landing file"):
        read_landing_file(tmp_path / "xente_2018-11-15.csv")
    with pytest.raises(InputError, match="is a directory"):
        read_landing_file(tmp_path)


def test_days_between() -> None:
    assert days_between(dt.date(2019, 1, 30), dt.date(2019, 2, 2)) == [
        dt.date(2019, 1, 30), dt.date(2019, 1, 31), dt.date(2019, 2, 1), dt.date(2019, 2, 2)
    ]
    assert days_between(dt.date(2019, 1, 1), dt.date(2019, 1, 1)) == [dt.date(2019, 1, 1)]
    with pytest.raises(InputError, match="--to 2019-01-01 is before --from 2019-01-02"):
        days_between(dt.date(2019, 1, 2), dt.date(2019, 1, 1))


# ----------------------------------------------------------------------------- CLI

UNREACHABLE = {"DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/db"}  # test-only secret


@pytest.mark.parametrize(
    ("args", "env", "code", "words"),
    [
        (["--date", "2019-01-01", "--from", "2019-01-01", "--to", "2019-01-02"], UNREACHABLE,
         1, ["either --date or --from/--to"]),
        (["--date", "2019-01-01", "--to", "2019-01-02"], UNREACHABLE, 1,
         ["either --date or --from/--to"]),
        (["--from", "2019-01-05", "--to", "2019-01-01"], UNREACHABLE, 1,
         ["--to 2019-01-01 is before --from 2019-01-05"]),
        (["--date", "2019-02-30"], UNREACHABLE, 1, ["--date", "'2019-02-30'", "YYYY-MM-DD"]),
        (["--from", "yesterday", "--to", "2019-01-01"], UNREACHABLE, 1, ["--from", "yesterday"]),
        (["--from", "2019-01-01", "--to", "13/01/2019"], UNREACHABLE, 1, ["--to", "13/01/2019"]),
        ([], UNREACHABLE, 1, ["give --date DATE or --from DATE --to DATE"]),
        (["--from", "2019-01-01"], UNREACHABLE, 1, ["give --date DATE or --from DATE --to DATE"]),
        (["--date", "2019-01-01", "--threshold", "1.5"], UNREACHABLE, 2, ["--threshold"]),
        (["--date", "2019-01-01", "--bogus"], UNREACHABLE, 2, ["--bogus"]),
        (["--date", "2019-01-01"], {}, 1, ["DATABASE_URL is not set"]),
        (["--date", "2019-01-01", "--landing-dir", "/nonexistent/landing"], UNREACHABLE, 1,
         ["/nonexistent/landing", "landing folder does not exist"]),
    ],
    ids=[
        "date_and_range", "date_and_to", "to_before_from", "impossible_date", "word_date",
        "bad_to", "no_date", "from_without_to", "threshold_over_1", "unknown_option",
        "no_database_url", "missing_landing_dir",
    ],
)
def test_ingest_argument_errors_are_one_line(
    args: list[str], env: dict[str, str], code: int, words: list[str]
) -> None:
    result = run_cli("ingest", *args, env=env)
    assert_one_line_error(result, code, *words)
    assert "pw@" not in result.stderr
    assert result.stdout == ""


def test_unreachable_database_fails_in_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "ingest", "--date", "2019-01-01", "--landing-dir", str(tmp_path), env=UNREACHABLE
    )
    assert_one_line_error(result, 1, "cannot reach the database", "127.0.0.1:1")
    assert "u:pw@" not in result.stderr
