"""All SQL on risk_scores, risk_scores_stage(_chunks) and score_monitoring.

``risk_scores`` is partitioned by day (migration 0013). A run stages its day in a
partition of ``risk_scores_stage`` of its own (:func:`clear_stage`), each chunk COPYs
its rows there with its monitoring counts in ``risk_scores_stage_chunks``
(:func:`write_stage_chunk`), and :func:`publish` swaps the complete day in: in one
transaction it writes the monitoring row, detaches and drops the day's previous
partition, and attaches the staged one in its place. No row is copied, so the swap
costs the same at any size; readers see the whole old day or the whole new one (they
wait for the few catalog updates of the swap, never see a gap). A crash before the
commit leaves the previous day untouched, and the re-run restages.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import TYPE_CHECKING, Any

from creditrisk.storage.db import raw_cursor

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from sqlalchemy.engine import Engine

SCORE_COLUMNS = (
    "customer_id", "score_date", "probability_of_default", "credit_score", "risk_band",
    "decision", "recommended_limit", "recommended_term_days", "reason_codes", "model_name",
    "model_version", "scored_at", "run_id", "segment",
)


def chunk_predicate(chunk: int, n_chunks: int, column: str = "customer_id") -> str:
    """SQL condition selecting one chunk of customers by a stable hash of their id."""
    return f"mod(abs(hashtext({column})::bigint), {int(n_chunks)}) = {int(chunk)}"


#: The columns a stage COPY carries, in the order :func:`copy_text` writes them.
STAGE_COPY_COLUMNS = (
    "customer_id", "segment", "probability_of_default", "credit_score", "risk_band",
    "decision", "recommended_limit", "recommended_term_days", "reason_codes", "score_date",
    "model_name", "model_version", "scored_at", "run_id",
)
#: How long the swap waits for readers' locks before it gives up (and the task retries),
#: so that a long analyst query never queues every reader behind the swap for long.
SWAP_LOCK_TIMEOUT = "20s"
#: Memory for building a day's primary key at publish (1M ids sort in about 100 MB).
INDEX_BUILD_MEMORY = "256MB"


def partition_name(score_date: dt.date) -> str:
    """The day's partition of risk_scores (``risk_scores_pYYYYMMDD``)."""
    return f"risk_scores_p{score_date:%Y%m%d}"


def stage_name(score_date: dt.date) -> str:
    """The day's partition of risk_scores_stage, where its run stages its chunks."""
    return f"risk_scores_stage_p{score_date:%Y%m%d}"


def clear_stage(engine: Engine, score_date: dt.date) -> None:
    """Forget any half-done stage of a date (a previous crashed run); create it empty.

    The partition carries a CHECK on its day, so attaching it to risk_scores at publish
    needs no scan to prove its rows belong there.
    """
    stage = stage_name(score_date)
    with raw_cursor(engine) as cur:
        # the names come from a date (stage_name); the day is a bound parameter
        cur.execute(f"DROP TABLE IF EXISTS {stage}")
        cur.execute("DELETE FROM risk_scores_stage_chunks WHERE score_date = %s", (score_date,))
        cur.execute(
            f"CREATE TABLE {stage} PARTITION OF risk_scores_stage (CONSTRAINT ck_{stage}_day"
            " CHECK (score_date = %(d)s)) FOR VALUES IN (%(d)s)", {"d": score_date})


