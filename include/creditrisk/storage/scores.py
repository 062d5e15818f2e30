"""All SQL on risk_scores, risk_scores_stage and score_monitoring.

Scoring writes chunks into ``risk_scores_stage``; :func:`publish` swaps a complete date
into ``risk_scores`` in one transaction (delete the date, insert from stage), so readers
see the whole old day or the whole new one. A crash before the commit leaves the
previous day untouched, and the stage is rebuilt by the re-run.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import TYPE_CHECKING, Any

from creditrisk.storage.db import raw_cursor

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

SCORE_COLUMNS = (
    "customer_id", "score_date", "probability_of_default", "credit_score", "risk_band",
    "decision", "recommended_limit", "recommended_term_days", "reason_codes", "model_name",
    "model_version", "scored_at", "run_id", "segment",
)


def chunk_predicate(chunk: int, n_chunks: int, column: str = "customer_id") -> str:
    """SQL condition selecting one chunk of customers by a stable hash of their id."""
    return f"mod(abs(hashtext({column})::bigint), {int(n_chunks)}) = {int(chunk)}"


def clear_stage(engine: Engine, score_date: dt.date) -> None:
    """Forget any half-done stage of a date (a previous crashed run)."""
    import sqlalchemy as sa

    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM risk_scores_stage WHERE score_date = :d"),
                     {"d": score_date})


def write_stage_chunk(
    engine: Engine, score_date: dt.date, chunk: int, n_chunks: int, rows: pd.DataFrame
) -> int:
    """Replace one chunk's rows in the stage (COPY), in one transaction."""
    buf = io.StringIO()
    frame = rows.copy()
    frame["reason_codes"] = [json.dumps(r) for r in frame["reason_codes"]]
    frame.to_csv(buf, index=False, header=False, columns=list(SCORE_COLUMNS))
    buf.seek(0)
    with raw_cursor(engine) as cur:
        # the predicate is built from two ints (chunk_predicate)
        cur.execute(
            f"DELETE FROM risk_scores_stage WHERE score_date = %s AND "  # nosec B608 - ints only
            f"{chunk_predicate(chunk, n_chunks)}",
            (score_date,),
        )
        cur.copy_expert(
            f"COPY risk_scores_stage ({', '.join(SCORE_COLUMNS)}) FROM STDIN WITH (FORMAT csv)",
            buf,
        )
    return len(frame)


def publish(
    engine: Engine, score_date: dt.date, expected_rows: int, monitoring: dict[str, Any],
    model_name: str, model_version: str, run_id: str,
) -> int:
    """Swap the staged date into risk_scores and record monitoring, atomically.

    Idempotent for its run: when the stage is empty because this very run (same run id
    and model version) already published the date, it returns that row count.

    Raises:
        RuntimeError: the stage does not hold exactly ``expected_rows`` rows of this
            model version (a chunk is missing): nothing is published.
    """
    with raw_cursor(engine) as cur:
        cur.execute(
            "SELECT count(*), count(*) FILTER (WHERE model_version <> %s OR run_id <> %s)"
            " FROM risk_scores_stage WHERE score_date = %s",
            (model_version, run_id, score_date),
        )
        staged, foreign = cur.fetchone() or (0, 0)
        if staged == 0 and expected_rows:
            # a retry after this run's publish committed (the task died after the commit,
            # e.g. handing its summary to Airflow): the date is already in, nothing to redo
            cur.execute("SELECT count(*) FILTER (WHERE run_id = %s AND model_version = %s),"
                        " count(*) FROM risk_scores WHERE score_date = %s",
                        (run_id, model_version, score_date))
            mine, total = cur.fetchone() or (0, 0)
            if mine == total == expected_rows:
                return int(total)
        if staged != expected_rows or foreign:
            raise RuntimeError(
                f"stage for {score_date} holds {staged} rows ({foreign} from another run or "
                f"version), expected {expected_rows}: not publishing"
            )
        cur.execute("DELETE FROM risk_scores WHERE score_date = %s", (score_date,))
        cols = ", ".join(SCORE_COLUMNS)
        # column names are the module's SCORE_COLUMNS constant
        cur.execute(
            f"INSERT INTO risk_scores ({cols}) SELECT {cols} FROM risk_scores_stage"  # nosec B608 - consts
            " WHERE score_date = %s",
            (score_date,),
        )
        published = cur.rowcount
        cur.execute(
            """
            INSERT INTO score_monitoring (score_date, model_name, model_version, n_scored,
                mean_pd, band_shares, decision_shares, psi_score, psi_features, psi_alert,
                run_id)
            VALUES (%(d)s, %(m)s, %(v)s, %(n)s, %(mean)s, %(bands)s, %(decisions)s, %(psi)s,
                %(psif)s, %(alert)s, %(run)s)
            ON CONFLICT (score_date, model_name, model_version) DO UPDATE SET
                n_scored = EXCLUDED.n_scored, mean_pd = EXCLUDED.mean_pd,
                band_shares = EXCLUDED.band_shares, decision_shares = EXCLUDED.decision_shares,
                psi_score = EXCLUDED.psi_score, psi_features = EXCLUDED.psi_features,
                psi_alert = EXCLUDED.psi_alert, run_id = EXCLUDED.run_id, computed_at = now()
            """,
            {"d": score_date, "m": model_name, "v": model_version,
             "n": monitoring["n_scored"], "mean": monitoring["mean_pd"],
             "bands": json.dumps(monitoring["band_shares"]),
             "decisions": json.dumps(monitoring["decision_shares"]),
             "psi": monitoring["psi_score"], "psif": json.dumps(monitoring["psi_features"]),
             "alert": monitoring["psi_alert"], "run": run_id},
        )
        cur.execute("DELETE FROM risk_scores_stage WHERE score_date = %s", (score_date,))
    return int(published)


def staged_frame(engine: Engine, score_date: dt.date) -> pd.DataFrame:
    """The staged PDs with their customers (for monitoring at publish time)."""
    import pandas as pd
    import sqlalchemy as sa

    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT customer_id, probability_of_default, risk_band, decision, segment"
                    " FROM risk_scores_stage WHERE score_date = :d ORDER BY customer_id"),
            {"d": score_date},
        ).all()
    return pd.DataFrame(rows, columns=["customer_id", "probability_of_default", "risk_band",
                                       "decision", "segment"])
