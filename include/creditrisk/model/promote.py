"""The promotion gate (``challenger`` → ``champion``) and manual promotion.

The gate promotes only a challenger that, on the test customers of its own training run,
is calibrated in the large (mean PD within ``max_calibration_gap`` of the bad rate), has
a calibration error by PD decile within ``max_ece``, an AUC whose bootstrap lower bound
is above ``min_auc_lower``, and beats recency alone by more than the paired-bootstrap
interval; against a current champion it must win by more than that interval too. Every
decision goes to ``model_promotions``, the task log and the version's tags. In
``mode: manual`` a passing verdict is recorded as ``recommended`` and a person promotes.
Registry aliases only, never stages.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from creditrisk.errors import InputError, ServiceUnavailableError
from creditrisk.evaluation.bootstrap import auc, paired_bootstrap_diff
from creditrisk.model.describe import GATE_SECTION, gate_section
from creditrisk.registry import (
    CHAMPION,
    TRAINER,
    ModelRef,
    configure_mlflow,
    current_champion,
    load_pipeline,
    set_alias,
    set_description_section,
)
from creditrisk.storage.db import check_connection, make_engine
from creditrisk.storage.promotions import previous_champion, record_promotion

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


def floor_checks(report: dict[str, Any], cfg: dict[str, Any]) -> list[tuple[bool, str]]:
    """Each absolute check of the challenger on the test customers, as (passed, reason)."""
    large = report["in_the_large"]
    gap = abs(large["mean_pd"] - large["bad_rate"])
    auc, ece = report["intervals"]["auc"], report["intervals"]["ece"]
    gain = report["gain_vs_recency"]
    return [
        (gap <= float(cfg["max_calibration_gap"]),
         f"calibration in the large: mean PD {large['mean_pd']:.4f} vs bad rate "
         f"{large['bad_rate']:.4f}, gap {gap:.4f} vs ceiling {cfg['max_calibration_gap']}"),
        (ece["estimate"] <= float(cfg["max_ece"]),
         f"calibration error by PD decile {ece['estimate']:.4f} "
         f"[{ece['lo']:.4f}, {ece['hi']:.4f}] vs ceiling {cfg['max_ece']}"),
        (auc["lo"] > float(cfg["min_auc_lower"]),
         f"AUC {auc['estimate']:.4f}, lower bound {auc['lo']:.4f} vs floor "
         f"{cfg['min_auc_lower']}"),
        (gain["lo"] > 0,
         f"beats recency alone: AUC gain {gain['estimate']:+.4f} [{gain['lo']:+.4f}, "
         f"{gain['hi']:+.4f}] (rung {report['rung']}, recency AUC {report['recency_auc']:.4f})"),
    ]


def champion_check(model_name: str, champion: str, test: pd.DataFrame,
                   report: dict[str, Any], cfg: dict[str, Any]) -> tuple[bool, str, dict]:
    """The challenger must beat the champion on the same test customers by more than the
    paired-bootstrap interval of the difference. The champion is loaded like everywhere
    else (hash verified, skops): one that fails the check is not compared, and says why."""
    try:
        model = load_pipeline(ModelRef(model_name, champion, "", CHAMPION))
    except ServiceUnavailableError:
        raise
    except Exception as exc:  # ArtifactIntegrityError above all: never compared, said why
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return True, (f"champion v{champion} not loaded ({type(exc).__name__}: {first}): "
                      "not compared"), {"version": champion}
    try:
        p_champion = model.predict_proba(test)[:, 1]
    except Exception as exc:  # a champion trained on another feature set cannot score these
        return True, (f"champion v{champion} cannot score the current features "
                      f"({type(exc).__name__}): not compared"), {"version": champion}
    boot = cfg.get("bootstrap", {})
    diff = paired_bootstrap_diff(auc, report["y"], report["pd"], p_champion,
                                 test["customer_id"].to_numpy(),
                                 n=int(boot.get("replicates", 500)), seed=int(boot.get("seed", 0)))
    text = (f"AUC gain over champion v{champion}: {diff.estimate:+.4f} [{diff.lo:+.4f}, "
            f"{diff.hi:+.4f}] on the same test customers")
    return diff.lo > 0, text, {"version": champion, "auc_gain": diff.estimate,
                               "auc_gain_lo": diff.lo}


def gate(
    engine: Engine,
    *,
    model_name: str,
    version: str,
    test: pd.DataFrame,
    report: dict[str, Any],
    cfg: dict[str, Any],
    run_id: str,
) -> dict[str, Any]:
    """Judge ``version``; in ``auto`` mode move ``champion`` when every check passes.

    In ``manual`` mode a passing verdict is recorded as ``recommended`` and a person
    promotes (MLflow UI or ``creditrisk promote``). Every check is logged with its numbers.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    checks = floor_checks(report, cfg)
    champion = current_champion(client, model_name)
    metrics: dict[str, Any] = {"challenger": {k: v for k, v in report["intervals"].items()},
                               "in_the_large": report["in_the_large"],
                               "gain_vs_recency": report["gain_vs_recency"]}
    if champion is not None and champion != version:
        ok, text, metrics["champion"] = champion_check(model_name, champion, test, report, cfg)
        checks.append((ok, text))
    else:
        checks.append((True, "no current champion to compare with"))
    passed = all(ok for ok, _ in checks)
    mode = str(cfg.get("mode", "auto"))
    decision = ("promoted" if mode == "auto" else "recommended") if passed else "rejected"
    reasons = [("pass: " if ok else "FAIL: ") + text for ok, text in checks]
    if decision == "promoted":
        set_alias(client, model_name, CHAMPION, version)
    client.set_model_version_tag(model_name, version, "promotion_decision", decision)
    client.set_model_version_tag(model_name, version, "promotion_reasons",
                                 " | ".join(reasons)[:5000])
    client.set_model_version_tag(model_name, version, "gate_verdict",
                                 "passed" if passed else "failed")
    set_description_section(client, model_name, version, GATE_SECTION,
                            gate_section(decision, mode, reasons))
    record_promotion(
        engine, model_name=model_name, model_version=version, previous_champion=champion,
        decision=decision, decided_by="gate", reasons=reasons, metrics=metrics, run_id=run_id,
    )
    log.info("promotion gate (%s mode): %s v%s %s; %s", mode, model_name, version, decision,
             "; ".join(reasons))
    return {"decision": decision, "mode": mode, "version": version,
            "previous_champion": champion, "reasons": reasons}


