"""The ingestion gate against a corpus of broken files and bad rows, one per kind.

Every file is built from a clean generated base day (and, for the real-rows check, from
the real Xente sample in ``tests/fixtures``) and loaded with :func:`ingest_file` into a
fresh migrated PostgreSQL. For each kind of bad row the test asserts the exact reasons
(expectation name and column) quarantined on exactly the bad lines, with their raw
content, and that every other row is in ``raw_transactions`` exactly once with its
content; ``ingestion_runs`` holds the counts. Broken files fail naming the file, the
line and the problem, and load nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from creditrisk.errors import InputError
from creditrisk.ingest.load import (
    QuarantineThresholdError,
    ValidationFailedError,
    ingest_day,
    ingest_file,
    ingest_files,
)
from creditrisk.ingest.read import BrokenFileError
from creditrisk.ingest.validate import gx_dir
from creditrisk.landing.simulate import generate_landing
from creditrisk.landing.xente_import import import_xente
from creditrisk.schema import WAREHOUSE_COLUMNS, XENTE_COLUMNS, landing_file_name
from creditrisk.storage.db import make_engine
from creditrisk.storage.transactions import CHANGED_DUPLICATE
from tests.paths import REAL_SAMPLE

DAY1 = dt.date(2019, 1, 15)
DAY2 = dt.date(2019, 1, 16)
HEADER = ",".join(XENTE_COLUMNS)
COL = {name: i for i, name in enumerate(XENTE_COLUMNS)}
REAL_ROWS = 3_969

Rows = list[list[str]]

# ----------------------------------------------------------------------------- reasons


def not_null(col: str) -> str:
    return f"expect_column_values_to_not_be_null({col})"


def regex(col: str) -> str:
    return f"expect_column_values_to_match_regex({col})"


def in_set(col: str) -> str:
    return f"expect_column_values_to_be_in_set({col})"


def unique(col: str) -> str:
    return f"expect_column_values_to_be_unique({col})"


def between(col: str) -> str:
    return f"expect_column_values_to_be_between({col})"


VALUE_GAP = between("_value_amount_gap")
OUTSIDE_DAY = between("_start_epoch")
BAD_TIME = not_null("_start_epoch")

# ----------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Base:
    """Clean data rows (as fields) of two consecutive generated days."""

    day1: Rows
    day2: Rows


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    out = tmp_path_factory.mktemp("base")
    summary = generate_landing(customers=400, days=2, end_date=DAY2, out_dir=out, seed=11)
    days = []
    for path in summary.files:
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines[0] == HEADER
        days.append([ln.split(",") for ln in lines[1:]])
    assert len(days) == 2 and all(len(d) > 200 for d in days)
    return Base(day1=days[0], day2=days[1])


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    path = tmp_path / "landing"
    path.mkdir()
    return path


def copy_rows(rows: Rows) -> Rows:
    return [list(r) for r in rows]


def write_day(landing: Path, day: dt.date, rows: Rows, *, header: str = HEADER) -> Path:
    path = landing / landing_file_name(day)
    path.write_bytes((header + "\n" + "".join(",".join(r) + "\n" for r in rows)).encode())
    return path


def line_of(index: int) -> int:
    """File line of data row ``index`` (the header is line 1)."""
    return index + 2


# ----------------------------------------------------------------------------- queries


def query(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


def typed(fields: list[str]) -> tuple[Any, ...]:
    """A file row as raw_transactions holds it."""
    v = dict(zip(XENTE_COLUMNS, fields, strict=True))
    return (
        v["TransactionId"], v["BatchId"], v["AccountId"], v["SubscriptionId"], v["CustomerId"],
        v["CurrencyCode"], int(v["CountryCode"]), v["ProviderId"], v["ProductId"],
        v["ProductCategory"], v["ChannelId"], Decimal(v["Amount"]), Decimal(v["Value"]),
        dt.datetime.strptime(v["TransactionStartTime"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.UTC
        ),
        int(v["PricingStrategy"]), int(v["FraudResult"]),
    )


def loaded(engine: Engine) -> dict[str, tuple[Any, ...]]:
    """raw_transactions as {transaction_id: the 16 Xente fields, typed}."""
    rows = query(engine, f"SELECT {', '.join(WAREHOUSE_COLUMNS)} FROM raw_transactions")
    out = {r[0]: tuple(r) for r in rows}
    assert len(out) == len(rows)
    return out


def full_table(engine: Engine) -> list[tuple[Any, ...]]:
    """Every column of raw_transactions, including provenance and ingested_at."""
    return [tuple(r) for r in query(engine, "SELECT * FROM raw_transactions ORDER BY 1")]


def quarantine(engine: Engine) -> list[Any]:
    return query(
        engine,
        "SELECT source_file, line_number, transaction_id, raw_row, reasons, run_id "
        "FROM quarantined_transactions ORDER BY source_file, line_number",
    )


def runs(engine: Engine) -> list[Any]:
    return query(
        engine,
        "SELECT run_id, source_file, logical_date, rows_read, rows_loaded, rows_quarantined, "
        "rows_unchanged, gx_success, status, message, timings, started_at, finished_at "
        "FROM ingestion_runs ORDER BY started_at",
    )


def assert_loaded_exactly(engine: Engine, rows: Rows, bad_lines: set[int]) -> None:
    """Every row not on a bad line is loaded once, with its content; no other row is."""
    want = {r[0]: typed(r) for i, r in enumerate(rows) if line_of(i) not in bad_lines}
    assert len(want) == len(rows) - len(bad_lines)
    got = loaded(engine)
    assert got.keys() == want.keys()
    assert got == want


def assert_quarantined_exactly(
    engine: Engine, path: Path, rows: Rows, expected: dict[int, list[str]], run_id: str
) -> None:
    got = quarantine(engine)
    assert [q.line_number for q in got] == sorted(expected)
    for q in got:
        fields = rows[q.line_number - 2]
        assert q.source_file == path.name
        assert q.run_id == run_id
        assert q.raw_row == dict(zip(XENTE_COLUMNS, fields, strict=True))
        assert q.transaction_id == (fields[0] or None)
        assert len(q.reasons) == len(set(q.reasons)), q.reasons
        assert sorted(q.reasons) == sorted(expected[q.line_number]), (q.line_number, q.reasons)


# ----------------------------------------------------------------------------- bad rows

Mutation = Callable[[Rows], dict[int, list[str]]]


def set_field(rows: Rows, index: int, **values: str) -> None:
    for col, value in values.items():
        rows[index][COL[col]] = value


def find(rows: Rows, pred: Callable[[dict[str, str]], bool], skip: int = 0) -> int:
    """Index of the ``skip``-th row (in file order) whose fields satisfy ``pred``."""
    hits = [i for i, r in enumerate(rows) if pred(dict(zip(XENTE_COLUMNS, r, strict=True)))]
    return hits[skip]


def plain(amount: str) -> Callable[[dict[str, str]], bool]:
    """Rows of that Amount with Value == |Amount| (no fee)."""
    return lambda r: r["Amount"] == amount and r["Value"] == amount.lstrip("-")


def m_null_ids(rows: Rows) -> dict[int, list[str]]:
    set_field(rows, 3, TransactionId="")
    set_field(rows, 9, CustomerId="")
    set_field(rows, 15, AccountId="")
    return {line_of(3): [not_null("TransactionId")], line_of(9): [not_null("CustomerId")],
            line_of(15): [not_null("AccountId")]}


def m_bad_id_formats(rows: Rows) -> dict[int, list[str]]:
    bad = {
        "TransactionId": "TransactionId_12a",
        "BatchId": "Batch_55",
        "AccountId": "AccountId_",
        "SubscriptionId": "subscriptionid_7",
        "CustomerId": "CustomerId_-5",
        "ProductId": "ProductId_3 ",
    }
    expected = {}
    for n, (col, value) in enumerate(bad.items()):
        index = 4 + 11 * n
        set_field(rows, index, **{col: value})
        expected[line_of(index)] = [regex(col)]
    return expected


def m_duplicate_id_in_file(rows: Rows) -> dict[int, list[str]]:
    set_field(rows, 40, TransactionId=rows[12][COL["TransactionId"]])
    return {line_of(12): [unique("TransactionId")], line_of(40): [unique("TransactionId")]}


def m_repeated_line_in_file(rows: Rows) -> dict[int, list[str]]:
    rows.append(list(rows[20]))
    return {line_of(20): [unique("TransactionId")],
            line_of(len(rows) - 1): [unique("TransactionId")]}


def single(col: str, value: str, index: int = 17) -> Mutation:
    def mutate(rows: Rows) -> dict[int, list[str]]:
        set_field(rows, index, **{col: value})
        return {line_of(index): [in_set(col)]}

    return mutate


def m_negative_value(rows: Rows) -> dict[int, list[str]]:
    i = find(rows, plain("1000"))
    set_field(rows, i, Value="-1000")
    # Value must be >= 0, and -1000 is also below |Amount|.
    return {line_of(i): [regex("Value"), VALUE_GAP]}


def m_value_below_amount(rows: Rows) -> dict[int, list[str]]:
    i = find(rows, lambda r: r["Amount"].startswith("-") and r["Value"] == r["Amount"][1:])
    amount = Decimal(rows[i][COL["Amount"]])
    set_field(rows, i, Value=str(int(-amount) - 1))
    return {line_of(i): [VALUE_GAP]}


def m_value_far_above_amount(rows: Rows) -> dict[int, list[str]]:
    i = find(rows, plain("1000"), skip=1)
    set_field(rows, i, Value="5000")
    return {line_of(i): [VALUE_GAP]}


def m_amount_three_decimals(rows: Rows) -> dict[int, list[str]]:
    i = find(rows, plain("1000"), skip=2)
    # Value 98766 keeps |Amount| consistent, so the format is the only problem.
    set_field(rows, i, Amount="98765.432", Value="98766")
    return {line_of(i): [regex("Amount")]}


def m_amount_not_numeric(rows: Rows) -> dict[int, list[str]]:
    i, j = find(rows, plain("1000"), skip=3), find(rows, plain("1000"), skip=4)
    set_field(rows, i, Amount="1000UGX")
    set_field(rows, j, Amount="1e3")
    return {line_of(i): [regex("Amount")], line_of(j): [regex("Amount")]}


def m_value_not_numeric(rows: Rows) -> dict[int, list[str]]:
    set_field(rows, 30, Value="12.5.0")
    return {line_of(30): [regex("Value")]}


def m_unparseable_timestamp(rows: Rows) -> dict[int, list[str]]:
    set_field(rows, 25, TransactionStartTime="2019-02-30T10:00:00Z")
    set_field(rows, 26, TransactionStartTime="2019-01-15T24:10:00Z")
    return {line_of(25): [BAD_TIME], line_of(26): [BAD_TIME]}


def m_malformed_timestamp(rows: Rows) -> dict[int, list[str]]:
    set_field(rows, 27, TransactionStartTime="2019-01-15 10:00:00")
    set_field(rows, 28, TransactionStartTime="")
    return {line_of(27): [regex("TransactionStartTime"), BAD_TIME],
            line_of(28): [not_null("TransactionStartTime"), BAD_TIME]}


def m_timestamp_outside_day(rows: Rows) -> dict[int, list[str]]:
    set_field(rows, 5, TransactionStartTime="2019-01-14T23:59:59Z")
    set_field(rows, 6, TransactionStartTime="2019-01-16T00:00:00Z")
    set_field(rows, 7, TransactionStartTime="2018-01-15T10:00:00Z")
    # The day's first and last second are inside it: those rows must load.
    set_field(rows, 8, TransactionStartTime="2019-01-15T00:00:00Z")
    set_field(rows, 9, TransactionStartTime="2019-01-15T23:59:59Z")
    return {line_of(5): [OUTSIDE_DAY], line_of(6): [OUTSIDE_DAY], line_of(7): [OUTSIDE_DAY]}


def m_several_problems(rows: Rows) -> dict[int, list[str]]:
    i = find(rows, plain("1000"), skip=5)
    set_field(rows, i, CurrencyCode="XYZQ", CountryCode="999", FraudResult="2",
              Amount="98765.432", ProductCategory="", ChannelId="ChannelId_9")
    return {line_of(i): [
        in_set("CurrencyCode"), in_set("CountryCode"), in_set("FraudResult"), regex("Amount"),
        not_null("ProductCategory"), in_set("ChannelId"), VALUE_GAP,
    ]}


ROW_CASES: dict[str, Mutation] = {
    "null_ids": m_null_ids,
    "bad_id_formats": m_bad_id_formats,
    "duplicate_transaction_id_in_file": m_duplicate_id_in_file,
    "repeated_line_in_file": m_repeated_line_in_file,
    "bad_category": single("ProductCategory", "groceries"),
    "bad_channel": single("ChannelId", "ChannelId_4"),
    "bad_provider": single("ProviderId", "ProviderId_7"),
    "bad_pricing_strategy": single("PricingStrategy", "3"),
    "currency_not_ugx": single("CurrencyCode", "USD"),
    "country_not_256": single("CountryCode", "254"),
    "fraud_result_2": single("FraudResult", "2"),
    "negative_value": m_negative_value,
    "value_below_abs_amount": m_value_below_amount,
    "value_far_above_abs_amount": m_value_far_above_amount,
    "amount_three_decimals": m_amount_three_decimals,
    "amount_not_numeric": m_amount_not_numeric,
    "value_not_numeric": m_value_not_numeric,
    "unparseable_timestamp": m_unparseable_timestamp,
    "malformed_or_missing_timestamp": m_malformed_timestamp,
    "timestamp_outside_the_day": m_timestamp_outside_day,
    "several_problems_in_one_row": m_several_problems,
}


def test_base_day_is_clean(base: Base, engine: Engine, landing: Path) -> None:
    """The corpus is only meaningful if its base loads whole."""
    path = write_day(landing, DAY1, base.day1)
    result = ingest_file(path, DAY1, engine=engine, run_id="clean", data_docs=False)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (
        len(base.day1), len(base.day1), 0
    )
    assert result.gx_success is True
    assert_loaded_exactly(engine, base.day1, set())
    assert quarantine(engine) == []


@pytest.mark.parametrize("mutate", ROW_CASES.values(), ids=ROW_CASES.keys())
def test_bad_rows_are_quarantined_with_every_reason(
    mutate: Mutation, base: Base, engine: Engine, landing: Path
) -> None:
    rows = copy_rows(base.day1)
    expected = mutate(rows)
    assert expected and len(expected) / len(rows) <= 0.05
    path = write_day(landing, DAY1, rows)

    result = ingest_file(path, DAY1, engine=engine, run_id="run-bad-rows", data_docs=False)

    assert result.status == "succeeded"
    assert result.gx_success is False
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined,
            result.rows_unchanged) == (len(rows), len(rows) - len(expected), len(expected), 0)
    assert_quarantined_exactly(engine, path, rows, expected, "run-bad-rows")
    assert_loaded_exactly(engine, rows, set(expected))
    assert query(engine, "SELECT DISTINCT source_file, ingest_run_id FROM raw_transactions") == [
        (path.name, "run-bad-rows")
    ]
    (run,) = runs(engine)
    assert (run.run_id, run.source_file, run.logical_date, run.status) == (
        "run-bad-rows", path.name, DAY1, "succeeded"
    )
    assert (run.rows_read, run.rows_loaded, run.rows_quarantined, run.rows_unchanged,
            run.gx_success) == (len(rows), len(rows) - len(expected), len(expected), 0, False)
    assert set(run.timings) >= {"read_s", "validate_s", "load_s"}
    assert run.started_at <= run.finished_at


# ----------------------------------------------------------------------------- a run of files


def test_a_run_validates_its_files_once_and_keeps_each_files_checks(
    base: Base, engine: Engine, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One GX validation for the whole run, yet every check stays per file: a day-1 row
    timed on day 2 is outside its day, an id reused by day 2 is a changed duplicate (not a
    uniqueness failure of the batch), and the run stops at the first failing file after
    loading the ones before it."""
    from creditrisk.ingest import load

    calls: list[int] = []
    real = load.validate_files

    def counting(parts: Any, **kwargs: Any) -> Any:
        calls.append(len(parts))
        return real(parts, **kwargs)

    monkeypatch.setattr(load, "validate_files", counting)
    day1, day2 = copy_rows(base.day1), copy_rows(base.day2)
    set_field(day1, 5, TransactionStartTime=f"{DAY2}T10:00:00Z")  # inside the run's range
    reused = day1[7][COL["TransactionId"]]
    set_field(day2, 11, TransactionId=reused)  # valid in its file, already loaded by day 1
    dup = m_duplicate_id_in_file(day2)
    day3 = DAY2 + dt.timedelta(days=1)
    p1, p2 = write_day(landing, DAY1, day1), write_day(landing, DAY2, day2)
    p3 = write_day(landing, day3, [])  # header only: fails the row-count expectation

    with pytest.raises(ValidationFailedError, match="expect_table_row_count_to_be_between"):
        ingest_files([(p1, DAY1), (p2, DAY2), (p3, day3)], engine=engine, run_id="range",
                     data_docs=False)

    assert calls == [3]  # one batch (the empty file is then validated on its own inside)
    got = {(q.source_file, q.line_number): sorted(q.reasons) for q in quarantine(engine)}
    assert got == {(p1.name, line_of(5)): [OUTSIDE_DAY],
                   (p2.name, line_of(11)): [CHANGED_DUPLICATE],
                   **{(p2.name, line): sorted(r) for line, r in dup.items()}}
    assert loaded(engine)[reused] == typed(day1[7])
    assert_loaded_exactly(engine, day1 + day2, {line_of(5)} | {
        line_of(len(day1) + line - 2) for line in (line_of(11), *dup)})
    assert {(r.source_file, r.status) for r in runs(engine)} == {
        (p1.name, "succeeded"), (p2.name, "succeeded"), (p3.name, "failed")}


