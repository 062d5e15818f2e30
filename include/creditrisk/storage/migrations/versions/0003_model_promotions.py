"""model_promotions: every promotion decision, by the gate or by a person.

Revision ID: 0003_model_promotions
Revises: 0002_feature_columns
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0003_model_promotions"
down_revision: str | None = "0002_feature_columns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_promotions",
        sa.Column("promotion_id", sa.BigInteger, sa.Identity(), primary_key=True,
                  comment="Surrogate key"),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now(), comment="When the decision was taken"),
        sa.Column("model_name", sa.Text, nullable=False, comment="Registered model name"),
        sa.Column("model_version", sa.Text, nullable=False, comment="Version decided on"),
        sa.Column("previous_champion", sa.Text, nullable=True,
                  comment="Version that held the champion alias before, if any"),
        sa.Column("decision", sa.Text, nullable=False,
                  comment="promoted, rejected (by the gate) or manual (a person)"),
        sa.Column("decided_by", sa.Text, nullable=False,
                  comment="gate, or the person/command that moved the alias"),
        sa.Column("reasons", pg.JSONB, nullable=False, server_default="[]",
                  comment="Why: every check of the gate with its outcome"),
        sa.Column("metrics", pg.JSONB, nullable=False, server_default="{}",
                  comment="Challenger and champion metrics on the same test set"),
        sa.Column("run_id", sa.Text, nullable=True, comment="Training or CLI run id"),
        sa.CheckConstraint("decision IN ('promoted', 'rejected', 'manual')",
                           name="ck_promotions_decision"),
        comment="Audit log of champion promotions (gate decisions and manual moves)",
    )


def downgrade() -> None:
    op.drop_table("model_promotions")
