"""Loans and repayments landing files: GX suite, warehouse checks, quarantine with reasons,
idempotent re-runs, the per-file threshold and broken files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from creditrisk.errors import InputError
from creditrisk.ingest.load import QuarantineThresholdError
from creditrisk.ingest.outcomes import ingest_outcome_days
from creditrisk.schema import LOAN_COLUMNS, REPAYMENT_COLUMNS, outcome_file_name
from creditrisk.storage.loans import CHANGED_DUPLICATE
from tests.warehouse import rows

DAY = dt.date(2019, 1, 10)
NEXT = DAY + dt.timedelta(days=1)


def _loan(loan_id: str, **over: str) -> dict[str, str]:
    row = {"loan_id": loan_id, "customer_id": "CustomerId_7", "issued_at": "2019-01-10T09:00:00Z",
           "amount": "5000", "term_days": "14", "installments": "2",
           "decided_by": "score:2019-01-10", "model_name": "credit-risk-pd",
           "model_version": "3", "pd_at_issue": "0.12", "decision": "APPROVE",
           "risk_band": "B", "exploration": "false"}
    row.update(over)
    return row


def _pay(loan_id: str, k: str, due: str, paid: str, amount: str = "2500") -> dict[str, str]:
    return {"loan_id": loan_id, "installment": k, "due_date": due, "paid_at": paid,
            "amount": amount}


def _write(folder: Path, kind: str, day: dt.date, records: list[dict[str, str]]) -> None:
    cols = LOAN_COLUMNS if kind == "loans" else REPAYMENT_COLUMNS
    body = "".join(",".join(r[c] for c in cols) + "\n" for r in records)
    (folder / outcome_file_name(kind, day)).write_text(",".join(cols) + "\n" + body)


def _failed_expectations(page: str) -> list[tuple[str, str]]:
    """(column, rendered expectation) of each row a Data Docs page marks failed."""
    import html
    import re

    def text(fragment: str) -> str:
        return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split()).replace(
            " .", ".")

    failed = []
    for section in re.split(r'<div id="section-\d+" ', page)[1:]:
        heading = re.search(r"<h5[^>]*>(.*?)</h5>", section, re.S)
        for row in re.findall(r"<tr>(.*?)</tr>", section, re.S):
            if "fa-times text-danger" in row:
                cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
                failed.append((text(heading.group(1)) if heading else "", text(cells[1])))
    return failed


def _run(url: str, folder: Path, days: list[dt.date], run: str, threshold: float = 0.5
         ) -> list[dict[str, object]]:
    return ingest_outcome_days(days, database_url=url, landing_dir=folder, run_id=run,
                               threshold=threshold)


def test_good_rows_load_bad_rows_are_quarantined_with_reasons_and_reruns_change_nothing(
    db_url: str, tmp_path: Path,
) -> None:
    loans = [_loan(f"L{i}") for i in range(1, 9)]
    loans.append(_loan("L_neg", amount="-5"))                     # negative amount
    loans.append(_loan("L_dup"))
    loans.append(_loan("L_dup", amount="7000"))                   # duplicate id in the file
    loans.append(_loan("L_declined", decision="DECLINE"))         # declined, not exploration
    loans.append(_loan("L_explore", decision="DECLINE", exploration="true", amount="500"))
    _write(tmp_path, "loans", DAY, loans)
    pays = [_pay(f"L{i}", "1", "2019-01-17", "2019-01-10T18:00:00Z") for i in range(1, 7)]
    pays.append(_pay("L_nope", "1", "2019-01-17", "2019-01-10T18:00:00Z"))   # unknown loan
    pays.append(_pay("L7", "1", "2019-01-17", "2019-01-10T08:00:00Z"))       # before issue
    pays.append(_pay("L8", "3", "2019-01-24", "2019-01-10T18:00:00Z"))       # beyond schedule
    pays.append(_pay("L1", "1", "2019-01-17", "2019-01-10T19:00:00Z"))       # duplicate installment
    _write(tmp_path, "repayments", DAY, pays)
    first = _run(db_url, tmp_path, [DAY], "run-1")
    assert [(r["kind"], r["rows_read"], r["rows_loaded"], r["rows_quarantined"])
            for r in first] == [("loans", 13, 9, 4), ("repayments", 10, 5, 5)]
    got = {(k, lid): set(json.loads(r) if isinstance(r, str) else r) for k, lid, r in rows(
        db_url, "SELECT kind, loan_id, reasons FROM quarantined_outcomes")}
    assert any("_amount" in x for x in got[("loans", "L_neg")])
    assert any("_file_loan_id" in x for x in got[("loans", "L_dup")])
    assert any("_unexplained_decision" in x for x in got[("loans", "L_declined")])
    assert got[("repayments", "L_nope")] == {"unknown_loan: loan_id is not in loans"}
    assert {x.split(":")[0] for x in got[("repayments", "L7")]} == {"paid_before_issue"}
    assert {x.split(":")[0] for x in got[("repayments", "L8")]} == {
        "installment_beyond_schedule"}
    assert any("_file_installment" in x for x in got[("repayments", "L1")])
    assert rows(db_url, "SELECT count(*) FROM loans WHERE loan_id = 'L_explore'") == [(1,)]

    again = _run(db_url, tmp_path, [DAY], "run-2")
    assert [(r["rows_loaded"], r["rows_unchanged"], r["rows_quarantined"]) for r in again] == [
        (0, 9, 4), (0, 5, 5)]
    assert rows(db_url, "SELECT count(*) FROM loans") == [(9,)]
    assert rows(db_url, "SELECT count(*) FROM repayments") == [(5,)]
    assert rows(db_url, "SELECT count(*) FROM quarantined_outcomes") == [(9,)]
    assert rows(db_url, "SELECT status, count(*) FROM ingestion_runs GROUP BY 1") == [
        ("succeeded", 4)]

    # a re-delivered installment with other content is quarantined, never overwritten
    _write(tmp_path, "loans", NEXT, [])
    _write(tmp_path, "repayments", NEXT,
           [_pay("L2", "1", "2019-01-17", "2019-01-11T10:00:00Z", amount="9999"),
            _pay("L2", "2", "2019-01-24", "2019-01-11T10:00:00Z")])
    third = _run(db_url, tmp_path, [NEXT], "run-3")
    assert [(r["rows_loaded"], r["rows_quarantined"]) for r in third] == [(0, 0), (1, 1)]
    assert rows(db_url, "SELECT reasons FROM quarantined_outcomes WHERE source_file = :f",
                f=outcome_file_name("repayments", NEXT))[0][0][0].startswith(
        "duplicate_installment")


def test_over_the_threshold_quarantines_and_loads_nothing(db_url: str, tmp_path: Path) -> None:
    _write(tmp_path, "loans", DAY, [_loan("L1"), _loan("L2", term_days="0")])
    with pytest.raises(QuarantineThresholdError, match="threshold"):
        _run(db_url, tmp_path, [DAY], "run-t", threshold=0.05)
    assert rows(db_url, "SELECT count(*) FROM loans") == [(0,)]
    assert rows(db_url, "SELECT status FROM ingestion_runs") == [("failed_threshold",)]
    assert rows(db_url, "SELECT count(*) FROM quarantined_outcomes") == [(1,)]


def test_broken_and_missing_files_fail_and_are_recorded(db_url: str, tmp_path: Path) -> None:
    (tmp_path / outcome_file_name("loans", DAY)).write_text("loan_id;customer_id\n")
    with pytest.raises(InputError, match="wrong delimiter"):
        _run(db_url, tmp_path, [DAY], "run-b")
    with pytest.raises(InputError, match="no such landing file"):
        _run(db_url, tmp_path, [NEXT], "run-m")
    assert sorted(r[0] for r in rows(db_url, "SELECT status FROM ingestion_runs")) == [
        "failed", "failed"]


def test_a_loans_day_with_a_bad_row_gets_a_data_docs_page_of_the_loans_suite(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    from creditrisk.ingest.validate import gx_dir

    _write(tmp_path, "loans", DAY, [_loan("L1"), _loan("L2"), _loan("L_neg", amount="-5")])
    _write(tmp_path, "repayments", DAY,
           [_pay("L1", "1", "2019-01-17", "2019-01-10T18:00:00Z")])
    with caplog.at_level("INFO", logger="creditrisk.ingest.load"):
        loans, pays = _run(db_url, tmp_path, [DAY], "run-docs")
    assert (loans["rows_quarantined"], loans["gx_success"]) == (1, False)
    page = Path(str(loans["data_docs"]).removeprefix("file://"))
    assert page.is_file() and page.suffix == ".html"
    assert gx_dir() / "uncommitted" / "data_docs" in page.parents
    assert f"Data Docs for {outcome_file_name('loans', DAY)}: {loans['data_docs']}" in (
        caplog.messages)
    html = page.read_text(encoding="utf-8")
    assert 'href="../../../../expectations/loans.html" >loans</a>' in html  # the loans suite
    # the one failed expectation, under its column: the negative amount's range check
    assert _failed_expectations(html) == [
        ("_amount", "values must be greater than 0.0 and less than or equal to 100000000.0.")]
    # each kind has its own page; the clean repayments file's says so
    assert pays["gx_success"] is True and pays["data_docs"] not in (None, loans["data_docs"])
    assert Path(str(pays["data_docs"]).removeprefix("file://")).is_file()


def test_a_range_is_validated_per_kind_as_one_batch_and_each_row_keeps_its_file(
    db_url: str, tmp_path: Path,
) -> None:
    _write(tmp_path, "loans", DAY, [_loan("L1"), _loan("L2")])
    _write(tmp_path, "repayments", DAY, [])
    nxt = "2019-01-11T09:00:00Z"
    # L1 again in the next day's file, with other content: the two files are one batch,
    # yet the first L1 is no duplicate (uniqueness is per file) and the second is the
    # warehouse's to judge; L3 twice within the file; L4 issued on the day before its file's
    _write(tmp_path, "loans", NEXT, [_loan("L1", issued_at=nxt), _loan("L3", issued_at=nxt),
                                     _loan("L3", issued_at=nxt, amount="6000"),
                                     _loan("L4", issued_at="2019-01-10T09:00:00Z")])
    _write(tmp_path, "repayments", NEXT, [_pay("L2", "1", "2019-01-17", nxt)])
    out = _run(db_url, tmp_path, [DAY, NEXT], "run-range", threshold=1.0)
    assert [(r["kind"], r["rows_loaded"], r["rows_unchanged"], r["rows_quarantined"])
            for r in out] == [("loans", 2, 0, 0), ("repayments", 0, 0, 0),
                              ("loans", 0, 0, 4), ("repayments", 1, 0, 0)]
    # one page per kind for the run, shared by its files of that kind; none for an empty file
    assert out[0]["data_docs"] and out[0]["data_docs"] == out[2]["data_docs"]
    assert out[1]["data_docs"] is None and out[3]["data_docs"] not in (None, out[0]["data_docs"])
    got = {(line, lid): sorted(r) for line, lid, r in rows(
        db_url, "SELECT line_number, loan_id, reasons FROM quarantined_outcomes"
                " WHERE source_file = :f", f=outcome_file_name("loans", NEXT))}
    assert got == {
        (2, "L1"): [CHANGED_DUPLICATE["loans"]],
        (3, "L3"): ["expect_column_values_to_be_unique(_file_loan_id)"],
        (4, "L3"): ["expect_column_values_to_be_unique(_file_loan_id)"],
        (5, "L4"): ["expect_column_values_to_be_between(_issued_epoch)"]}
