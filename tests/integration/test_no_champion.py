"""No champion is said plainly, in one line, with the gate's failed checks and what next."""

from __future__ import annotations

import pytest

from creditrisk.errors import CreditRiskError, InputError
from creditrisk.storage.db import make_engine
from creditrisk.storage.promotions import record_promotion

REASONS = ["FAIL: calibration in the large: mean PD 0.52 vs bad rate 0.49, gap 0.03 vs 0.03",
           "pass: calibration error by PD decile 0.03",
           "FAIL: AUC 0.4992, lower bound 0.4789 vs floor 0.7"]


def _reject(url: str, version: str = "1", decision: str = "rejected") -> None:
    engine = make_engine(url)
    try:
        record_promotion(engine, model_name="m", model_version=version, previous_champion=None,
                         decision=decision, decided_by="gate", reasons=REASONS, metrics={},
                         run_id="r")
    finally:
        engine.dispose()


def test_up_stops_with_the_gates_failed_checks(db_url: str) -> None:
    from devstack.stack import _require_champion

    _require_champion(db_url)  # no decision yet: nothing to say
    _reject(db_url)
    with pytest.raises(CreditRiskError) as err:
        _require_champion(db_url)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("no champion: the promotion gate refused version 1")
    assert "AUC 0.4992, lower bound 0.4789" in message and "calibration in the large" in message
    assert "calibration error by PD decile" not in message  # passed checks are not failures
    assert "creditrisk promote --version 1" in message
    _reject(db_url, "2", "promoted")
    _require_champion(db_url)  # a champion exists: up goes on


def test_scoring_and_ready_name_the_refusal(mlflow_env: tuple[str, str]) -> None:
    """What score_customers and /ready print when the gate refused the only version."""
    from mlflow import MlflowClient

    from creditrisk.registry import resolve_alias

    uri, name = mlflow_env
    client = MlflowClient(tracking_uri=uri)
    with pytest.raises(InputError, match="no model is registered yet"):
        resolve_alias(uri, name, "champion")
    client.create_registered_model(name)
    version = client.create_model_version(name, source="file:///nowhere", run_id=None).version
    client.set_model_version_tag(name, version, "promotion_decision", "rejected")
    client.set_model_version_tag(name, version, "promotion_reasons", " | ".join(REASONS))
    with pytest.raises(InputError) as err:
        resolve_alias(uri, name, "champion")
    message = str(err.value)
    assert f"the promotion gate refused version {version}" in message
    assert "lower bound 0.4789" in message and "\n" not in message
    assert f"creditrisk promote --version {version}" in message