# ----------------------------------------------------------------------------- already loaded


def test_changed_redelivery_is_quarantined_and_never_overwrites(
    base: Base, engine: Engine, landing: Path
) -> None:
    path = write_day(landing, DAY1, base.day1)
    ingest_file(path, DAY1, engine=engine, run_id="first", data_docs=False)
    before = full_table(engine)

    rows = copy_rows(base.day1)
    i = find(rows, plain("1000"))
    set_field(rows, i, Amount="1500", Value="1500")  # valid on its own, but not what we hold
    write_day(landing, DAY1, rows)
    result = ingest_file(path, DAY1, engine=engine, run_id="second", data_docs=False)

    assert result.gx_success is True and result.status == "succeeded"
    assert (result.rows_loaded, result.rows_unchanged, result.rows_quarantined) == (
        0, len(rows) - 1, 1
    )
    assert_quarantined_exactly(engine, path, rows, {line_of(i): [CHANGED_DUPLICATE]}, "second")
    assert full_table(engine) == before  # the loaded row keeps Amount 1000 and run "first"
    assert loaded(engine)[rows[i][0]][COL["Amount"]] == Decimal("1000")


def test_next_day_file_reusing_a_loaded_id_is_quarantined(
    base: Base, engine: Engine, landing: Path
) -> None:
    ingest_file(write_day(landing, DAY1, base.day1), DAY1, engine=engine, run_id="d1",
                data_docs=False)
    before = full_table(engine)

    day2 = copy_rows(base.day2)
    reused = base.day1[7][COL["TransactionId"]]
    set_field(day2, 11, TransactionId=reused)  # a day-2 row under a day-1 id: other content
    path2 = write_day(landing, DAY2, day2)
    result = ingest_file(path2, DAY2, engine=engine, run_id="d2", data_docs=False)

    assert (result.rows_loaded, result.rows_unchanged, result.rows_quarantined) == (
        len(day2) - 1, 0, 1
    )
    assert_quarantined_exactly(engine, path2, day2, {line_of(11): [CHANGED_DUPLICATE]}, "d2")
    after = full_table(engine)
    assert [r for r in after if r[-1] == "d1"] == before  # day 1 untouched
    assert_loaded_exactly(engine, base.day1 + day2, {line_of(len(base.day1) + 11)})
    assert loaded(engine)[reused] == typed(base.day1[7])


