"""All SQL on shadow_scores, shadow_scores_stage and swap_set_reports.

The challenger's chunks land in ``shadow_scores_stage``; :func:`publish` swaps one
(day, version) into ``shadow_scores`` and computes that night's swap-set report against
the champion's ``risk_scores`` rows, in one transaction. ``risk_scores`` is only read.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import TYPE_CHECKING, Any

from creditrisk.storage.db import raw_cursor
from creditrisk.storage.scores import chunk_predicate

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

SHADOW_COLUMNS = (
    "score_date", "customer_id", "model_name", "model_version", "segment",
    "probability_of_default", "credit_score", "risk_band", "decision", "scored_at", "run_id",
)
_QUANTILES = ("p05", "p25", "p50", "p75", "p95")  # SWAP_SET_SQL's percentile_cont columns
REPORT_COLUMNS = (
    "score_date", "model_name", "champion_version", "challenger_version", "n", "n_changed",
    "agreement_rate", "transitions", "n_pd", "pd_diff_mean", "pd_diff_min",
    *(f"pd_diff_{name}" for name in _QUANTILES), "pd_diff_max", "computed_at", "run_id",
)
_VERSION = "score_date = %(d)s AND model_name = %(m)s AND model_version = %(v)s"

#: The swap set of a night: the champion's risk_scores rows (its version only) joined to
#: the challenger's shadow_scores rows on the customer. docs/operations.md shows it too.
SWAP_SET_SQL = """
    WITH pairs AS (
        SELECT r.risk_band AS from_band, r.decision AS from_decision,
               s.risk_band AS to_band, s.decision AS to_decision,
               s.probability_of_default - r.probability_of_default AS pd_diff
        FROM risk_scores r
        JOIN shadow_scores s ON s.score_date = r.score_date AND s.customer_id = r.customer_id
        WHERE r.score_date = %(d)s AND r.model_name = %(m)s AND r.model_version = %(cv)s
          AND s.model_name = %(m)s AND s.model_version = %(v)s
    ), cells AS (
        SELECT from_band, from_decision, to_band, to_decision, count(*) AS n
        FROM pairs GROUP BY 1, 2, 3, 4
    )
    SELECT count(*)::int AS n,
           (count(*) FILTER (WHERE from_decision <> to_decision))::int AS n_changed,
           avg((from_decision = to_decision)::int)::float8 AS agreement_rate,
           (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'from_band', from_band, 'from_decision', from_decision, 'to_band', to_band,
                'to_decision', to_decision, 'n', n)
                ORDER BY from_band, from_decision, to_band, to_decision), '[]'::jsonb)
            FROM cells) AS transitions,
           count(pd_diff)::int AS n_pd,
           -- numeric: an exact sum, the same in any scan order (a re-run equals the run)
           avg(pd_diff::numeric)::float8 AS pd_diff_mean, min(pd_diff) AS pd_diff_min,
           percentile_cont(0.05) WITHIN GROUP (ORDER BY pd_diff) AS pd_diff_p05,
           percentile_cont(0.25) WITHIN GROUP (ORDER BY pd_diff) AS pd_diff_p25,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY pd_diff) AS pd_diff_p50,
           percentile_cont(0.75) WITHIN GROUP (ORDER BY pd_diff) AS pd_diff_p75,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY pd_diff) AS pd_diff_p95,
           max(pd_diff) AS pd_diff_max
    FROM pairs
"""


def clear_stage(engine: Engine, score_date: dt.date, model_name: str, version: str) -> None:
    """Forget any half-done shadow stage of a (day, version) (a previous crashed run)."""
    with raw_cursor(engine) as cur:
        cur.execute(f"DELETE FROM shadow_scores_stage WHERE {_VERSION}",  # nosec B608 - const
                    {"d": score_date, "m": model_name, "v": version})


def write_stage_chunk(engine: Engine, score_date: dt.date, model_name: str, version: str,
                      chunk: int, n_chunks: int, rows: pd.DataFrame) -> int:
    """Replace one chunk's shadow rows of (day, version) in the stage (COPY), atomically."""
    buf = io.StringIO()
    rows.to_csv(buf, index=False, header=False, columns=list(SHADOW_COLUMNS))
    buf.seek(0)
    with raw_cursor(engine) as cur:
        # the predicate is built from two ints (chunk_predicate), the rest is constant
        cur.execute(
            f"DELETE FROM shadow_scores_stage WHERE {_VERSION} AND "  # nosec B608 - ints, consts
            f"{chunk_predicate(chunk, n_chunks)}",
            {"d": score_date, "m": model_name, "v": version},
        )
        cur.copy_expert(f"COPY shadow_scores_stage ({', '.join(SHADOW_COLUMNS)}) FROM STDIN"
                        " WITH (FORMAT csv)", buf)
    return len(rows)


