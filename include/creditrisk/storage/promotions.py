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
