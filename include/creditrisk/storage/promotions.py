"""All SQL on model_promotions (the promotion audit log)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def record_promotion(
    engine: Engine,
    *,
    model_name: str,
    model_version: str,
    previous_champion: str | None,
    decision: str,
    decided_by: str,
    reasons: list[str],
    metrics: dict[str, Any],
    run_id: str | None,
) -> None:
    """Append one decision to ``model_promotions``."""
    import sqlalchemy as sa

    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO model_promotions (model_name, model_version, previous_champion,"
                " decision, decided_by, reasons, metrics, run_id) VALUES (:n, :v, :p, :d, :b,"
                " CAST(:r AS jsonb), CAST(:m AS jsonb), :run)"
            ),
            {"n": model_name, "v": model_version, "p": previous_champion, "d": decision,
             "b": decided_by, "r": json.dumps(reasons), "m": json.dumps(metrics, default=str),
             "run": run_id},
        )


def promotions(engine: Engine, model_name: str) -> list[dict[str, Any]]:
    """The decisions on ``model_name``, oldest first."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT model_version, previous_champion, decision, decided_by, reasons,"
                " metrics, run_id FROM model_promotions WHERE model_name = :n"
                " ORDER BY promotion_id"
            ),
            {"n": model_name},
        ).mappings()
        return [dict(r) for r in rows]


#: Decisions that moved (or, for ``promoted``, recorded moving) the ``champion`` alias.
MOVES: tuple[str, ...] = ("promoted", "manual", "rollback", "external")
_MOVES_SQL = "('promoted', 'manual', 'rollback', 'external')"


def last_move(engine: Engine, model_name: str) -> dict[str, Any] | None:
    """The newest row that moved ``champion`` (its version is where the alias should be)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT promotion_id, model_version, previous_champion, decision,"  # nosec B608 - the IN list is a module constant
                    " decided_by, decided_at FROM model_promotions WHERE model_name = :n"
                    f" AND decision IN {_MOVES_SQL} ORDER BY promotion_id DESC LIMIT 1"),
            {"n": model_name}).mappings().first()
    return dict(row) if row else None


def previous_champion(engine: Engine, model_name: str, current: str | None) -> str | None:
    """The version that held ``champion`` before ``current``: the newest recorded move to a
    version other than ``current`` (what ``creditrisk promote --previous`` goes back to)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        value = conn.execute(
            sa.text("SELECT model_version FROM model_promotions WHERE model_name = :n"  # nosec B608 - the IN list is a module constant
                    f" AND decision IN {_MOVES_SQL} AND model_version IS DISTINCT FROM :c"
                    " ORDER BY promotion_id DESC LIMIT 1"),
            {"n": model_name, "c": current}).scalar()
    return None if value is None else str(value)


def record_external_move(engine: Engine, *, model_name: str, version: str,
                         previous: str | None, detected_by: str) -> bool:
    """Record a move of ``champion`` to ``version`` no row explains; True when recorded.

    Exactly once, whoever detects it first: under a transaction-scoped advisory lock on the
    model, the row is written only if the newest move on record is not already ``version``.
    """
    import sqlalchemy as sa

    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                     {"k": f"model_promotions:{model_name}"})
        done = conn.execute(
            sa.text("INSERT INTO model_promotions (model_name, model_version,"  # nosec B608 - the IN list is a module constant
                    " previous_champion, decision, decided_by, reasons, metrics)"
                    " SELECT :n, :v, :p, 'external', :b, CAST(:r AS jsonb), '{}'::jsonb"
                    " WHERE (SELECT model_version FROM model_promotions WHERE model_name = :n"
                    f" AND decision IN {_MOVES_SQL} ORDER BY promotion_id DESC LIMIT 1)"
                    " IS DISTINCT FROM :v"),
            {"n": model_name, "v": version, "p": previous,
             "b": f"mlflow-ui-or-api (detected by {detected_by})",
             "r": json.dumps([f"champion found at v{version} while the last recorded move "
                              f"was to v{previous}: moved outside the platform (MLflow UI or "
                              f"its API); detected by {detected_by}"])})
        return bool(done.rowcount)
