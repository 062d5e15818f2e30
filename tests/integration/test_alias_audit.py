"""Every move of ``champion`` audited (issue 17, items 4 and 5): real MLflow and Postgres.

A move made outside the platform (as the MLflow UI does it: ``set_registered_model_alias``)
is found by comparing the alias with the last ``model_promotions`` row, recorded once as
``external`` and alerted; ``creditrisk promote --previous`` goes back with a ``rollback`` row.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from creditrisk.errors import InputError
from creditrisk.model.alias_audit import audit_champion, unexplained_move
from creditrisk.model.promote import promote_version
from creditrisk.storage.db import make_engine
from creditrisk.storage.promotions import promotions


def _versions(uri: str, name: str, n: int, artifacts: Path) -> list[str]:
    """``n`` versions of ``name`` (a tiny artifact each: the audit never loads them)."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model(name)
    experiment = client.create_experiment(f"{name}-audit", artifact_location=artifacts.as_uri())
    out = []
    for i in range(n):
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_text(f"version {i}", "m/readme.txt")
        out.append(str(client.create_model_version(
            name, f"{run.info.artifact_uri}/m", run_id=run.info.run_id).version))
    return out


def test_a_move_made_outside_the_platform_is_recorded_once_and_alerted(
    db_url: str, mlflow_env: tuple[str, str], caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient

    uri, name = mlflow_env
    v1, v2 = _versions(uri, name, 2, tmp_path)
    engine = make_engine(db_url)
    try:
        promote_version(database_url=db_url, tracking_uri=uri, model_name=name, version=v1,
                        decided_by="test")
        assert unexplained_move(engine, name, v1) is None
        assert audit_champion(engine, name, v1, "test") is None  # explained: no row
        # what moving the alias in the MLflow UI does
        MlflowClient(tracking_uri=uri).set_registered_model_alias(name, "champion", v2)
        caplog.set_level(logging.WARNING)
        move = audit_champion(engine, name, v2, detected_by="score_customers")
        assert move == {"version": v2, "previous": v1}
        # a second detector (the next run, or another component) records nothing more
        assert audit_champion(engine, name, v2, detected_by="api") is None
        log = promotions(engine, name)
        assert [(r["model_version"], r["previous_champion"], r["decision"]) for r in log] == [
            (v1, None, "manual"), (v2, v1, "external")]
        assert log[-1]["decided_by"] == "mlflow-ui-or-api (detected by score_customers)"
        alerts = [r for r in caplog.records if "ALERT alias_moved" in r.getMessage()]
        assert len(alerts) == 1, [r.getMessage() for r in caplog.records]
        assert unexplained_move(engine, name, v2) is None
    finally:
        engine.dispose()


def test_promote_previous_goes_back_to_the_last_champion_with_its_row(
    db_url: str, mlflow_env: tuple[str, str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient

    from creditrisk.cli import app
    from creditrisk.config import get_settings

    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()

    uri, name = mlflow_env
    v1, v2, v3 = _versions(uri, name, 3, tmp_path)
    client = MlflowClient(tracking_uri=uri)
    with pytest.raises(InputError, match="nothing to roll back to"):
        promote_version(database_url=db_url, tracking_uri=uri, model_name=name, version=None,
                        previous=True, decided_by="test")
    for version in (v1, v2, v3):
        promote_version(database_url=db_url, tracking_uri=uri, model_name=name,
                        version=version, decided_by="test")
    runner = CliRunner()
    env: dict[str, str] = {}
    res = runner.invoke(app, ["promote", "--previous", "--by", "ops"], env=env)
    assert res.exit_code == 0, res.output
    assert str(client.get_model_version_by_alias(name, "champion").version) == v2
    res = runner.invoke(app, ["promote", "--previous", "--by", "ops"], env=env)
    assert res.exit_code == 0, res.output
    # back from v2: the newest champion before it that is not v2 is v3 (the one rolled back
    # from), so two rollbacks toggle; the operator names a version to go further back
    assert str(client.get_model_version_by_alias(name, "champion").version) == v3
    log = promotions(make_engine(db_url), name)
    assert [(r["model_version"], r["previous_champion"], r["decision"], r["decided_by"])
            for r in log[-2:]] == [(v2, v3, "rollback", "ops"), (v3, v2, "rollback", "ops")]
    assert runner.invoke(app, ["promote"], env=env).exit_code != 0  # neither option
    assert runner.invoke(app, ["promote", "--previous", "--version", v1],
                         env=env).exit_code != 0
