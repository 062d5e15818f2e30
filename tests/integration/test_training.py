"""Training end to end: real warehouse, real MLflow store, registry aliases, the gate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from creditrisk.model.train import load_config, train
from creditrisk.storage.db import make_engine
from creditrisk.storage.promotions import promotions
from tests.warehouse import load_generated

pytestmark = pytest.mark.slow
END = dt.date(2019, 2, 13)
AS_OF = dt.date(2019, 2, 14)


@pytest.fixture(scope="module")
def history(warehouse_copy, tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]

    with warehouse_copy("crtest_training_module") as url:
        load_generated(url, tmp_path_factory.mktemp("landing"), customers=1500, days=90,
                       end_date=END, seed=8)
        yield url


def test_train_registers_a_challenger_and_the_gate_decides(
    history: str, mlflow_env: tuple[str, str]
) -> None:
    from mlflow import MlflowClient

    uri, name = mlflow_env
    first = train(AS_OF, database_url=history, tracking_uri=uri, model_name=name,
                  run_id="t1", promote=True)
    rungs = [r["rung"] for r in first["ladder"]]
    assert rungs == ["recency", "rfm_logistic", "woe_scorecard", "logistic_regression",
                     "xgboost"]
    assert sum(r["selected"] for r in first["ladder"]) == 1
    assert first["selected"] == next(r["rung"] for r in first["ladder"] if r["selected"])
    fp = first["fingerprint"]
    for part in ("train", "calibration", "validation", "test"):
        assert fp[f"{part}_rows"] > 0, part
    client = MlflowClient(tracking_uri=uri)
    assert str(client.get_model_version_by_alias(name, "challenger").version) == first["version"]
    decision = first["promotion"]
    assert decision["decision"] in {"promoted", "rejected"}
    if decision["decision"] == "promoted":
        assert str(client.get_model_version_by_alias(name, "champion").version) == first["version"]
    log = promotions(make_engine(history), name)
    assert log[-1]["decision"] == decision["decision"] and len(log[-1]["reasons"]) == 5

    # the parent run holds the ladder, the intervals, calibration by band and the label
    # sensitivity table; one nested run per rung, the selected one with plots and a card
    parent = client.get_run(first["parent_run_id"])
    folders = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"ladder", "labels", "evaluation"} <= folders
    evaluation = {a.path for a in client.list_artifacts(parent.info.run_id, "evaluation")}
    assert {"evaluation/calibration_by_band.csv", "evaluation/calibration_by_decile.csv",
            "evaluation/intervals.json", "evaluation/feature_stability.csv"} <= evaluation
    assert {"labels/label_sensitivity.csv"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id, "labels")}
    for key in ("test_auc_lo", "test_auc_hi", "test_ece", "test_brier_lo", "test_ks_hi",
                "test_mean_pd", "test_bad_rate", "test_auc_recency_only"):
        assert key in parent.data.metrics, key
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert len(children) == len(rungs)
    chosen = [c for c in children if c.data.tags["selected"] == "true"]
    assert len(chosen) == 1
    names = {a.path for a in client.list_artifacts(chosen[0].info.run_id, "plots")}
    assert {"plots/roc.png", "plots/calibration.png", "plots/ks.png"} <= names
    assert "model_card.md" in {a.path for a in client.list_artifacts(chosen[0].info.run_id)}
    for child in children:
        assert child.data.metrics["val_auc"] > 0.5

    # the training set used only what was observable on D: label windows end before D
    engine = sa.create_engine(history)
    with engine.connect() as conn:
        latest_window = conn.execute(sa.text(
            "SELECT max(window_end) FROM customer_labels WHERE label_strategy='forward_window'"
        )).scalar_one()
    engine.dispose()
    assert latest_window < AS_OF
    # and the registered model is one Pipeline whose PD is calibrated (the API serves it),
    # stored as skops and loaded hash-verified, as scoring and the API load it
    from creditrisk.registry import ModelRef, load_pipeline

    model = load_pipeline(ModelRef(name, first["version"], "", "challenger"), uri)
    assert type(model).__name__ == "Pipeline"
    assert type(model.named_steps["model"]).__name__ == "CalibratedClassifierCV"
    assert_hashes_recorded(uri, name)


def assert_hashes_recorded(uri: str, name: str) -> None:
    """Every registered version carries the sha256 of its model files and of its
    reference.json, equal to those of the files the artifact store holds; none is a pickle."""
    import tempfile

    import mlflow.artifacts
    from mlflow import MlflowClient

    from creditrisk.registry import (
        MODEL_SHA256_TAG,
        REFERENCE_SHA256_TAG,
        artifact_digest,
        file_sha256,
    )

    client = MlflowClient(tracking_uri=uri)
    versions = client.search_model_versions(f"name = '{name}'")
    assert versions
    for mv in versions:
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = Path(mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{mv.version}", dst_path=f"{tmp}/m",
                tracking_uri=uri))
            assert mv.tags[MODEL_SHA256_TAG] == artifact_digest(model_dir), mv.version
            assert (model_dir / "model.skops").exists()
            assert not list(model_dir.rglob("*.pkl")), mv.version
            reference = mlflow.artifacts.download_artifacts(
                run_id=mv.run_id, artifact_path="reference.json", dst_path=f"{tmp}/r",
                tracking_uri=uri)
            assert mv.tags[REFERENCE_SHA256_TAG] == file_sha256(reference), mv.version


def test_a_deliberately_leaky_setup_is_rejected(
    history: str, mlflow_env: tuple[str, str]
) -> None:
    """The original brief's RFM-cluster label with same-date RFM features must not train."""
    from creditrisk.features.labels import LeakageError

    uri, name = mlflow_env
    cfg = load_config()
    cfg["dataset"]["label_strategy"] = "rfm_kmeans"
    with pytest.raises(LeakageError, match="rfm_kmeans"):
        train(AS_OF, database_url=history, tracking_uri=uri, model_name=name, run_id="leaky",
              config=cfg)