def copy_text(rows: pd.DataFrame, constants: dict[str, str]) -> bytes:
    """The rows as a COPY text payload in :data:`STAGE_COPY_COLUMNS` order.

    ``rows`` holds the per-customer columns (``reason_codes`` as JSON text); the
    ``constants`` (score date, model, version, time, run) are the same on every row.
    Built by Arrow's string kernels: no Python call per row.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    def text(values: object, escape: bool) -> pa.Array:
        arr = pc.cast(pa.array(values, from_pandas=True), pa.large_string())
        if escape and _needs_escape(arr):
            for raw, escaped in _ESCAPES:  # rare: one scan finds there is nothing to do
                arr = pc.replace_substring(arr, raw, escaped)
        return pc.fill_null(arr, "\\N")

    tail = "\t".join(_escape(constants[c]) for c in STAGE_COPY_COLUMNS[9:]) + "\n"
    cols = [text(rows[c], c in _TEXT_COLUMNS) for c in STAGE_COPY_COLUMNS[:9]]
    lines = pc.binary_join_element_wise(*cols, pa.scalar(tail, pa.large_string()),
                                        pa.scalar("\t", pa.large_string()))
    if not len(lines):
        return b""
    if isinstance(lines, pa.ChunkedArray):  # a column that arrived as Arrow chunks
        lines = lines.combine_chunks()
    # the strings of a fresh array lie end to end in its data buffer: that is the payload
    import numpy as np

    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[
        lines.offset:lines.offset + len(lines) + 1]
    return lines.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0])).to_pybytes()


_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def _needs_escape(arr: pa.Array | pa.ChunkedArray) -> bool:
    """Whether any string of a large_string array holds a character COPY's text format
    escapes (backslash, tab, newline, carriage return): two vectorised passes over its
    bytes (the minimum, and backslashes), a third only when a control byte is there."""
    import numpy as np

    if hasattr(arr, "chunks"):  # a ChunkedArray: each of its arrays
        return any(_needs_escape(chunk) for chunk in arr.chunks)
    data = arr.buffers()[2]
    if data is None or not len(arr):
        return False
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)
    chars = np.frombuffer(data, dtype=np.uint8)[offsets[arr.offset]:offsets[arr.offset + len(arr)]]
    if not len(chars):
        return False
    if chars.min() < 32 and np.isin(chars, np.array([9, 10, 13], dtype=np.uint8)).any():
        return True
    return bool((chars == 92).any())


_TEXT_COLUMNS = {"customer_id", "segment", "risk_band", "decision", "reason_codes"}


def _escape(value: str) -> str:
    for raw, escaped in _ESCAPES:
        value = value.replace(raw, escaped)
    return value


def write_stage_chunk(
    engine: Engine, score_date: dt.date, chunk: int, n_chunks: int, payload: bytes,
    n_rows: int, stats: dict[str, Any], run: dict[str, str],
) -> int:
    """Replace one chunk in the day's stage (COPY) and record its counts, in one
    transaction; ``run`` names ``model_name``, ``model_version`` and ``run_id``.

    A chunk with no row in risk_scores_stage_chunks has no staged row either (both are
    written together), so only a retried chunk pays for deleting its earlier rows.
    """
    stage = stage_name(score_date)
    with raw_cursor(engine) as cur:
        cur.execute("DELETE FROM risk_scores_stage_chunks WHERE score_date = %s AND chunk = %s"
                    " RETURNING chunk", (score_date, chunk))
        if cur.fetchone() is not None:
            # the predicate is built from two ints (chunk_predicate), the name from a date
            cur.execute(f"DELETE FROM {stage} WHERE "  # nosec B608 - ints and a date only
                        f"{chunk_predicate(chunk, n_chunks)}")
        # in 1 MB blocks: the driver takes the GIL back once per block, not per 8 kB
        cur.copy_expert(f"COPY {stage} ({', '.join(STAGE_COPY_COLUMNS)}) FROM STDIN",
                        io.BytesIO(payload), size=1 << 20)
        cur.execute(
            "INSERT INTO risk_scores_stage_chunks (score_date, chunk, n_chunks, n_rows,"
            " model_name, model_version, run_id, stats) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (score_date, chunk, n_chunks, n_rows, run["model_name"], run["model_version"],
             run["run_id"], json.dumps(stats)))
    return n_rows


def staged_chunks(engine: Engine, score_date: dt.date) -> list[dict[str, Any]]:
    """The day's staged chunks' monitoring counts, in chunk order."""
    with raw_cursor(engine) as cur:
        cur.execute("SELECT stats FROM risk_scores_stage_chunks WHERE score_date = %s"
                    " ORDER BY chunk", (score_date,))
        return [r[0] for r in cur.fetchall()]


def _already_published(cur: Any, score_date: dt.date, expected_rows: int, model_version: str,
                       run_id: str) -> int | None:
    """This run's row count when it already published the date (a retry after the
    commit, e.g. the task died handing its summary to Airflow), else None."""
    cur.execute("SELECT count(*) FILTER (WHERE run_id = %s AND model_version = %s),"
                " count(*) FROM risk_scores WHERE score_date = %s",
                (run_id, model_version, score_date))
    mine, total = cur.fetchone() or (0, 0)
    return int(total) if mine == total == expected_rows else None


def _check_stage(cur: Any, score_date: dt.date, expected_rows: int, model_version: str,
                 run_id: str) -> None:
    """Every chunk of this run and version staged, and exactly ``expected_rows`` rows."""
    cur.execute(
        "SELECT count(*), coalesce(sum(n_rows), 0), max(n_chunks),"
        " count(*) FILTER (WHERE model_version <> %s OR run_id <> %s)"
        " FROM risk_scores_stage_chunks WHERE score_date = %s",
        (model_version, run_id, score_date))
    chunks, rows, n_chunks, foreign = cur.fetchone()
    staged = rows
    if chunks == n_chunks and not foreign:
        cur.execute(f"SELECT count(*) FROM {stage_name(score_date)}")  # nosec B608 - a date
        staged = cur.fetchone()[0]
    if chunks != (n_chunks or 0) or staged != rows or rows != expected_rows or foreign:
        raise RuntimeError(
            f"stage for {score_date} holds {staged} rows in {chunks} of {n_chunks} chunks "
            f"({foreign} chunks from another run or version), expected {expected_rows}: "
            "not publishing")


def publish(
    engine: Engine, score_date: dt.date, expected_rows: int, monitoring: dict[str, Any],
    model_name: str, model_version: str, run_id: str,
) -> int:
    """Swap the staged date into risk_scores and record monitoring, atomically.

    Idempotent for its run: when the stage is gone because this very run (same run id
    and model version) already published the date, it returns that row count.

    Raises:
        RuntimeError: the stage does not hold exactly ``expected_rows`` rows of this
            run and model version in every chunk of its plan: nothing is published.
    """
    stage, live = stage_name(score_date), partition_name(score_date)
    with raw_cursor(engine) as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (stage,))
        if not cur.fetchone()[0] and expected_rows:
            done = _already_published(cur, score_date, expected_rows, model_version, run_id)
            if done is not None:
                return done
        _check_stage(cur, score_date, expected_rows, model_version, run_id)
        # the primary key's index, built once on the whole day (not row by row while
        # staging: COPY into a keyed table measured 1.5x the COPY plus this build), before
        # anything a reader uses is locked; the swap makes it the key, attaching adopts it
        cur.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")  # sort in memory
        cur.execute(f"CREATE UNIQUE INDEX {stage}_key ON {stage} (customer_id, score_date)")
        _write_monitoring(cur, score_date, monitoring, model_name, model_version, run_id)
        cur.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
        _swap(cur, score_date, stage, live)
        cur.execute("DELETE FROM risk_scores_stage_chunks WHERE score_date = %s", (score_date,))
    return int(expected_rows)


def _swap(cur: Any, score_date: dt.date, stage: str, live: str) -> None:
    """Drop the day's partition (if any), attach the staged one in its place.

    Every name comes from a date (stage_name, partition_name); the day is a parameter.
    """
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (live,))
    if cur.fetchone()[0]:
        cur.execute(f"ALTER TABLE risk_scores DETACH PARTITION {live}")
        cur.execute(f"DROP TABLE {live}")
    # rows of the day written straight into risk_scores before it had a partition
    cur.execute("DELETE FROM risk_scores_default WHERE score_date = %s", (score_date,))
    cur.execute(f"ALTER TABLE risk_scores_stage DETACH PARTITION {stage}")
    # a constraint on the index built at publish (catalog only: the columns are NOT NULL,
    # the detach holds the table's lock already). Attaching adopts only an index that
    # backs a constraint like the parent's key; a bare unique index it would not, and
    # would build a second one here, readers of the day waiting
    cur.execute(f"ALTER TABLE {stage} ADD CONSTRAINT {stage}_key PRIMARY KEY"
                f" USING INDEX {stage}_key")
    cur.execute(f"ALTER TABLE {stage} RENAME TO {live}")
    cur.execute(f"ALTER INDEX {stage}_key RENAME TO {live}_key")  # and its constraint
    cur.execute(f"ALTER TABLE {live} RENAME CONSTRAINT ck_{stage}_day TO ck_{live}_day")
    cur.execute(f"ALTER TABLE risk_scores ATTACH PARTITION {live} FOR VALUES IN (%s)",
                (score_date,))


def _write_monitoring(cur: Any, score_date: dt.date, monitoring: dict[str, Any],
                      model_name: str, model_version: str, run_id: str) -> None:
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
