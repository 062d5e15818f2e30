"""decision_log: every real-time decision of the API, traceable to model and features.

Revision ID: 0005_decision_log
Revises: 0004_risk_scores_stage
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0005_decision_log"
down_revision: str | None = "0004_risk_scores_stage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "decision_log",
        sa.Column("request_id", sa.Text, nullable=False,
                  comment="X-Request-ID of the HTTP request (sent by the client or generated)"),
        sa.Column("item", sa.Integer, nullable=False,
                  comment="Position of the item in a /predict/batch request; 0 for /predict"),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False,
                  comment="When the API answered"),
        sa.Column("route", sa.Text, nullable=False,
                  comment="/predict or /predict/batch"),
        sa.Column("customer_id", sa.Text, nullable=True,
                  comment="Xente CustomerId of the request; null when only features were sent"),
        sa.Column("model_name", sa.Text, nullable=False,
                  comment="Registered model name that decided"),
        sa.Column("model_version", sa.Text, nullable=False,
                  comment="Registered model version that decided"),
        sa.Column("feature_source", sa.Text, nullable=False,
                  comment="warehouse: looked up in customer_features by customer_id;"
                          " request: sent inline in the request body"),
        sa.Column("feature_as_of_date", sa.Date, nullable=True,
                  comment="as_of_date of the customer_features row used; null for inline"
                          " features and for a thin file (no row found)"),
        sa.Column("amount", sa.Float, nullable=True, comment="Basket amount (UGX), if sent"),
        sa.Column("product_category", sa.Text, nullable=True,
                  comment="Basket product category, if sent"),
        sa.Column("thin_file", sa.Boolean, nullable=False,
                  comment="True when the customer had no features: the policy's thin-file"
                          " answer, no model score"),
        sa.Column("probability_of_default", sa.Float, nullable=True,
                  comment="Model PD; null for a thin file"),
        sa.Column("credit_score", sa.Integer, nullable=True,
                  comment="Points-to-double-odds score of the PD; null for a thin file"),
        sa.Column("risk_band", sa.Text, nullable=False, comment="Band letter, or THIN_FILE"),
        sa.Column("decision", sa.Text, nullable=False, comment="APPROVE, REVIEW or DECLINE"),
        sa.Column("recommended_limit", sa.Float, nullable=False,
                  comment="Credit line offered (UGX), 0 for a decline"),
        sa.Column("recommended_term_days", sa.Integer, nullable=False,
                  comment="Repayment term offered (days), 0 for a decline"),
        sa.Column("reason_codes", pg.JSONB, nullable=False, server_default="[]",
                  comment="Reason codes returned with the decision"),
        sa.PrimaryKeyConstraint("request_id", "item", name="pk_decision_log"),
        sa.CheckConstraint("feature_source IN ('warehouse', 'request')",
                           name="ck_decision_log_feature_source"),
        sa.CheckConstraint("decision IN ('APPROVE', 'REVIEW', 'DECLINE')",
                           name="ck_decision_log_decision"),
        comment="Audit log of the real-time API: one row per decision answered by /predict"
                " and /predict/batch, written asynchronously in batches (best effort: rows"
                " are counted, not retried forever, when the warehouse is down)",
    )
    op.create_index("ix_decision_log_decided_at", "decision_log", ["decided_at"])
    op.create_index("ix_decision_log_customer", "decision_log", ["customer_id", "decided_at"])


def downgrade() -> None:
    op.drop_table("decision_log")
