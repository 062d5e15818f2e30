"""Splitting a real Xente CSV into daily landing files, rows copied byte for byte."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from creditrisk import schema
from creditrisk.errors import InputError
from creditrisk.landing.xente_import import ImportSummary, import_xente
from tests.paths import REAL_SAMPLE

HEADER = ",".join(schema.XENTE_COLUMNS)
TIME = schema.XENTE_COLUMNS.index("TransactionStartTime")


def source_rows() -> list[str]:
    lines = REAL_SAMPLE.read_bytes().decode("utf-8").split("\n")
    assert lines[0].rstrip("\r") == HEADER
    return [line.rstrip("\r") for line in lines[1:] if line.strip()]


def file_rows(path: Path) -> list[str]:
    text = path.read_bytes().decode("utf-8")
    assert text.endswith("\n")
    lines = text[:-1].split("\n")
    assert lines[0] == HEADER
    return lines[1:]


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> ImportSummary:
    return import_xente(REAL_SAMPLE, tmp_path_factory.mktemp("landing"))


def test_real_sample_keeps_every_row(imported: ImportSummary) -> None:
    assert imported.rows == len(source_rows()) == 3969
    assert sum(len(file_rows(f)) for f in imported.files) == 3969
    assert imported.customers == 874
    assert imported.first_day == dt.date(2018, 11, 15)
    assert imported.last_day == dt.date(2019, 2, 13)


def test_each_row_lands_in_the_file_of_its_day(imported: ImportSummary) -> None:
    days = [schema.landing_file_date(f) for f in imported.files]
    assert None not in days
    known = [d for d in days if d is not None]
    assert known == sorted(set(known))
    for f, day in zip(imported.files, known, strict=True):
        for row in file_rows(f):
            assert row.split(",")[TIME][:10] == day.isoformat()


def test_rows_are_byte_identical_and_in_source_order(imported: ImportSummary) -> None:
    by_day: dict[str, list[str]] = {}
    for row in source_rows():
        by_day.setdefault(row.split(",")[TIME][:10], []).append(row)
    assert len(imported.files) == len(by_day)
    for f in imported.files:
        day = schema.landing_file_date(f)
        assert day is not None
        assert file_rows(f) == by_day[day.isoformat()]


def test_decimal_amounts_are_not_reformatted(imported: ImportSummary) -> None:
    text = "".join(f.read_text() for f in imported.files)
    assert ",-236.9,237," in text
    assert ",-67.25,68," in text


def test_crlf_source_gives_the_same_rows(tmp_path: Path) -> None:
    rows = source_rows()[:50]
    src = tmp_path / "crlf.csv"
    src.write_bytes(("\r\n".join([HEADER, *rows]) + "\r\n").encode())
    summary = import_xente(src, tmp_path / "out")
    assert [r for f in summary.files for r in file_rows(f)] == rows


def test_timestamp_with_offset_goes_to_its_utc_day(tmp_path: Path) -> None:
    fields = source_rows()[0].split(",")
    fields[TIME] = "2018-11-16T01:30:00+03:00"
    src = write_csv(tmp_path / "offset.csv", HEADER, [",".join(fields)])
    summary = import_xente(src, tmp_path / "out")
    assert [f.name for f in summary.files] == ["xente_2018-11-15.csv"]
    assert file_rows(summary.files[0]) == [",".join(fields)]


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(InputError, match="nope.csv: no such file"):
        import_xente(missing, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        import_xente(tmp_path, tmp_path / "out")


def test_non_utf8_file_is_an_input_error(tmp_path: Path) -> None:
    src = tmp_path / "latin1.csv"
    src.write_bytes(HEADER.encode() + b"\n" + source_rows()[0].encode() + b"\xe9\n")
    with pytest.raises(InputError, match="line 2: not UTF-8"):
        import_xente(src, tmp_path / "out")


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (HEADER.replace(",BatchId", ""), "missing BatchId"),
        (HEADER + ",Extra", "unexpected Extra"),
        (
            HEADER.replace("BatchId,AccountId", "AccountId,BatchId"),
            "out of order: column 2 is AccountId, expected BatchId",
        ),
        (HEADER.replace("Amount", "amount"), "missing Amount; unexpected amount"),
        (HEADER.replace(",BatchId", ",TransactionId"), "missing BatchId; repeated TransactionId"),
        ("", "line 1: no header"),
    ],
)
def test_bad_header_names_the_problem(tmp_path: Path, header: str, words: str) -> None:
    src = write_csv(tmp_path / "bad.csv", header, source_rows()[:3])
    with pytest.raises(InputError) as err:
        import_xente(src, tmp_path / "out")
    message = str(err.value)
    assert words in message
    assert str(src) in message
    assert "\n" not in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("stamp", ["2018-13-15T02:19:08Z", "2018-11-15T25:00:00Z", "yesterday", ""])
def test_bad_timestamp_names_file_and_line(tmp_path: Path, stamp: str) -> None:
    rows = source_rows()[:5]
    fields = rows[3].split(",")
    fields[TIME] = stamp
    rows[3] = ",".join(fields)
    src = write_csv(tmp_path / "bad.csv", HEADER, rows)
    with pytest.raises(InputError, match=r"bad\.csv: line 5: unparseable TransactionStartTime"):
        import_xente(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_row_with_wrong_field_count_names_the_line(tmp_path: Path) -> None:
    rows = source_rows()[:3]
    rows[1] += ",surplus"
    src = write_csv(tmp_path / "bad.csv", HEADER, rows)
    with pytest.raises(InputError, match="line 3: expected 16 fields, got 17"):
        import_xente(src, tmp_path / "out")


def test_header_only_or_empty_file_is_an_input_error(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "header_only.csv", HEADER, [])
    with pytest.raises(InputError, match="no data rows"):
        import_xente(src, tmp_path / "out")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty.csv: empty file"):
        import_xente(empty, tmp_path / "out")


def test_existing_landing_file_is_refused_unless_overwrite(tmp_path: Path) -> None:
    rows = source_rows()
    src = write_csv(tmp_path / "src.csv", HEADER, rows[:200])
    out = tmp_path / "out"
    first = import_xente(src, out)
    before = {f: f.read_bytes() for f in first.files}
    with pytest.raises(InputError, match="already exists") as err:
        import_xente(src, out)
    assert first.files[0].name in str(err.value)
    assert {f: f.read_bytes() for f in first.files} == before

    src2 = write_csv(tmp_path / "src2.csv", HEADER, rows[:100])
    again = import_xente(src2, out, overwrite=True)
    assert again.rows == 100
    assert sum(len(file_rows(f)) for f in again.files) == 100
