"""0010: loans, repayments and ``loan_performance`` as of any date (days past due, bucket,
matured, bad), and the constraints that keep impossible loans out."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

ISSUE = dt.datetime(2019, 1, 1, 10, tzinfo=dt.UTC)


def _loan(conn: sa.Connection, loan_id: str, *, term: int = 14, installments: int = 2,
          decision: str = "APPROVE", exploration: bool = False) -> None:
    conn.execute(sa.text(
        "INSERT INTO loans (loan_id, customer_id, issued_at, amount, term_days, installments,"
        " decided_by, model_name, model_version, pd_at_issue, decision, risk_band, exploration,"
        " source_file, ingest_run_id) VALUES (:id, 'CustomerId_1', :t, 1000, :term, :n,"
        " 'score:2019-01-01', 'm', '1', 0.1, :d, 'B', :e, 'loans_2019-01-01.csv', 'r')"),
        {"id": loan_id, "t": ISSUE, "term": term, "n": installments, "d": decision,
         "e": exploration})


def _pay(conn: sa.Connection, loan_id: str, k: int, due: dt.date, paid: dt.date) -> None:
    conn.execute(sa.text(
        "INSERT INTO repayments (loan_id, installment, due_date, paid_at, amount, source_file,"
        " ingest_run_id) VALUES (:id, :k, :due, :paid, 500, 'repayments_x.csv', 'r')"),
        {"id": loan_id, "k": k, "due": due,
         "paid": dt.datetime.combine(paid, dt.time(12), tzinfo=dt.UTC)})


def _perf(conn: sa.Connection, as_of: dt.date) -> dict[str, tuple]:
    rows = conn.execute(sa.text(
        "SELECT loan_id, days_past_due, bucket, matured, worst_dpd, bad, bad_date"
        " FROM loan_performance(:d) ORDER BY loan_id"), {"d": as_of}).all()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_loan_performance_buckets_maturity_and_bad(db_url: str) -> None:
    d = dt.date(2019, 1, 1)
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            _loan(conn, "L_paid")   # installments due 2019-01-08 and 2019-01-15
            _pay(conn, "L_paid", 1, d + dt.timedelta(7), d + dt.timedelta(7))
            _pay(conn, "L_paid", 2, d + dt.timedelta(14), d + dt.timedelta(14))
            _loan(conn, "L_late")   # second installment paid 20 days late: never bad
            _pay(conn, "L_late", 1, d + dt.timedelta(7), d + dt.timedelta(7))
            _pay(conn, "L_late", 2, d + dt.timedelta(14), d + dt.timedelta(34))
            _loan(conn, "L_never")  # nothing paid
            _loan(conn, "L_other", term=7, installments=1)
            installments = conn.execute(sa.text(
                "SELECT count(*) FROM loan_installments")).scalar_one()
        assert installments == 7
        with engine.connect() as conn:
            assert _perf(conn, d) == {}  # issued on the day: not before it
            at_20 = _perf(conn, d + dt.timedelta(20))
            at_40 = _perf(conn, d + dt.timedelta(40))
            at_50 = _perf(conn, d + dt.timedelta(50))
            at_150 = _perf(conn, d + dt.timedelta(150))
    finally:
        engine.dispose()
    assert at_20["L_paid"][:2] == (0, "paid")
    assert at_20["L_late"][:2] == (6, "1-30")
    assert at_20["L_never"][:2] == (13, "1-30")  # the oldest unpaid installment counts
    assert at_40["L_late"][:2] == (0, "paid")
    assert at_40["L_never"][:2] == (33, "31-60")
    assert at_40["L_never"][2] is False  # term 14 + grace 30: matures on day 44
    assert at_40["L_never"][4] is True   # but it is bad already (30 days past due)
    assert at_40["L_never"][5] == d + dt.timedelta(37)
    # matured on day 44: worst_dpd counted up to the window's end, bad or not
    assert at_50["L_paid"] == (0, "paid", True, 0, False, None)
    assert at_50["L_late"] == (0, "paid", True, 20, False, None)
    assert at_50["L_never"][2:5] == (True, 37, True)  # Feb 14 - Jan 8
    assert at_50["L_other"][2:5] == (True, 30, True)
    assert at_150["L_never"][:2] == (143, "charged_off")


def test_loan_constraints_refuse_impossible_loans(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    try:
        for kwargs in ({"decision": "DECLINE"}, {"installments": 20}, {"term": 0},
                       {"decision": "MAYBE", "exploration": True}):
            with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
                _loan(conn, "bad", **kwargs)  # type: ignore[arg-type]
        with engine.begin() as conn:
            _loan(conn, "explore", decision="DECLINE", exploration=True)
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            _pay(conn, "no_such_loan", 1, dt.date(2019, 1, 8), dt.date(2019, 1, 8))
        with engine.begin() as conn:
            _pay(conn, "explore", 1, dt.date(2019, 1, 8), dt.date(2019, 1, 8))
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            _pay(conn, "explore", 1, dt.date(2019, 1, 8), dt.date(2019, 1, 9))
    finally:
        engine.dispose()


def test_vintages_count_cumulative_bad_by_month_on_book(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            _loan(conn, "A")
            _loan(conn, "B")
            _pay(conn, "B", 1, dt.date(2019, 1, 8), dt.date(2019, 1, 8))
            _pay(conn, "B", 2, dt.date(2019, 1, 15), dt.date(2019, 1, 15))
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT issue_month, months_on_book, loans, bad, cumulative_bad_rate"
                " FROM loan_vintages('2019-03-15')")).all()
    finally:
        engine.dispose()
    # loan A becomes bad on 2019-02-07 (30 days after its first due date): after month 1
    assert [tuple(r) for r in rows] == [(dt.date(2019, 1, 1), 1, 2, 0, 0.0),
                                        (dt.date(2019, 1, 1), 2, 2, 1, 0.5)]


def test_swap_set_outcomes_give_each_cell_its_realized_bad_rate(db_url: str) -> None:
    """0015: the loans a night's scores decided are counted in that night's swap-set cell
    of their customer; only matured ones enter the bad rate; other nights' loans, and
    loans decided by another version, stay out."""
    d = dt.date(2019, 1, 1)
    score = sa.text(
        "INSERT INTO risk_scores (customer_id, score_date, probability_of_default,"
        " credit_score, risk_band, decision, recommended_limit, recommended_term_days,"
        " model_name, model_version, scored_at, run_id)"
        " VALUES (:c, :d, 0.1, 600, :b, :dec, 1000, 14, 'm', '1', now(), 'r')")
    shadow = sa.text(
        "INSERT INTO shadow_scores (score_date, customer_id, model_name, model_version,"
        " segment, probability_of_default, credit_score, risk_band, decision, scored_at,"
        " run_id) VALUES (:d, :c, 'm', '2', 'scored', 0.3, 500, :b, :dec, now(), 'r')")
    report = sa.text(
        "INSERT INTO swap_set_reports (score_date, model_name, champion_version,"
        " challenger_version, n, n_changed, agreement_rate, n_pd, run_id)"
        " VALUES (:d, 'm', '1', '2', 3, 1, 0.667, 0, 'r')")
    loan = sa.text(
        "INSERT INTO loans (loan_id, customer_id, issued_at, amount, term_days, installments,"
        " decided_by, model_name, model_version, pd_at_issue, decision, risk_band, exploration,"
        " source_file, ingest_run_id) VALUES (:id, :c, :t, 1000, 14, 2, :by, 'm', :v, 0.1,"
        " 'APPROVE', 'A', false, 'loans_x.csv', 'r')")
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            for c, (b1, d1), (b2, d2) in (("C1", ("A", "APPROVE"), ("A", "APPROVE")),
                                          ("C2", ("A", "APPROVE"), ("C", "DECLINE")),
                                          ("C3", ("A", "APPROVE"), ("C", "DECLINE"))):
                conn.execute(score, {"c": c, "d": d, "b": b1, "dec": d1})
                conn.execute(shadow, {"c": c, "d": d, "b": b2, "dec": d2})
            conn.execute(report, {"d": d})
            issued = dt.datetime.combine(d, dt.time(10), tzinfo=dt.UTC)
            for loan_id, c, by, v in (("L1", "C1", "score:2019-01-01", "1"),
                                      ("L2", "C2", "score:2019-01-01", "1"),
                                      ("L3", "C3", "score:2019-01-01", "1"),
                                      ("L4", "C1", "score:2018-12-31", "1"),  # another night
                                      ("L5", "C2", "score:2019-01-01", "9")):  # another version
                conn.execute(loan, {"id": loan_id, "c": c, "t": issued, "by": by, "v": v})
            _pay(conn, "L1", 1, d + dt.timedelta(7), d + dt.timedelta(7))
            _pay(conn, "L1", 2, d + dt.timedelta(14), d + dt.timedelta(14))
            _pay(conn, "L2", 1, d + dt.timedelta(7), d + dt.timedelta(7))
            _pay(conn, "L2", 2, d + dt.timedelta(14), d + dt.timedelta(14))  # L3: never paid
        with engine.connect() as conn:
            def cells(as_of: dt.date) -> dict[tuple, tuple]:
                rows = conn.execute(sa.text(
                    "SELECT from_band, from_decision, to_band, to_decision, customers, loans,"
                    " matured, bad, realized_bad_rate FROM swap_set_outcomes(:d)"
                    " ORDER BY 1, 2, 3, 4"), {"d": as_of}).all()
                return {tuple(r[:4]): tuple(r[4:]) for r in rows}

            early, late = cells(d + dt.timedelta(20)), cells(d + dt.timedelta(60))
    finally:
        engine.dispose()
    assert early == {("A", "APPROVE", "A", "APPROVE"): (1, 1, 0, 0, None),
                     ("A", "APPROVE", "C", "DECLINE"): (2, 2, 0, 0, None)}
    assert late == {("A", "APPROVE", "A", "APPROVE"): (1, 1, 1, 0, 0.0),
                    ("A", "APPROVE", "C", "DECLINE"): (2, 2, 2, 1, 0.5)}