def publish(engine: Engine, score_date: dt.date, expected_rows: int, model_name: str,
            champion_version: str, version: str, run_id: str) -> dict[str, Any]:
    """Swap the staged (day, version) into shadow_scores and write its swap-set report,
    in one transaction; return the report row.

    Idempotent for its run: when the stage is empty because this very run already
    published the (day, version), it returns the stored report untouched.

    Raises:
        RuntimeError: the stage does not hold exactly ``expected_rows`` rows of this run.
    """
    key = {"d": score_date, "m": model_name, "v": version, "cv": champion_version,
           "run": run_id}
    with raw_cursor(engine) as cur:
        cur.execute("SELECT count(*), count(*) FILTER (WHERE run_id <> %(run)s)"
                    f" FROM shadow_scores_stage WHERE {_VERSION}", key)  # nosec B608 - const
        staged, foreign = cur.fetchone() or (0, 0)
        if staged == 0 and expected_rows:
            cur.execute("SELECT count(*) FILTER (WHERE run_id = %(run)s), count(*)"
                        f" FROM shadow_scores WHERE {_VERSION}", key)  # nosec B608 - const
            mine, total = cur.fetchone() or (0, 0)
            report = _report(cur, key)
            if mine == total == expected_rows and report is not None:
                return report
        if staged != expected_rows or foreign:
            raise RuntimeError(
                f"shadow stage for {score_date} v{version} holds {staged} rows ({foreign} from "
                f"another run), expected {expected_rows}: not publishing")
        cols = ", ".join(SHADOW_COLUMNS)
        cur.execute(f"DELETE FROM shadow_scores WHERE {_VERSION}", key)  # nosec B608 - const
        # column names are the module's SHADOW_COLUMNS constant
        cur.execute(f"INSERT INTO shadow_scores ({cols}) SELECT {cols} FROM "  # nosec B608 - consts
                    f"shadow_scores_stage WHERE {_VERSION}", key)
        cur.execute(SWAP_SET_SQL, key)
        names = [d[0] for d in cur.description or ()]
        stats = dict(zip(names, cur.fetchone() or (), strict=True))
        _upsert_report(cur, key, stats)
        cur.execute(f"DELETE FROM shadow_scores_stage WHERE {_VERSION}", key)  # nosec B608 - const
        report = _report(cur, key)
    if report is None:  # written just above, in this transaction
        raise RuntimeError(f"swap-set report of {score_date} v{version} not found after writing")
    return report


def _upsert_report(cur: Any, key: dict[str, Any], stats: dict[str, Any]) -> None:
    import json

    values = {**key, **stats, "transitions": json.dumps(stats["transitions"])}
    stat_cols = [c for c in REPORT_COLUMNS if c in stats]
    cols = ["score_date", "model_name", "champion_version", "challenger_version", *stat_cols,
            "run_id"]
    params = ["%(d)s", "%(m)s", "%(cv)s", "%(v)s", *(f"%({c})s" for c in stat_cols), "%(run)s"]
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in [*stat_cols, "run_id"])
    # every name is from REPORT_COLUMNS or SWAP_SET_SQL's constant aliases
    cur.execute(
        f"INSERT INTO swap_set_reports ({', '.join(cols)}) VALUES ({', '.join(params)})"  # nosec B608 - consts
        " ON CONFLICT (score_date, model_name, champion_version, challenger_version)"
        f" DO UPDATE SET {updates}, computed_at = now()", values)


def _report(cur: Any, key: dict[str, Any]) -> dict[str, Any] | None:
    cur.execute(
        f"SELECT {', '.join(REPORT_COLUMNS)} FROM swap_set_reports"  # nosec B608 - consts
        " WHERE score_date = %(d)s AND model_name = %(m)s AND champion_version = %(cv)s"
        " AND challenger_version = %(v)s", key)
    row = cur.fetchone()
    return None if row is None else dict(zip(REPORT_COLUMNS, row, strict=True))
