"""ingestion_runs.status: document the ``running`` value a run holds while in flight.

Revision ID: 0006_ingestion_run_status
Revises: 0005_decision_log
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_ingestion_run_status"
down_revision: str | None = "0005_decision_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "COMMENT ON COLUMN ingestion_runs.status IS 'running (in flight, or died: the next "
        "run of the file closes it as failed), succeeded, failed_threshold or failed'"
    )


def downgrade() -> None:
    op.execute(
        "COMMENT ON COLUMN ingestion_runs.status IS 'succeeded, failed_threshold or failed'"
    )
