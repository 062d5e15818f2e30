"""The realized bad rate of each swap-set cell, once the loans it decided have matured.

Revision ID: 0015_swap_set_outcomes
Revises: 0014_feature_aggregates
Create Date: 2026-12-08

``swap_set_outcomes(as_of)``: for every nightly swap-set report (0011), per cell (the
champion's band and decision, the challenger's band and decision, the key of the
report's ``transitions``), the customers in the cell, the loans decided by that night's
scores (``loans.decided_by = 'score:<score_date>'``) to those customers, how many have
matured by ``as_of`` and how many went bad (``loan_performance``'s definition). Loans
exist only where the champion approved (or the exploration share lent): the cells the
challenger would approve and the champion declines carry no outcome unless exploration
is on, which is the reject-inference question docs/model.md states.

A function, not a table: the outcome of a night's cells keeps changing for a term plus
grace after the night, and it is one join away from data the warehouse holds.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015_swap_set_outcomes"
down_revision: str | None = "0014_feature_aggregates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SWAP_OUTCOMES_FUNCTION = """
    CREATE FUNCTION swap_set_outcomes(as_of date, grace_days int DEFAULT 30,
                                      bad_dpd int DEFAULT 30)
    RETURNS TABLE (score_date date, model_name text, champion_version text,
                   challenger_version text, from_band text, from_decision text,
                   to_band text, to_decision text, customers bigint, loans bigint,
                   matured bigint, bad bigint, realized_bad_rate double precision)
    LANGUAGE sql STABLE AS $$
    WITH perf AS (
        SELECT p.loan_id, p.matured, p.bad
        FROM loan_performance(as_of, grace_days, 90, bad_dpd) p
    ), cells AS (
        SELECT w.score_date, w.model_name, w.champion_version, w.challenger_version,
               r.risk_band AS from_band, r.decision AS from_decision,
               s.risk_band AS to_band, s.decision AS to_decision, r.customer_id
        FROM swap_set_reports w
        JOIN risk_scores r ON r.score_date = w.score_date AND r.model_name = w.model_name
                          AND r.model_version = w.champion_version
        JOIN shadow_scores s ON s.score_date = r.score_date AND s.customer_id = r.customer_id
                            AND s.model_name = w.model_name
                            AND s.model_version = w.challenger_version
        WHERE w.score_date < as_of
    )
    SELECT c.score_date, c.model_name, c.champion_version, c.challenger_version,
           c.from_band, c.from_decision, c.to_band, c.to_decision,
           count(DISTINCT c.customer_id), count(l.loan_id),
           count(l.loan_id) FILTER (WHERE p.matured),
           count(l.loan_id) FILTER (WHERE p.matured AND p.bad),
           (count(l.loan_id) FILTER (WHERE p.matured AND p.bad))::float8
               / NULLIF(count(l.loan_id) FILTER (WHERE p.matured), 0)
    FROM cells c
    LEFT JOIN loans l ON l.customer_id = c.customer_id
                     AND l.decided_by = 'score:' || to_char(c.score_date, 'YYYY-MM-DD')
                     AND l.model_version = c.champion_version
    LEFT JOIN perf p ON p.loan_id = l.loan_id
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    $$
"""

SWAP_OUTCOMES_DOC = (
    "Per nightly swap-set cell (champion band and decision -> challenger band and decision): "
    "customers, loans decided by that night''s scores, matured by as_of, bad "
    "(loan_performance) and the realized bad rate of the matured ones"
)


def upgrade() -> None:
    op.execute(SWAP_OUTCOMES_FUNCTION)
    op.execute(f"COMMENT ON FUNCTION swap_set_outcomes(date, int, int) IS '{SWAP_OUTCOMES_DOC}'")


def downgrade() -> None:
    op.execute("DROP FUNCTION swap_set_outcomes(date, int, int)")
