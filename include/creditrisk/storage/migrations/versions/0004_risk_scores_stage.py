"""risk_scores_stage: where scoring chunks land before a date is swapped in atomically.

Revision ID: 0004_risk_scores_stage
Revises: 0003_model_promotions
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_risk_scores_stage"
down_revision: str | None = "0003_model_promotions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE risk_scores_stage (LIKE risk_scores INCLUDING DEFAULTS INCLUDING"
        " CONSTRAINTS INCLUDING COMMENTS)"
    )
    op.execute(
        "ALTER TABLE risk_scores_stage ADD CONSTRAINT pk_risk_scores_stage"
        " PRIMARY KEY (score_date, customer_id)"
    )
    op.execute(
        "COMMENT ON TABLE risk_scores_stage IS 'Scoring chunks of a run, swapped into"
        " risk_scores in one transaction once every chunk is in; not for readers'"
    )


def downgrade() -> None:
    op.drop_table("risk_scores_stage")
