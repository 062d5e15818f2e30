"""Daily aggregates refreshed by the feature build, not in each file's load.

Revision ID: 0016_aggregate_refreshes
Revises: 0015_swap_set_outcomes
Create Date: 2026-12-05

* ``customer_aggregate_dirty_days``: the UTC days whose ``raw_transactions`` gained rows
  since their aggregates were computed. Ingestion marks them in each file's own
  transaction (so a committed row is never forgotten); the next feature build
  recomputes them in one set-based pass before it plans, and deletes the marks in the
  same transaction.
* ``customer_aggregate_refreshes``: one row per such refresh (its days, duration and
  build run), for operators.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_aggregate_refreshes"
down_revision: str | None = "0015_swap_set_outcomes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "customer_aggregate_dirty_days",
        sa.Column("day", sa.Date, primary_key=True,
                  comment="UTC day whose transactions changed after its aggregates were made"),
        sa.Column("marked_at", TZ, nullable=False, server_default=sa.func.now(),
                  comment="When the first load of the day's new rows committed"),
        sa.Column("run_id", sa.Text, nullable=False,
                  comment="Ingestion run that marked the day first"),
        comment="Days the next feature build must re-aggregate from raw_transactions",
    )
    op.create_table(
        "customer_aggregate_refreshes",
        sa.Column("refresh_id", sa.BigInteger, sa.Identity(), primary_key=True,
                  comment="Increasing id of the refresh"),
        sa.Column("refreshed_at", TZ, nullable=False, server_default=sa.func.now(),
                  comment="When the refresh committed"),
        sa.Column("days", sa.ARRAY(sa.Date), nullable=False,
                  comment="The UTC days re-aggregated"),
        sa.Column("seconds", sa.Float, nullable=False, comment="How long the refresh took"),
        sa.Column("run_id", sa.Text, nullable=False, comment="Build run that refreshed"),
        comment="Each re-aggregation of dirty days by a feature build",
    )


def downgrade() -> None:
    op.drop_table("customer_aggregate_refreshes")
    op.drop_table("customer_aggregate_dirty_days")
