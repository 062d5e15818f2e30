"""The outcome loop: loans, repayments, their quarantine, loan performance and the backtest.

Revision ID: 0010_outcome_loop
Revises: 0009_reader_role
Create Date: 2026-12-05

* ``loans``: one row per loan issued at a checkout, with what decided it (the request
  id or score date, model name and version, PD at issue, decision, band) and whether it
  was an exploration loan (a REVIEW/DECLINE customer given a small limit on purpose).
* ``repayments``: one row per installment paid (a payment, never a schedule row, so a
  loaded row never changes); unique per (loan, installment).
* ``quarantined_outcomes``: bad rows of the loans and repayments landing files, as
  received, with every reason (the ``quarantined_transactions`` pattern, one table for
  both kinds). Their runs are ``ingestion_runs`` rows like the transaction files'.
* ``loan_installments`` (view): each loan's schedule, installment ``k`` of ``n`` due
  ``ceil(k * term_days / n)`` days after the issue day, for ``amount / n``.
* ``loan_performance(as_of, grace_days, charge_off_days, bad_dpd)``: each loan issued
  before ``as_of`` as known at the start of that day (payments strictly before it): days
  past due, bucket, matured, worst days past due within term + grace, and bad.
* ``outcome_backtest``: per check date, model version and risk band, the realized bad
  rate of the loans matured by then against their mean PD at issue, with a Jeffreys
  interval (written by ``creditrisk backtest`` and the ``ingest_loans`` DAG; the
  interval needs a beta quantile, so Python computes it).
* ``loan_vintages(as_of)``: per issue month and month on book, the cumulative bad rate.

The reader role reads all of it through 0009's default privileges.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0010_outcome_loop"
down_revision: str | None = "0009_reader_role"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
MONEY = sa.Numeric(18, 2)
DECISIONS = "('APPROVE', 'REVIEW', 'DECLINE')"


def _loaded_from() -> list[sa.Column]:
    return [
        sa.Column("source_file", sa.Text, nullable=False,
                  comment="Landing file the row was loaded from"),
        sa.Column("ingested_at", TZ, nullable=False, server_default=sa.func.now(),
                  comment="When the row was loaded"),
        sa.Column("ingest_run_id", sa.Text, nullable=False,
                  comment="Ingestion run (Airflow run id or CLI run id) that loaded the row"),
    ]


INSTALLMENTS_VIEW = """
    CREATE VIEW loan_installments AS
    SELECT l.loan_id, l.customer_id, k.installment,
           (l.issued_at AT TIME ZONE 'UTC')::date
             + ceil(k.installment * l.term_days::numeric / l.installments)::int AS due_date,
           round(l.amount / l.installments, 2) AS amount_due
    FROM loans l
    CROSS JOIN LATERAL generate_series(1, l.installments::int) AS k(installment)