def test_dag_test_of_train_model(
    load_dag, warehouse_env: Path, db_url: str, mlflow_env: tuple[str, str]  # type: ignore[no-untyped-def]
) -> None:
    from mlflow import MlflowClient

    uri, name = mlflow_env
    load_generated(db_url, warehouse_env, customers=700, days=90, end_date=END, seed=13)
    run = load_dag("train_model").test(logical_date=dt.datetime(2019, 2, 18, 4, tzinfo=dt.UTC))
    assert run.state == "success"
    client = MlflowClient(tracking_uri=uri)
    challenger = client.get_model_version_by_alias(name, "challenger")
    assert challenger.tags["as_of"] == "2019-02-14"
    assert promotions(make_engine(db_url), name)
    assert_hashes_recorded(uri, name)


def test_manual_mode_records_the_verdict_and_leaves_the_alias_to_a_person(
    history: str, mlflow_env: tuple[str, str]
) -> None:
    from mlflow import MlflowClient

    uri, name = mlflow_env
    cfg = load_config()
    cfg["promotion"]["mode"] = "manual"
    res = train(AS_OF, database_url=history, tracking_uri=uri, model_name=name,
                run_id="manual", promote=True, config=cfg)
    decision = res["promotion"]
    assert decision["mode"] == "manual"
    assert decision["decision"] in {"recommended", "rejected"}  # never "promoted"
    client = MlflowClient(tracking_uri=uri)
    aliases = client.get_registered_model(name).aliases
    assert "champion" not in aliases
    assert promotions(make_engine(history), name)[-1]["decision"] == decision["decision"]
    version = client.get_model_version(name, res["version"])
    assert version.tags["promotion_decision"] == decision["decision"]
    assert_hashes_recorded(uri, name)
