"""Shadow scoring of the challenger, and the nightly swap-set report against the champion.

Revision ID: 0011_shadow_scores
Revises: 0010_outcome_loop
Create Date: 2026-12-06

* ``shadow_scores``: while a ``challenger`` alias points at another version than
  ``champion``, ``score_customers`` scores every customer of the day with it here, one
  row per (score date, challenger version, customer). ``risk_scores`` is never touched.
* ``shadow_scores_stage``: where the challenger's chunks land before the (day, version)
  is swapped into ``shadow_scores`` in one transaction; not for readers.
* ``swap_set_reports``: per night, champion version and challenger version, how the
  challenger would have decided the same customers (agreement rate, decision and band
  transition cells, the PD difference distribution). The cells are a JSONB array whose
  key (champion band and decision, challenger band and decision) is the unit a later
  column of realized bad rates per cell will be keyed by, once loans exist.

Revises 0009 for now: another branch adds 0010; whoever merges both re-chains this one
after it (its tables depend on nothing 0010 adds). The reader role's default privileges
(0009) give ``creditrisk_reader`` SELECT on the new tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0011_shadow_scores"
down_revision: str | None = "0010_outcome_loop"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
SEGMENTS = ("segment IN ('scored', 'dormant', 'thin_file') AND (segment = 'scored') = "
            "(probability_of_default IS NOT NULL AND credit_score IS NOT NULL)")


def _shadow_columns() -> list[sa.Column | sa.CheckConstraint]:
    return [
        sa.Column("score_date", sa.Date, nullable=False,
                  comment="Date the shadow score is for (features as of this date)"),
        sa.Column("customer_id", sa.Text, nullable=False, comment="Xente CustomerId"),
        sa.Column("model_name", sa.Text, nullable=False, comment="Registered model name"),
        sa.Column("model_version", sa.Text, nullable=False,
                  comment="The challenger version that produced the shadow score"),
        sa.Column("segment", sa.Text, nullable=False,
                  comment="scored: the challenger's PD; dormant / thin_file: the policy's "
                          "answer and no PD, as in risk_scores"),
        sa.Column("probability_of_default", sa.Float, nullable=True,
                  comment="The challenger's probability of the proxy default outcome, 0..1"),
        sa.Column("credit_score", sa.Integer, nullable=True,
                  comment="Credit score from the challenger's PD, 300..850"),
        sa.Column("risk_band", sa.Text, nullable=False,
                  comment="Risk band the challenger's PD falls in (policy.yaml)"),
        sa.Column("decision", sa.Text, nullable=False,
                  comment="APPROVE, REVIEW or DECLINE, had the challenger decided"),
        sa.Column("scored_at", TZ, nullable=False, comment="When the shadow score was computed"),
        sa.Column("run_id", sa.Text, nullable=False, comment="Scoring run that wrote the row"),
        sa.CheckConstraint("probability_of_default BETWEEN 0 AND 1"),
        sa.CheckConstraint("credit_score BETWEEN 300 AND 850"),
        sa.CheckConstraint("decision IN ('APPROVE', 'REVIEW', 'DECLINE')"),
        sa.CheckConstraint(SEGMENTS),
    ]


def _report_columns() -> list[sa.Column | sa.CheckConstraint]:
    quantiles = [
        sa.Column(f"pd_diff_{name}", sa.Float, nullable=True,
                  comment=f"{label} of challenger PD minus champion PD over the customers "
                          "both gave a PD (NULL when none)")
        for name, label in (("mean", "Mean"), ("min", "Minimum"), ("p05", "5th percentile"),
                            ("p25", "25th percentile"), ("p50", "Median"),
                            ("p75", "75th percentile"), ("p95", "95th percentile"),
                            ("max", "Maximum"))
    ]
    return [
        sa.Column("score_date", sa.Date, nullable=False, comment="Night compared"),
        sa.Column("model_name", sa.Text, nullable=False,
                  comment="Registered model name of both versions"),
        sa.Column("champion_version", sa.Text, nullable=False,
                  comment="Version whose risk_scores rows of the night are compared"),
        sa.Column("challenger_version", sa.Text, nullable=False,
                  comment="Version whose shadow_scores rows of the night are compared"),
        sa.Column("n", sa.Integer, nullable=False,
                  comment="Customers in both risk_scores and shadow_scores for the night"),
        sa.Column("n_changed", sa.Integer, nullable=False,
                  comment="Customers whose decision the challenger would change"),
        sa.Column("agreement_rate", sa.Float, nullable=True,
                  comment="Share of the n customers with the same decision (NULL when n = 0)"),
        sa.Column("transitions", pg.JSONB, nullable=False, server_default="[]",
                  comment="Swap-set cells: [{from_band, from_decision, to_band, to_decision, "
                          "n}], champion (from) to challenger (to), every non-empty cell"),
        sa.Column("n_pd", sa.Integer, nullable=False,
                  comment="Customers both versions gave a PD (the PD difference's sample)"),
        *quantiles,
        sa.Column("computed_at", TZ, nullable=False, server_default=sa.func.now(),
                  comment="When the report was computed"),
        sa.Column("run_id", sa.Text, nullable=False, comment="Scoring run that wrote the row"),
        sa.CheckConstraint("n >= 0 AND n_changed BETWEEN 0 AND n AND n_pd BETWEEN 0 AND n"),
        sa.CheckConstraint("agreement_rate BETWEEN 0 AND 1"),
        sa.CheckConstraint("(n = 0) = (agreement_rate IS NULL)"),
        sa.CheckConstraint("jsonb_typeof(transitions) = 'array'"),
        sa.CheckConstraint("num_nulls(pd_diff_mean, pd_diff_min, pd_diff_p05, pd_diff_p25, "
                           "pd_diff_p50, pd_diff_p75, pd_diff_p95, pd_diff_max) = "
                           "CASE WHEN n_pd = 0 THEN 8 ELSE 0 END"),
        sa.CheckConstraint("pd_diff_min <= pd_diff_p05 AND pd_diff_p05 <= pd_diff_p25 AND "
                           "pd_diff_p25 <= pd_diff_p50 AND pd_diff_p50 <= pd_diff_p75 AND "
                           "pd_diff_p75 <= pd_diff_p95 AND pd_diff_p95 <= pd_diff_max"),
        sa.CheckConstraint("champion_version <> challenger_version"),
    ]


def upgrade() -> None:
    op.create_table(
        "shadow_scores", *_shadow_columns(),
        sa.PrimaryKeyConstraint("score_date", "model_name", "model_version", "customer_id",
                                name="pk_shadow_scores"),
        comment="The challenger's nightly scores of every customer, never served: what it "
                "would have decided (risk_scores holds the champion's)",
    )
    op.create_table(
        "shadow_scores_stage", *_shadow_columns(),
        sa.PrimaryKeyConstraint("score_date", "model_name", "model_version", "customer_id",
                                name="pk_shadow_scores_stage"),
        comment="The challenger's scoring chunks of a run, swapped into shadow_scores in one "
                "transaction per (day, version) once every chunk is in; not for readers",
    )
    op.create_table(
        "swap_set_reports", *_report_columns(),
        sa.PrimaryKeyConstraint("score_date", "model_name", "champion_version",
                                "challenger_version", name="pk_swap_set_reports"),
        comment="Per night and challenger: how its decisions differ from the champion's on "
                "the same customers (agreement, transition cells, PD difference quantiles)",
    )


def downgrade() -> None:
    op.drop_table("swap_set_reports")
    op.drop_table("shadow_scores_stage")
    op.drop_table("shadow_scores")
