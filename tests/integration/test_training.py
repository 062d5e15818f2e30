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
    assert set(first["candidates"]) == {"logistic_regression", "random_forest", "xgboost"}
    fp = first["fingerprint"]
    assert fp["train_rows"] > 0 and fp["validation_rows"] > 0 and fp["test_rows"] > 0
    client = MlflowClient(tracking_uri=uri)
    assert str(client.get_model_version_by_alias(name, "challenger").version) == first["version"]
    decision = first["promotion"]
    if decision["decision"] == "promoted":
        assert str(client.get_model_version_by_alias(name, "champion").version) == first["version"]
    log = promotions(make_engine(history), name)
    assert log[-1]["decision"] == decision["decision"] and log[-1]["reasons"]

    # the parent run holds one nested run per candidate, each with plots and a model card
    parent = client.get_run(first["parent_run_id"])
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert len(children) == 3
    for child in children:
        assert child.data.metrics["test_roc_auc"] > 0.5
        names = {a.path for a in client.list_artifacts(child.info.run_id, "plots")}
        assert {"plots/roc.png", "plots/calibration.png", "plots/ks.png"} <= names
        assert "model_card.md" in {a.path for a in client.list_artifacts(child.info.run_id)}

    # the training set used only what was observable on D: label windows end before D
    engine = sa.create_engine(history)
    with engine.connect() as conn:
        latest_window = conn.execute(sa.text(
            "SELECT max(window_end) FROM customer_labels WHERE label_strategy='forward_window'"
        )).scalar_one()
    engine.dispose()
    assert latest_window < AS_OF


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