"""

INSTALLMENTS_COMMENTS = {
    "loan_id": "The loan",
    "customer_id": "The borrower (Xente CustomerId)",
    "installment": "Installment number, 1 .. loans.installments",
    "due_date": "UTC day the installment is due: issue day + ceil(k * term_days / installments)",
    "amount_due": "Share of the loan amount due in the installment (UGX)",
}

PERFORMANCE_FUNCTION = """
    CREATE FUNCTION loan_performance(as_of date, grace_days int DEFAULT 30,
                                     charge_off_days int DEFAULT 90, bad_dpd int DEFAULT 30)
    RETURNS TABLE (loan_id text, customer_id text, issue_date date, as_of_date date,
                   amount numeric, term_days smallint, maturity_date date,
                   pd_at_issue double precision, risk_band text, decision text,
                   exploration boolean, model_version text, installments_paid bigint,
                   days_past_due int, bucket text, matured boolean, worst_dpd int,
                   bad boolean, bad_date date)
    LANGUAGE sql STABLE AS $$
    WITH inst AS (
        SELECT i.loan_id, i.due_date,
               (SELECT (r.paid_at AT TIME ZONE 'UTC')::date FROM repayments r
                 WHERE r.loan_id = i.loan_id AND r.installment = i.installment
                   AND r.paid_at < as_of::timestamp AT TIME ZONE 'UTC') AS paid_date
        FROM loan_installments i
    ), loan AS (
        SELECT l.*, (l.issued_at AT TIME ZONE 'UTC')::date AS issue_day,
               (l.issued_at AT TIME ZONE 'UTC')::date + l.term_days + grace_days AS window_end
        FROM loans l
        WHERE l.issued_at < as_of::timestamp AT TIME ZONE 'UTC'
    ), per_loan AS (
        SELECT l.loan_id,
               count(i.paid_date) AS paid,
               count(*) AS n,
               coalesce(max(as_of - i.due_date) FILTER (
                   WHERE i.paid_date IS NULL AND i.due_date < as_of), 0) AS dpd,
               max(GREATEST(0, LEAST(coalesce(i.paid_date, LEAST(as_of, l.window_end)),
                                     LEAST(as_of, l.window_end)) - i.due_date)) AS worst,
               min(i.due_date + bad_dpd) FILTER (
                   WHERE coalesce(i.paid_date, LEAST(as_of, l.window_end)) - i.due_date
                         >= bad_dpd
                     AND i.due_date + bad_dpd <= LEAST(as_of, l.window_end)) AS bad_on
        FROM loan l JOIN inst i USING (loan_id)
        GROUP BY l.loan_id
    )
    SELECT l.loan_id, l.customer_id, l.issue_day, as_of, l.amount, l.term_days,
           l.issue_day + l.term_days, l.pd_at_issue, l.risk_band, l.decision, l.exploration,
           l.model_version, p.paid, p.dpd,
           CASE WHEN p.paid = p.n THEN 'paid'
                WHEN p.dpd > charge_off_days THEN 'charged_off'
                WHEN p.dpd > 60 THEN '60+'
                WHEN p.dpd > 30 THEN '31-60'
                WHEN p.dpd > 0 THEN '1-30'
                ELSE 'current' END,
           as_of >= l.window_end, p.worst, p.bad_on IS NOT NULL, p.bad_on
    FROM loan l JOIN per_loan p USING (loan_id)
    $$
"""

PERFORMANCE_DOC = (
    "Each loan issued before as_of, as known at the start of that UTC day (payments strictly "
    "before it): days_past_due (oldest unpaid installment due before as_of), bucket (current, "
    "1-30, 31-60, 60+, paid, charged_off after charge_off_days), matured (as_of >= issue day "
    "+ term + grace_days: the outcome window is closed), worst_dpd within term + grace, bad "
    "(bad_dpd or more days past due within term + grace) and bad_date (when it became bad)"
)

VINTAGES_FUNCTION = """
    CREATE FUNCTION loan_vintages(as_of date, grace_days int DEFAULT 30, bad_dpd int DEFAULT 30)
    RETURNS TABLE (issue_month date, months_on_book int, loans bigint, bad bigint,
                   cumulative_bad_rate double precision)
    LANGUAGE sql STABLE AS $$
    WITH p AS (
        SELECT date_trunc('month', issue_date)::date AS issue_month, issue_date, bad_date
        FROM loan_performance(as_of, grace_days, 90, bad_dpd)
    ), mob AS (
        SELECT p.issue_month, m.mob, p.bad_date, p.issue_date
        FROM p CROSS JOIN LATERAL generate_series(1, 12) AS m(mob)
        WHERE (p.issue_date + make_interval(months => m.mob))::date <= as_of
    )
    SELECT issue_month, mob, count(*),
           count(*) FILTER (WHERE bad_date <= (issue_date + make_interval(months => mob))::date),
           (count(*) FILTER (WHERE bad_date <= (issue_date + make_interval(months => mob))::date)
            )::double precision / count(*)
    FROM mob GROUP BY issue_month, mob ORDER BY issue_month, mob
    $$
