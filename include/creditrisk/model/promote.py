"""The promotion gate (``challenger`` → ``champion``) and manual promotion.

The gate promotes only when the challenger passes absolute floors (ROC-AUC, KS,
calibration) *and* does not lose to the current champion, scored on the very same
out-of-time test rows, by more than a margin. Every decision, promoted or not, goes to
``model_promotions``, the task log and the version's tags. Registry aliases only, never
stages.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from creditrisk.catalogue import FEATURE_NAMES
from creditrisk.errors import InputError
from creditrisk.registry import CHAMPION, configure_mlflow, current_champion
from creditrisk.storage.db import check_connection, make_engine
from creditrisk.storage.promotions import record_promotion

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


def floor_checks(metrics: dict[str, float], cfg: dict[str, Any]) -> list[tuple[bool, str]]:
    """Each absolute floor as (passed, reason)."""
    lo, hi = cfg["calibration_slope"]
    slope = metrics.get("calibration_slope", float("nan"))
    return [
        (metrics["roc_auc"] >= cfg["min_roc_auc"],
         f"ROC-AUC {metrics['roc_auc']:.4f} vs floor {cfg['min_roc_auc']}"),
        (metrics["ks"] >= cfg["min_ks"], f"KS {metrics['ks']:.4f} vs floor {cfg['min_ks']}"),
        (metrics["ece"] <= cfg["max_ece"],
         f"calibration error {metrics['ece']:.4f} vs ceiling {cfg['max_ece']}"),
        (lo <= slope <= hi, f"calibration slope {slope:.3f} vs bounds [{lo}, {hi}]"),
    ]


def gate(
    engine: Engine,
    *,
    model_name: str,
    version: str,
    test: pd.DataFrame,
    challenger_test: dict[str, float],
    cfg: dict[str, Any],
    run_id: str,
) -> dict[str, Any]:
    """Decide whether ``version`` becomes champion; record and return the decision."""
    import mlflow.sklearn
    from mlflow import MlflowClient
    from sklearn.metrics import roc_auc_score

    client = MlflowClient()
    checks = floor_checks(challenger_test, cfg)
    champion = current_champion(client, model_name)
    metrics: dict[str, Any] = {"challenger": challenger_test}
    if champion is not None and champion != version:
        model = mlflow.sklearn.load_model(f"models:/{model_name}/{champion}")
        y = test["is_high_risk"].to_numpy(dtype=int)
        champion_auc = float(roc_auc_score(y, model.predict_proba(test[list(FEATURE_NAMES)])[:, 1]))
        metrics["champion"] = {"version": champion, "roc_auc": champion_auc}
        margin = float(cfg["max_auc_loss_vs_champion"])
        checks.append((
            challenger_test["roc_auc"] >= champion_auc - margin,
            f"ROC-AUC {challenger_test['roc_auc']:.4f} vs champion v{champion} "
            f"{champion_auc:.4f} on the same test set (margin {margin})",
        ))
    else:
        checks.append((True, "no current champion to compare with"))
    promoted = all(ok for ok, _ in checks)
    reasons = [("pass: " if ok else "FAIL: ") + text for ok, text in checks]
    if promoted:
        client.set_registered_model_alias(model_name, CHAMPION, version)
    decision = "promoted" if promoted else "rejected"
    client.set_model_version_tag(model_name, version, "promotion_decision", decision)
    record_promotion(
        engine, model_name=model_name, model_version=version, previous_champion=champion,
        decision=decision, decided_by="gate", reasons=reasons, metrics=metrics, run_id=run_id,
    )
    log.info("promotion gate: %s v%s %s; %s", model_name, version, decision, "; ".join(reasons))
    return {"decision": decision, "version": version, "previous_champion": champion,
            "reasons": reasons}


def promote_version(
    *, database_url: str, tracking_uri: str | None, model_name: str, version: str,
    decided_by: str, run_id: str | None = None,
) -> dict[str, Any]:
    """Move ``champion`` to ``version`` by hand (what moving the alias in the UI does), logged."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    configure_mlflow(tracking_uri)
    client = MlflowClient()
    try:
        client.get_model_version(model_name, version)
    except MlflowException:
        raise InputError(f"{model_name} has no version {version}") from None
    previous = current_champion(client, model_name)
    client.set_registered_model_alias(model_name, CHAMPION, version)
    engine = make_engine(database_url)
    try:
        check_connection(engine)
        record_promotion(
            engine, model_name=model_name, model_version=version, previous_champion=previous,
            decision="manual", decided_by=decided_by,
            reasons=[f"champion moved from v{previous} to v{version} by {decided_by}"],
            metrics={}, run_id=run_id,
        )
    finally:
        engine.dispose()
    return {"model_name": model_name, "version": version, "previous_champion": previous}
