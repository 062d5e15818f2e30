"""The drift alert that ``score_customers.publish`` sends through :mod:`creditrisk.alerts`.

Task-failure alerts and the scoring deadline go through the shared notifier,
``plugins/creditrisk_notifier.py`` (``CreditRiskNotifier``), set by
:func:`dag_common.conventions.default_args`.
"""

from __future__ import annotations

from typing import Any


def alert_on_drift(result: dict[str, Any], run_id: str) -> bool:
    """After ``publish``: send the PSI alert when the day was flagged; True if flagged."""
    if not result.get("psi_alert"):
        return False
    from creditrisk import alerts

    alerts.send(alerts.psi_over_threshold(
        score_date=str(result["score_date"]), model_name=str(result.get("model_name", "")),
        model_version=str(result["model_version"]), psi_score=result.get("psi_score"),
        drifted=dict(result.get("psi_drifted") or {}),
        threshold=float(result.get("psi_threshold", 0.0)), run_id=run_id))
    return True
