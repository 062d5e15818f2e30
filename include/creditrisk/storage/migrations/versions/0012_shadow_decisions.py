"""The API's shadow decisions, and the audit of alias moves made outside the platform.

Revision ID: 0012_shadow_decisions
Revises: 0011_shadow_scores
Create Date: 2026-12-07

* ``decision_log.shadow``: true for a row the ``challenger`` computed for a sampled
  ``/predict`` call (never answered to the client), false for the answered decision. The
  primary key becomes (request_id, item, shadow): a sampled call has both rows.
  ``creditrisk_api`` keeps exactly INSERT on decision_log.
* ``model_promotions.decision`` gains ``external`` (a move of ``champion`` the platform did
  not make: the MLflow UI or a direct API call, found by comparing the alias with the last
  row) and ``rollback`` (``creditrisk promote --previous``).
* ``creditrisk_api`` gets SELECT (not INSERT) on ``model_promotions``: at each alias poll
  the API tells an explained move from an unexplained one and says so in a metric and its
  log; only the batch side (scoring, as the platform's owner role) records the row.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_shadow_decisions"
down_revision: str | None = "0011_shadow_scores"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DECISIONS = ("'promoted', 'rejected', 'manual', 'recommended', 'external', 'rollback'")
OLD_DECISIONS = "'promoted', 'rejected', 'manual', 'recommended'"


def upgrade() -> None:
    op.add_column("decision_log", sa.Column(
        "shadow", sa.Boolean, nullable=False, server_default=sa.false(),
        comment="True: the challenger's decision for a sampled /predict call, computed off "
                "the request path and never answered; false: the decision answered"))
    op.drop_constraint("pk_decision_log", "decision_log", type_="primary")
    op.create_primary_key("pk_decision_log", "decision_log", ["request_id", "item", "shadow"])
    op.drop_constraint("ck_promotions_decision", "model_promotions", type_="check")
    op.create_check_constraint("ck_promotions_decision", "model_promotions",
                               f"decision IN ({DECISIONS})")
    op.alter_column("model_promotions", "decision", existing_type=sa.Text,
                    existing_nullable=False,
                    comment="promoted, rejected, recommended (the gate), manual (a person, "
                            "creditrisk promote), rollback (creditrisk promote --previous), "
                            "external (a move of champion found by comparison, not made by "
                            "the platform)")
    op.execute("GRANT SELECT ON model_promotions TO creditrisk_api")


def downgrade() -> None:
    op.execute("REVOKE SELECT ON model_promotions FROM creditrisk_api")
    op.execute("DELETE FROM model_promotions WHERE decision IN ('external', 'rollback')")
    op.drop_constraint("ck_promotions_decision", "model_promotions", type_="check")
    op.create_check_constraint("ck_promotions_decision", "model_promotions",
                               f"decision IN ({OLD_DECISIONS})")
    op.execute("DELETE FROM decision_log WHERE shadow")
    op.drop_constraint("pk_decision_log", "decision_log", type_="primary")
    op.create_primary_key("pk_decision_log", "decision_log", ["request_id", "item"])
    op.drop_column("decision_log", "shadow")