def test_rerun_of_the_same_day_changes_no_row(base: Base, engine: Engine, landing: Path) -> None:
    rows = copy_rows(base.day1)
    several, nulls = m_several_problems(rows), m_null_ids(rows)
    assert not several.keys() & nulls.keys()
    expected = several | nulls
    path = write_day(landing, DAY1, rows)
    first = ingest_file(path, DAY1, engine=engine, run_id="run-a", data_docs=False)
    table = full_table(engine)

    second = ingest_file(path, DAY1, engine=engine, run_id="run-b", data_docs=False)

    assert full_table(engine) == table  # ingested_at and ingest_run_id included
    assert {r[-1] for r in table} == {"run-a"}
    assert first.rows_loaded == len(rows) - len(expected)
    # An identical re-delivery is counted unchanged, never quarantined as a duplicate.
    assert (second.rows_loaded, second.rows_unchanged, second.rows_quarantined) == (
        0, len(rows) - len(expected), len(expected)
    )
    assert_quarantined_exactly(engine, path, rows, expected, "run-b")  # one run's worth
    assert [(r.run_id, r.rows_loaded, r.rows_unchanged, r.rows_quarantined)
            for r in runs(engine)] == [
        ("run-a", len(rows) - len(expected), 0, len(expected)),
        ("run-b", 0, len(rows) - len(expected), len(expected)),
    ]


