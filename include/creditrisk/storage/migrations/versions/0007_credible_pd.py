"""Credible PD: fixed-window features, and a defined answer for customers outside the population.

Revision ID: 0007_credible_pd
Revises: 0006_ingestion_run_status
Create Date: 2026-12-04

* ``customer_features`` gains the fixed-lookback features (the same meaning at any
  history length); the column list is frozen here, tests hold it to the catalogue. The
  stored snapshots are deleted: they are derived data, and a 0 in the new columns would
  read as "bought today". Training, scoring and ``build_features`` rebuild any snapshot
  they need from ``raw_transactions``.
* ``risk_scores`` (and its stage) gain ``segment``: ``scored`` rows carry the model's PD;
  ``dormant`` (no purchase in the scoring lookback) and ``thin_file`` rows carry the
  policy's answer and no PD or score, so ``probability_of_default`` and ``credit_score``
  become nullable. ``latest_risk_scores`` is recreated to show the new column.
* ``forward_window`` labels change meaning (only customer-initiated purchases count as
  activity; the K-Means segment is no longer part of it), so the stored ones are deleted:
  training and ``build_features`` rebuild them under the new definition.
* ``model_promotions.decision`` gains ``recommended``: in ``promotion.mode: manual`` the
  gate records its passing verdict and a person moves ``champion``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_credible_pd"
down_revision: str | None = "0006_ingestion_run_status"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS: tuple[tuple[str, str], ...] = (
    ("purchase_recency_days",
     "Days from the last customer-initiated purchase to the as-of date, tenure if none (days)"),
    ("purchases_7d", "Customer-initiated purchases in the 7 days before the as-of date (count)"),
    ("purchases_30d", "Customer-initiated purchases in the 30 days before the as-of date (count)"),
    ("spend_7d", "Customer-initiated purchase amounts in the 7 days before the as-of date (UGX)"),
    ("active_days_30d", "Distinct UTC days with a purchase in the 30 days before (days)"),
    ("n_products_30d", "Distinct products bought in the 30 days before the as-of date (count)"),
)
SEGMENT = ("scored: the model's PD; dormant: no customer-initiated purchase in the scoring "
           "lookback; thin_file: no purchase ever. Only scored rows carry a PD and a score")
VIEW = """
    CREATE VIEW latest_risk_scores AS
    SELECT DISTINCT ON (customer_id) *
    FROM risk_scores
    ORDER BY customer_id, score_date DESC
"""


def upgrade() -> None:
    op.execute("DELETE FROM customer_labels WHERE label_strategy = 'forward_window'")
    op.execute("DELETE FROM customer_features")
    for name, comment in COLUMNS:
        op.add_column("customer_features", sa.Column(
            name, sa.Float, nullable=False, server_default="0", comment=comment))
    op.execute("DROP VIEW latest_risk_scores")
    for table in ("risk_scores", "risk_scores_stage"):
        op.add_column(table, sa.Column("segment", sa.Text, nullable=False,
                                       server_default="scored", comment=SEGMENT))
        op.alter_column(table, "probability_of_default", nullable=True)
        op.alter_column(table, "credit_score", nullable=True)
    op.create_check_constraint(
        "ck_risk_scores_segment", "risk_scores",
        "segment IN ('scored', 'dormant', 'thin_file') AND (segment = 'scored') = "
        "(probability_of_default IS NOT NULL AND credit_score IS NOT NULL)",
    )
    op.execute(VIEW)
    op.execute("COMMENT ON VIEW latest_risk_scores IS 'Each customer''s newest risk_scores row'")
    op.drop_constraint("ck_promotions_decision", "model_promotions", type_="check")
    op.create_check_constraint("ck_promotions_decision", "model_promotions",
                               "decision IN ('promoted', 'rejected', 'manual', 'recommended')")


def downgrade() -> None:
    op.execute("DELETE FROM model_promotions WHERE decision = 'recommended'")
    op.drop_constraint("ck_promotions_decision", "model_promotions", type_="check")
    op.create_check_constraint("ck_promotions_decision", "model_promotions",
                               "decision IN ('promoted', 'rejected', 'manual')")
    op.execute("DROP VIEW latest_risk_scores")
    op.drop_constraint("ck_risk_scores_segment", "risk_scores", type_="check")
    for table in ("risk_scores", "risk_scores_stage"):
        op.execute(f"DELETE FROM {table} WHERE segment <> 'scored'")  # nosec B608 - constant
        op.drop_column(table, "segment")
        op.alter_column(table, "probability_of_default", nullable=False)
        op.alter_column(table, "credit_score", nullable=False)
    op.execute(VIEW)
    op.execute("COMMENT ON VIEW latest_risk_scores IS 'Each customer''s newest risk_scores row'")
    for name, _ in reversed(COLUMNS):
        op.drop_column("customer_features", name)
