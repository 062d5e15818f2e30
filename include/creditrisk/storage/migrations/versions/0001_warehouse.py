"""Warehouse schema: raw and quarantined transactions, ingestion runs, features, labels,
risk scores (with the latest_risk_scores view) and score monitoring.

Revision ID: 0001_warehouse
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0001_warehouse"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
MONEY = sa.Numeric(18, 2)


def _run_id(comment: str) -> sa.Column:
    return sa.Column("run_id", sa.Text, nullable=False, comment=comment)


def upgrade() -> None:
    op.create_table(
        "raw_transactions",
        sa.Column("transaction_id", sa.Text, primary_key=True,
                  comment="Xente TransactionId, unique per transaction"),
        sa.Column("batch_id", sa.Text, nullable=False, comment="Xente BatchId"),
        sa.Column("account_id", sa.Text, nullable=False,
                  comment="Xente AccountId (AccountId_4841 is the platform's counter-account)"),
        sa.Column("subscription_id", sa.Text, nullable=False, comment="Xente SubscriptionId"),
        sa.Column("customer_id", sa.Text, nullable=False,
                  comment="Xente CustomerId: the unit that is scored"),
        sa.Column("currency_code", sa.Text, nullable=False, comment="ISO currency, always UGX"),
        sa.Column("country_code", sa.SmallInteger, nullable=False,
                  comment="Country calling code, always 256"),
        sa.Column("provider_id", sa.Text, nullable=False, comment="Source provider of the item"),
        sa.Column("product_id", sa.Text, nullable=False, comment="Item bought"),
        sa.Column("product_category", sa.Text, nullable=False, comment="Category of the item"),
        sa.Column("channel_id", sa.Text, nullable=False,
                  comment="web, Android, iOS, pay later or checkout"),
        sa.Column("amount", MONEY, nullable=False,
                  comment="Signed UGX: positive debits the customer, negative credits them"),
        sa.Column("value", MONEY, nullable=False,
                  comment="Absolute value of the amount in UGX (may include fees)"),
        sa.Column("transaction_start_time", TZ, nullable=False,
                  comment="When the transaction started (UTC)"),
        sa.Column("pricing_strategy", sa.SmallInteger, nullable=False,
                  comment="Xente pricing structure category (0, 1, 2, 4)"),
        sa.Column("fraud_result", sa.SmallInteger, nullable=False,
                  comment="1 = confirmed fraud, 0 = not"),
        sa.Column("source_file", sa.Text, nullable=False,
                  comment="Landing file the row was loaded from"),
        sa.Column("ingested_at", TZ, nullable=False, server_default=sa.func.now(),
                  comment="When the row was loaded"),
        sa.Column("ingest_run_id", sa.Text, nullable=False,
                  comment="Ingestion run (Airflow run id or CLI run id) that loaded the row"),
        sa.CheckConstraint("fraud_result IN (0, 1)", name="ck_raw_fraud_result"),
        sa.CheckConstraint("value >= 0", name="ck_raw_value_nonneg"),
        comment="Validated Xente transactions, one row per transaction_id",
    )
    op.create_index(
        "ix_raw_transactions_customer_time",
        "raw_transactions",
        ["customer_id", "transaction_start_time"],
    )
    op.create_index("ix_raw_transactions_time", "raw_transactions", ["transaction_start_time"])

    op.create_table(
        "quarantined_transactions",
        sa.Column("quarantine_id", sa.BigInteger, sa.Identity(), primary_key=True,
                  comment="Surrogate key"),
        sa.Column("transaction_id", sa.Text, nullable=True,
                  comment="TransactionId as received, when the row had one"),
        sa.Column("raw_row", pg.JSONB, nullable=False,
                  comment="The row exactly as received, column name to raw text"),
        sa.Column("source_file", sa.Text, nullable=False, comment="Landing file of the row"),
        sa.Column("line_number", sa.Integer, nullable=False,
                  comment="1-based line in the file (the header is line 1)"),
        sa.Column("reasons", pg.JSONB, nullable=False,
                  comment="Every failed expectation or check, as a list of strings"),
        _run_id("Ingestion run that quarantined the row"),
        sa.Column("quarantined_at", TZ, nullable=False, server_default=sa.func.now(),
                  comment="When the row was quarantined"),
        comment="Rows that failed validation, kept with their reasons; nothing is dropped",
    )
    op.create_index(
        "ix_quarantine_file_line", "quarantined_transactions", ["source_file", "line_number"]
    )

    op.create_table(
        "ingestion_runs",
        _run_id("Ingestion run id (Airflow run id or CLI run id)"),
        sa.Column("source_file", sa.Text, nullable=False, comment="Landing file validated"),
        sa.Column("logical_date", sa.Date, nullable=False, comment="Day the file holds"),
        sa.Column("rows_read", sa.Integer, nullable=False, comment="Data rows in the file"),
        sa.Column("rows_loaded", sa.Integer, nullable=False,
                  comment="Rows upserted into raw_transactions"),
        sa.Column("rows_quarantined", sa.Integer, nullable=False,
                  comment="Rows sent to quarantined_transactions"),
        sa.Column("rows_unchanged", sa.Integer, nullable=False, server_default="0",
                  comment="Rows already loaded with identical content (re-delivery)"),
        sa.Column("gx_success", sa.Boolean, nullable=True,
                  comment="Great Expectations suite result (null if not reached)"),
        sa.Column("status", sa.Text, nullable=False,
                  comment="succeeded, failed_threshold or failed"),
        sa.Column("message", sa.Text, nullable=True, comment="Failure reason, if any"),
        sa.Column("started_at", TZ, nullable=False, comment="Start of the file's run"),
        sa.Column("finished_at", TZ, nullable=False, comment="End of the file's run"),
        sa.Column("timings", pg.JSONB, nullable=False, server_default="{}",
                  comment="Seconds spent per step (read, validate, load)"),
        sa.PrimaryKeyConstraint("run_id", "source_file", name="pk_ingestion_runs"),
        comment="One row per landing file and ingestion run: counts, GX result, timings",
    )
    op.create_index("ix_ingestion_runs_date", "ingestion_runs", ["logical_date"])

    op.create_table(
        "customer_features",
        sa.Column("customer_id", sa.Text, nullable=False, comment="Xente CustomerId"),
        sa.Column("as_of_date", sa.Date, nullable=False,
                  comment="Features use only transactions strictly before this date (UTC)"),
        sa.Column("computed_at", TZ, nullable=False, server_default=sa.func.now(),
                  comment="When the row was computed"),
        _run_id("Feature run that wrote the row"),
        sa.PrimaryKeyConstraint("customer_id", "as_of_date", name="pk_customer_features"),
        comment="Point-in-time customer features, one column per feature (see the catalogue)",
    )
    op.create_index("ix_customer_features_date", "customer_features", ["as_of_date"])

    op.create_table(
        "customer_labels",
        sa.Column("customer_id", sa.Text, nullable=False, comment="Xente CustomerId"),
        sa.Column("as_of_date", sa.Date, nullable=False,
                  comment="Feature cut-off the label belongs to"),
        sa.Column("label_strategy", sa.Text, nullable=False,
                  comment="Strategy that produced the label (e.g. forward_window, rfm_kmeans)"),
        sa.Column("is_high_risk", sa.Boolean, nullable=False, comment="Proxy 'bad' outcome"),
        sa.Column("window_start", sa.Date, nullable=True,
                  comment="First day of the outcome window (exclusive of the cut-off)"),
        sa.Column("window_end", sa.Date, nullable=True, comment="Last day of the outcome window"),
        sa.Column("produced_by", pg.JSONB, nullable=False, server_default="{}",
                  comment="Strategy parameters and version that produced the label"),
        sa.Column("computed_at", TZ, nullable=False, server_default=sa.func.now(),
                  comment="When the label was computed"),
        _run_id("Run that wrote the label"),
        sa.PrimaryKeyConstraint(
            "customer_id", "as_of_date", "label_strategy", name="pk_customer_labels"
        ),
        comment="Proxy (or real) default labels per customer, cut-off date and strategy",
    )

    op.create_table(
        "risk_scores",
        sa.Column("customer_id", sa.Text, nullable=False, comment="Xente CustomerId"),
        sa.Column("score_date", sa.Date, nullable=False,
                  comment="Date the score is for (features as of this date)"),
        sa.Column("probability_of_default", sa.Float, nullable=False,
                  comment="Model probability of the proxy default outcome, 0..1"),
        sa.Column("credit_score", sa.Integer, nullable=False,
                  comment="Points-to-double-odds credit score, 300..850"),
        sa.Column("risk_band", sa.Text, nullable=False, comment="Risk band from the policy"),
        sa.Column("decision", sa.Text, nullable=False, comment="APPROVE, REVIEW or DECLINE"),
        sa.Column("recommended_limit", MONEY, nullable=False,
                  comment="Recommended BNPL credit limit in UGX"),
        sa.Column("recommended_term_days", sa.Integer, nullable=False,
                  comment="Recommended repayment term in days"),
        sa.Column("reason_codes", pg.JSONB, nullable=False, server_default="[]",
                  comment="Top features raising the risk, with readable texts"),
        sa.Column("model_name", sa.Text, nullable=False, comment="Registered model name"),
        sa.Column("model_version", sa.Text, nullable=False,
                  comment="Registered model version that produced the score"),
        sa.Column("scored_at", TZ, nullable=False, comment="When the score was computed"),
        _run_id("Scoring run that wrote the row"),
        sa.CheckConstraint(
            "probability_of_default >= 0 AND probability_of_default <= 1", name="ck_scores_pd"
        ),
        sa.CheckConstraint("credit_score BETWEEN 300 AND 850", name="ck_scores_credit_score"),
        sa.CheckConstraint(
            "decision IN ('APPROVE', 'REVIEW', 'DECLINE')", name="ck_scores_decision"
        ),
        sa.PrimaryKeyConstraint("customer_id", "score_date", name="pk_risk_scores"),
        comment="Nightly risk scores: PD, credit score, decision, limit, term and reasons",
    )
    op.create_index("ix_risk_scores_date", "risk_scores", ["score_date"])
    op.execute(
        """
        CREATE VIEW latest_risk_scores AS
        SELECT DISTINCT ON (customer_id) *
        FROM risk_scores
        ORDER BY customer_id, score_date DESC
        """
    )
    op.execute("COMMENT ON VIEW latest_risk_scores IS 'Each customer''s newest risk_scores row'")

    op.create_table(
        "score_monitoring",
        sa.Column("score_date", sa.Date, nullable=False, comment="Date scored"),
        sa.Column("model_name", sa.Text, nullable=False, comment="Registered model name"),
        sa.Column("model_version", sa.Text, nullable=False, comment="Model version scored with"),
        sa.Column("n_scored", sa.Integer, nullable=False, comment="Customers scored"),
        sa.Column("mean_pd", sa.Float, nullable=False, comment="Mean probability of default"),
        sa.Column("band_shares", pg.JSONB, nullable=False, comment="Share of customers per band"),
        sa.Column("decision_shares", pg.JSONB, nullable=False,
                  comment="Share of customers per decision"),
        sa.Column("psi_score", sa.Float, nullable=True,
                  comment="PSI of the score against the training reference"),
        sa.Column("psi_features", pg.JSONB, nullable=False, server_default="{}",
                  comment="PSI of each feature against the training reference"),
        sa.Column("psi_alert", sa.Boolean, nullable=False, server_default=sa.false(),
                  comment="True when any PSI exceeds the configured threshold"),
        sa.Column("computed_at", TZ, nullable=False, server_default=sa.func.now(),
                  comment="When the row was computed"),
        _run_id("Scoring run that wrote the row"),
        sa.PrimaryKeyConstraint(
            "score_date", "model_name", "model_version", name="pk_score_monitoring"
        ),
        comment="Per score date and model version: counts, mean PD, band shares, PSI",
    )


def downgrade() -> None:
    op.drop_table("score_monitoring")
    op.execute("DROP VIEW IF EXISTS latest_risk_scores")
    op.drop_table("risk_scores")
    op.drop_table("customer_labels")
    op.drop_table("customer_features")
    op.drop_table("ingestion_runs")
    op.drop_table("quarantined_transactions")
    op.drop_table("raw_transactions")