# ----------------------------------------------------------------------------- threshold


def hundred_rows_with_bad(base: Base, bad: int) -> tuple[Rows, dict[int, list[str]]]:
    rows = copy_rows(base.day1[:100])
    expected = {}
    for i in range(bad):
        set_field(rows, 10 * i + 3, CurrencyCode="KES")
        expected[line_of(10 * i + 3)] = [in_set("CurrencyCode")]
    return rows, expected


def test_exactly_the_threshold_still_loads(base: Base, engine: Engine, landing: Path) -> None:
    rows, expected = hundred_rows_with_bad(base, 5)
    path = write_day(landing, DAY1, rows)
    result = ingest_file(path, DAY1, engine=engine, run_id="at-5pct", data_docs=False)
    assert (result.status, result.rows_loaded, result.rows_quarantined) == ("succeeded", 95, 5)
    assert_loaded_exactly(engine, rows, set(expected))
    assert_quarantined_exactly(engine, path, rows, expected, "at-5pct")


def test_over_the_threshold_fails_after_quarantining(
    base: Base, engine: Engine, landing: Path
) -> None:
    rows, expected = hundred_rows_with_bad(base, 6)
    path = write_day(landing, DAY1, rows)

    with pytest.raises(QuarantineThresholdError) as failed:
        ingest_file(path, DAY1, engine=engine, run_id="over", data_docs=False)

    message = str(failed.value)
    assert path.name in message and "6 of 100" in message and "6.0%" in message
    assert loaded(engine) == {}
    assert_quarantined_exactly(engine, path, rows, expected, "over")
    (run,) = runs(engine)
    assert (run.status, run.rows_read, run.rows_loaded, run.rows_quarantined, run.message) == (
        "failed_threshold", 100, 0, 6, message
    )

    result = ingest_file(path, DAY1, engine=engine, run_id="relaxed", threshold=0.5,
                         data_docs=False)

    assert (result.status, result.rows_loaded, result.rows_quarantined) == ("succeeded", 94, 6)
    assert_loaded_exactly(engine, rows, set(expected))
    assert_quarantined_exactly(engine, path, rows, expected, "relaxed")
    assert [(r.run_id, r.status) for r in runs(engine)] == [
        ("over", "failed_threshold"), ("relaxed", "succeeded")
    ]