"""

VINTAGES_DOC = (
    "Per issue month and month on book (1-12): the loans of the month observed that long "
    "by as_of, how many were bad (bad_dpd days past due) by then, and the cumulative bad rate"
)


def _loans_table() -> None:
    op.create_table(
        "loans",
        sa.Column("loan_id", sa.Text, primary_key=True, comment="Lender's loan id"),
        sa.Column("customer_id", sa.Text, nullable=False,
                  comment="Xente CustomerId of the borrower"),
        sa.Column("issued_at", TZ, nullable=False, comment="When the loan was issued (UTC)"),
        sa.Column("amount", MONEY, nullable=False, comment="Principal lent (UGX)"),
        sa.Column("term_days", sa.SmallInteger, nullable=False,
                  comment="Days from issue to the last installment's due date"),
        sa.Column("installments", sa.SmallInteger, nullable=False, server_default="1",
                  comment="Equal installments; k of n is due ceil(k * term_days / n) days "
                          "after the issue day"),
        sa.Column("decided_by", sa.Text, nullable=False,
                  comment="What decided it: the API request id, or score:YYYY-MM-DD for "
                          "the nightly risk_scores of that date"),
        sa.Column("model_name", sa.Text, nullable=True,
                  comment="Registered model that gave the PD (null: no PD, policy answer)"),
        sa.Column("model_version", sa.Text, nullable=True, comment="Its version"),
        sa.Column("pd_at_issue", sa.Float, nullable=True,
                  comment="The PD the decision used (null for a dormant or thin-file answer)"),
        sa.Column("decision", sa.Text, nullable=False,
                  comment="APPROVE, REVIEW or DECLINE, as decided at issue"),
        sa.Column("risk_band", sa.Text, nullable=True,
                  comment="Risk band at issue: A-E, or DORMANT / THIN_FILE (no PD)"),
        sa.Column("exploration", sa.Boolean, nullable=False, server_default=sa.false(),
                  comment="True: a REVIEW/DECLINE customer given a small limit at random "
                          "(the exploration share), so outcomes exist where the model rejects"),
        *_loaded_from(),
        sa.CheckConstraint("amount > 0", name="ck_loans_amount_positive"),
        sa.CheckConstraint("term_days BETWEEN 1 AND 365", name="ck_loans_term"),
        sa.CheckConstraint("installments BETWEEN 1 AND term_days", name="ck_loans_installments"),
        sa.CheckConstraint(f"decision IN {DECISIONS}", name="ck_loans_decision"),
        sa.CheckConstraint("pd_at_issue IS NULL OR pd_at_issue BETWEEN 0 AND 1",
                           name="ck_loans_pd"),
        sa.CheckConstraint("exploration OR decision = 'APPROVE'", name="ck_loans_exploration"),
        comment="Loans issued at checkout, with the decision behind each (the outcome loop)",
    )
    op.create_index("ix_loans_customer_issued", "loans", ["customer_id", "issued_at"])
    op.create_index("ix_loans_issued", "loans", ["issued_at"])


def _repayments_table() -> None:
    op.create_table(
        "repayments",
        sa.Column("loan_id", sa.Text, sa.ForeignKey("loans.loan_id", name="fk_repayments_loan"),
                  nullable=False, comment="The loan repaid"),
        sa.Column("installment", sa.SmallInteger, nullable=False,
                  comment="Installment number paid, 1 .. loans.installments"),
        sa.Column("due_date", sa.Date, nullable=False,
                  comment="UTC day the installment was due (the loan's schedule)"),
        sa.Column("paid_at", TZ, nullable=False, comment="When it was paid (UTC)"),
        sa.Column("amount", MONEY, nullable=False, comment="Amount paid (UGX)"),
        *_loaded_from(),
        sa.PrimaryKeyConstraint("loan_id", "installment", name="pk_repayments"),
        sa.CheckConstraint("amount > 0", name="ck_repayments_amount_positive"),
        sa.CheckConstraint("installment >= 1", name="ck_repayments_installment"),
        comment="Installments paid, one row per (loan, installment); unpaid ones have no row",
    )
    op.create_index("ix_repayments_paid", "repayments", ["paid_at"])


def _quarantine_table() -> None:
    op.create_table(
        "quarantined_outcomes",
        sa.Column("quarantine_id", sa.BigInteger, sa.Identity(), primary_key=True,
                  comment="Surrogate key"),
        sa.Column("kind", sa.Text, nullable=False, comment="loans or repayments"),
        sa.Column("loan_id", sa.Text, nullable=True,
                  comment="loan_id as received, when the row had one"),
        sa.Column("raw_row", pg.JSONB, nullable=False,
                  comment="The row exactly as received, column name to raw text"),
        sa.Column("source_file", sa.Text, nullable=False, comment="Landing file of the row"),
        sa.Column("line_number", sa.Integer, nullable=False,
                  comment="1-based line in the file (the header is line 1)"),
        sa.Column("reasons", pg.JSONB, nullable=False,
                  comment="Every failed expectation or check, as a list of strings"),
        sa.Column("run_id", sa.Text, nullable=False, comment="Ingestion run that quarantined it"),
        sa.Column("quarantined_at", TZ, nullable=False, server_default=sa.func.now(),
                  comment="When the row was quarantined"),
        sa.CheckConstraint("kind IN ('loans', 'repayments')", name="ck_quarantined_outcomes_kind"),
        comment="Loan and repayment rows that failed validation, kept with their reasons",
    )
    op.create_index("ix_quarantined_outcomes_file_line", "quarantined_outcomes",
                    ["source_file", "line_number"])


def _backtest_table() -> None:
    op.create_table(
        "outcome_backtest",
        sa.Column("as_of_date", sa.Date, nullable=False,
                  comment="Check date: loans matured by the start of this UTC day"),
        sa.Column("model_version", sa.Text, nullable=False,
                  comment="Model version whose PD decided the loans ('none': no version)"),
        sa.Column("risk_band", sa.Text, nullable=False, comment="Risk band at issue"),
        sa.Column("loans", sa.Integer, nullable=False, comment="Matured loans of the band"),
        sa.Column("bad", sa.Integer, nullable=False, comment="Of which bad"),
        sa.Column("realized_bad_rate", sa.Float, nullable=False, comment="bad / loans"),
        sa.Column("mean_pd", sa.Float, nullable=True,
                  comment="Mean PD at issue of those loans (null: none carried a PD)"),
        sa.Column("interval_lo", sa.Float, nullable=False,
                  comment="Jeffreys 95% interval of the realized bad rate: lower bound"),
        sa.Column("interval_hi", sa.Float, nullable=False, comment="Its upper bound"),
        sa.Column("within_interval", sa.Boolean, nullable=True,
                  comment="mean_pd inside the interval (false: the band alerts)"),
        sa.Column("exploration_loans", sa.Integer, nullable=False, server_default="0",
                  comment="Of the loans, how many were exploration loans"),
        sa.Column("computed_at", TZ, nullable=False, server_default=sa.func.now(),
                  comment="When the row was computed"),
        sa.Column("run_id", sa.Text, nullable=False, comment="Run that wrote the row"),
        sa.PrimaryKeyConstraint("as_of_date", "model_version", "risk_band",
                                name="pk_outcome_backtest"),
        sa.CheckConstraint("bad BETWEEN 0 AND loans", name="ck_outcome_backtest_counts"),
        comment="Per check date, model version and band: realized bad rate of matured loans vs "
                "mean PD at issue",
    )


def upgrade() -> None:
    _loans_table()
    _repayments_table()
    _quarantine_table()
    _backtest_table()
    op.execute(INSTALLMENTS_VIEW)
    op.execute("COMMENT ON VIEW loan_installments IS 'Each loan''s installment schedule'")
    for column, doc in INSTALLMENTS_COMMENTS.items():
        op.execute(f"COMMENT ON COLUMN loan_installments.{column} IS '{doc}'")
    op.execute(PERFORMANCE_FUNCTION)
    op.execute(f"COMMENT ON FUNCTION loan_performance(date, int, int, int) IS '{PERFORMANCE_DOC}'")
    op.execute(VINTAGES_FUNCTION)
    op.execute(f"COMMENT ON FUNCTION loan_vintages(date, int, int) IS '{VINTAGES_DOC}'")
    op.execute("COMMENT ON COLUMN ingestion_runs.source_file IS 'Landing file validated "
               "(xente_, loans_ or repayments_YYYY-MM-DD.csv)'")


def downgrade() -> None:
    op.execute("COMMENT ON COLUMN ingestion_runs.source_file IS 'Landing file validated'")
    op.execute("DELETE FROM ingestion_runs WHERE source_file LIKE 'loans\\_%'"
               " OR source_file LIKE 'repayments\\_%'")
    op.execute("DROP FUNCTION loan_vintages(date, int, int)")
    op.execute("DROP FUNCTION loan_performance(date, int, int, int)")
    op.execute("DROP VIEW loan_installments")
    op.drop_table("outcome_backtest")
    op.drop_table("quarantined_outcomes")
    op.drop_table("repayments")
    op.drop_table("loans")