def promote_version(
    *, database_url: str, tracking_uri: str | None, model_name: str, version: str | None,
    decided_by: str, run_id: str | None = None, previous: bool = False,
) -> dict[str, Any]:
    """Move ``champion`` by hand (what moving the alias in the UI does), with its audit row.

    ``version``: to that version (decision ``manual``). ``previous=True``: back to the last
    champion on record in ``model_promotions`` before the current one (decision
    ``rollback``); refused when there is none.
    """
    from mlflow import MlflowClient

    configure_mlflow(tracking_uri, role=TRAINER)
    client = MlflowClient()
    current = current_champion(client, model_name)
    engine = make_engine(database_url)
    try:
        check_connection(engine)
        if previous:
            version = previous_champion(engine, model_name, current)
            if version is None:
                raise InputError(f"{model_name}: model_promotions records no champion before "
                                 f"v{current}: nothing to roll back to; next: creditrisk "
                                 "promote --version N")
        if version is None:
            raise InputError("give --version N or --previous")
        _require_version(client, model_name, version)
        set_alias(client, model_name, CHAMPION, version)
        decision = "rollback" if previous else "manual"
        record_promotion(
            engine, model_name=model_name, model_version=version, previous_champion=current,
            decision=decision, decided_by=decided_by,
            reasons=[f"champion moved from v{current} to v{version} by {decided_by}"
                     + (" (rollback to the previous champion)" if previous else "")],
            metrics={}, run_id=run_id,
        )
    finally:
        engine.dispose()
    return {"model_name": model_name, "version": version, "previous_champion": current,
            "decision": decision}


def _require_version(client: Any, model_name: str, version: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(model_name, version)
    except MlflowException:
        raise InputError(f"{model_name} has no version {version}") from None