def test_changed_duplicates_count_towards_the_threshold(
    base: Base, engine: Engine, landing: Path
) -> None:
    rows = copy_rows(base.day1[:100])
    path = write_day(landing, DAY1, rows)
    ingest_file(path, DAY1, engine=engine, run_id="first", data_docs=False)
    before = full_table(engine)
    changed = copy_rows(rows)
    for i in range(0, 60, 10):
        set_field(changed, i, BatchId=f"BatchId_{900000 + i}")
    write_day(landing, DAY1, changed)
    with pytest.raises(QuarantineThresholdError):
        ingest_file(path, DAY1, engine=engine, run_id="second", data_docs=False)
    assert full_table(engine) == before
    assert [q.reasons for q in quarantine(engine)] == [[CHANGED_DUPLICATE]] * 6


# ----------------------------------------------------------------------------- broken files


@dataclass(frozen=True)
class Broken:
    build: Callable[[Rows], bytes]
    error: type[Exception]
    line: int | None
    problem: str


def text_of(rows: Rows, header: str = HEADER) -> str:
    return header + "\n" + "".join(",".join(r) + "\n" for r in rows)


def _drop_column(rows: Rows, col: str) -> bytes:
    keep = [i for i, c in enumerate(XENTE_COLUMNS) if c != col]
    header = ",".join(XENTE_COLUMNS[i] for i in keep)
    return text_of([[r[i] for i in keep] for r in rows], header).encode()


def _swap_amount_value(rows: Rows) -> bytes:
    order = list(XENTE_COLUMNS)
    a, v = COL["Amount"], COL["Value"]
    order[a], order[v] = order[v], order[a]
    swapped = [[*r[:a], r[v], r[a], *r[v + 1:]] for r in rows]
    return text_of(swapped, ",".join(order)).encode()


def _with_row(rows: Rows, index: int, line: str) -> bytes:
    lines = [",".join(r) for r in rows]
    lines[index] = line
    return (HEADER + "\n" + "\n".join(lines) + "\n").encode()


def _latin1(rows: Rows) -> bytes:
    data = bytearray(text_of(rows).encode())
    target = ",".join(rows[6]).encode()
    pos = data.index(target) + target.index(b"airtime" if b"airtime" in target else b"UGX")
    data[pos:pos + 1] = b"\xe9"  # a latin-1 e-acute where UTF-8 needs two bytes
    return bytes(data)


NOT_UTF8_LINE = 8  # data row 6


BROKEN: dict[str, Broken] = {
    "empty_file": Broken(lambda rows: b"", BrokenFileError, 1, "empty file"),
    "whitespace_only": Broken(lambda rows: b"\n \n", BrokenFileError, 1, "empty file"),
    "header_only": Broken(
        lambda rows: (HEADER + "\n").encode(), ValidationFailedError, None,
        "expect_table_row_count_to_be_between",
    ),
    "missing_column": Broken(
        lambda rows: _drop_column(rows, "FraudResult"), BrokenFileError, 1,
        "wrong header: missing columns ['FraudResult']",
    ),
    "extra_column": Broken(
        lambda rows: text_of([[*r, "x"] for r in rows], HEADER + ",Note").encode(),
        BrokenFileError, 1, "wrong header: unexpected columns ['Note']",
    ),
    "columns_out_of_order": Broken(
        _swap_amount_value, BrokenFileError, 1, "wrong header: columns out of order",
    ),
    "semicolon_delimiter": Broken(
        lambda rows: text_of(rows).replace(",", ";").encode(), BrokenFileError, 1,
        "wrong delimiter ';'",
    ),
    "tab_delimiter": Broken(
        lambda rows: text_of(rows).replace(",", "\t").encode(), BrokenFileError, 1,
        "wrong delimiter '\\t'",
    ),
    "not_utf8": Broken(_latin1, BrokenFileError, NOT_UTF8_LINE, "not valid UTF-8 (byte 0xe9"),
    "utf8_bom": Broken(
        lambda rows: b"\xef\xbb\xbf" + text_of(rows).encode(), BrokenFileError, 1,
        "byte-order mark (BOM)",
    ),
    "no_final_newline": Broken(
        lambda rows: text_of(rows).encode()[:-1], BrokenFileError, -1, "truncated last line",
    ),
    "cut_in_the_middle_of_a_row": Broken(
        lambda rows: text_of(rows).encode()[:-40], BrokenFileError, -1, "truncated last line",
    ),
    "too_few_fields": Broken(
        lambda rows: _with_row(rows, 10, ",".join(rows[10][:-1])), BrokenFileError, 12,
        "too few fields: 15 instead of 16",
    ),
    "too_many_fields": Broken(
        lambda rows: _with_row(rows, 20, ",".join(rows[20]) + ",0"), BrokenFileError, 22,
        "too many fields: 17 instead of 16",
    ),
    "blank_line_inside": Broken(
        lambda rows: _with_row(rows, 30, ""), BrokenFileError, 32,
        "too few fields: 1 instead of 16",
    ),
}


def assert_nothing_loaded_and_failure_recorded(engine: Engine, path: Path, message: str) -> None:
    assert loaded(engine) == {}
    assert quarantine(engine) == []
    (run,) = runs(engine)
    assert (run.source_file, run.logical_date, run.status, run.rows_loaded,
            run.rows_quarantined, run.message) == (path.name, DAY1, "failed", 0, 0, message)


@pytest.mark.parametrize("case", BROKEN.values(), ids=BROKEN.keys())
def test_broken_file_fails_naming_file_line_and_problem(
    case: Broken, base: Base, engine: Engine, landing: Path
) -> None:
    path = landing / landing_file_name(DAY1)
    data = case.build(copy_rows(base.day1))
    path.write_bytes(data)

    with pytest.raises(InputError) as failed:
        ingest_file(path, DAY1, engine=engine, run_id="broken", data_docs=False)

    exc = failed.value
    assert type(exc) is case.error
    message = str(exc)
    assert str(path) in message and case.problem in message, message
    if isinstance(exc, BrokenFileError):
        expected_line = data.count(b"\n") + 1 if case.line == -1 else case.line
        assert (exc.path, exc.line) == (path, expected_line)
        assert message.startswith(f"{path}: line {expected_line}: ")
    assert_nothing_loaded_and_failure_recorded(engine, path, message)
    if isinstance(exc, ValidationFailedError):
        assert runs(engine)[0].gx_success is False


def test_missing_file_and_directory_in_place_of_file(
    db_url: str, engine: Engine, landing: Path
) -> None:
    with pytest.raises(InputError, match=r"xente_2019-01-15\.csv: no such landing file") as e1:
        ingest_day(DAY1, database_url=db_url, landing_dir=landing, run_id="missing",
                   data_docs=False)
    (landing / landing_file_name(DAY1)).mkdir()
    with pytest.raises(InputError, match=r"xente_2019-01-15\.csv: is a directory") as e2:
        ingest_day(DAY1, database_url=db_url, landing_dir=landing, run_id="dir",
                   data_docs=False)
    assert loaded(engine) == {} and quarantine(engine) == []
    assert [(r.run_id, r.status, r.message) for r in runs(engine)] == [
        ("missing", "failed", str(e1.value)), ("dir", "failed", str(e2.value))
    ]
    with pytest.raises(InputError, match="landing folder does not exist"):
        ingest_day(DAY1, database_url=db_url, landing_dir=landing / "nope", run_id="x")


# An unreadable landing file (and folder) is tested in tests/integration/test_faults.py,
# where the real CLI runs as an unprivileged user, so the case runs as root too.


# ----------------------------------------------------------------------------- real rows


def test_real_rows_load_with_nothing_quarantined(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    summary = import_xente(REAL_SAMPLE, tmp_path / "real")
    assert summary.rows == REAL_ROWS

    results = [
        ingest_day(day, database_url=db_url, landing_dir=tmp_path / "real", run_id="real",
                   data_docs=False)
        for day in sorted({dt.date.fromisoformat(p.name[6:16]) for p in summary.files})
    ]

    assert [r["rows_quarantined"] for r in results if r["rows_quarantined"]] == []
    assert sum(int(str(r["rows_loaded"])) for r in results) == REAL_ROWS
    assert quarantine(engine) == []
    source_rows = REAL_SAMPLE.read_text(encoding="utf-8").splitlines()[1:]
    want = {r.split(",")[0]: typed(r.split(",")) for r in source_rows}
    assert loaded(engine) == want
    assert {(r.status, r.gx_success) for r in runs(engine)} == {("succeeded", True)}
    assert len(runs(engine)) == len(summary.files)


# ----------------------------------------------------------------------------- data docs


def test_data_docs_are_linked_and_show_no_row_values(
    base: Base, engine: Engine, landing: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = copy_rows(base.day1)
    expected = m_several_problems(rows)  # currency XYZQ, amount 98765.432, channel ChannelId_9
    set_field(rows, 50, ProductCategory="zqxcategory")
    expected[line_of(50)] = [in_set("ProductCategory")]
    path = write_day(landing, DAY1, rows)

    with caplog.at_level("INFO", logger="creditrisk.ingest.load"):
        result = ingest_file(path, DAY1, engine=engine, run_id="docs", data_docs=True)

    assert result.rows_quarantined == 2 and result.gx_success is False
    assert result.data_docs and result.data_docs.startswith("file://")
    assert f"Data Docs for {path.name}: {result.data_docs}" in caplog.messages  # in the log
    page = Path(result.data_docs.removeprefix("file://"))
    assert page.is_file() and page.suffix == ".html"
    docs_root = gx_dir() / "uncommitted" / "data_docs"
    assert docs_root in page.parents
    assert "raw_transactions" in page.read_text(encoding="utf-8")
    html = [p for p in docs_root.rglob("*") if p.is_file()]
    assert html
    leaks = re.compile(r"XYZQ|98765\.432|zqxcategory|ChannelId_9")
    for doc in html:
        text = doc.read_text(encoding="utf-8", errors="replace")
        assert not leaks.search(text), (doc, leaks.search(text))
    # The stored validation results, too, carry no row value.
    for stored in (gx_dir() / "uncommitted").rglob("*.json"):
        assert not leaks.search(stored.read_text(encoding="utf-8", errors="replace")), stored
    assert json.dumps(result.as_dict())  # plain values, fit for XCom

    # A clean file gets its page too (its suite run is the docs checkpoint alone).
    clean = ingest_file(write_day(landing, DAY2, base.day2), DAY2, engine=engine,
                        run_id="docs", data_docs=True)
    assert clean.gx_success is True and clean.rows_quarantined == 0
    assert clean.data_docs and clean.data_docs != result.data_docs
    assert Path(clean.data_docs.removeprefix("file://")).is_file()


def test_an_edited_suite_is_used_by_the_next_validation(
    base: Base, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GX context is cached per process; editing the suite must still take effect."""
    import shutil

    from creditrisk.ingest.read import read_landing_file
    from creditrisk.ingest.validate import validate_frame

    root = tmp_path / "gx"
    shutil.copytree(gx_dir(), root, ignore=shutil.ignore_patterns("uncommitted"))
    monkeypatch.setenv("CREDITRISK_GX_DIR", str(root))
    rows = copy_rows(base.day1)
    set_field(rows, 4, CurrencyCode="KES")
    frame, _ = read_landing_file(write_day(tmp_path, DAY1, rows))

    before = validate_frame(frame, DAY1, data_docs=False)
    assert before.row_reasons == {line_of(4): [in_set("CurrencyCode")]}

    suite_file = root / "expectations" / "raw_transactions.json"
    suite = json.loads(suite_file.read_text(encoding="utf-8"))
    (currency,) = [e for e in suite["expectations"]
                   if e["type"] == "expect_column_values_to_be_in_set"
                   and e["kwargs"]["column"] == "CurrencyCode"]
    currency["kwargs"]["value_set"].append("KES")
    suite_file.write_text(json.dumps(suite, indent=2), encoding="utf-8")
    stat = suite_file.stat()
    os.utime(suite_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    after = validate_frame(frame, DAY1, data_docs=False)
    assert after.success is True and after.row_reasons == {}
