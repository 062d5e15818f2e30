"""Training end to end: real warehouse, real MLflow store, registry aliases, the gate."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sklearn.metrics import roc_auc_score

from creditrisk.model.dataset import build_training_set
from creditrisk.model.promote import gate, promote_version
from creditrisk.model.train import LABEL, load_config, pinned_config, train
from creditrisk.scoring.decide import load_policy
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
    failed = [r for r in decision["reasons"] if r.startswith("FAIL: ")]
    if decision["decision"] == "promoted":  # every check passed, and the alias moved
        assert failed == []
        assert str(client.get_model_version_by_alias(name, "champion").version) == first["version"]
    else:  # refused for a stated reason, and nothing became champion
        assert failed
        assert "champion" not in client.get_registered_model(name).aliases
    log = promotions(make_engine(history), name)
    assert log[-1]["decision"] == decision["decision"] and len(log[-1]["reasons"]) == 5
    assert_the_ui_carries_the_facts(client, name, first)

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


def assert_the_ui_carries_the_facts(client: Any, name: str, trained: dict[str, Any]) -> None:
    """Issue 17 item 3: what the MLflow UI shows for the model and the version."""
    about = client.get_registered_model(name).description
    for fact in ("**Predicts**", "**Label** (`forward_window`, 14 days)", "**Population**",
                 "**Feeds** the lending policy"):
        assert fact in about, fact
    mv = client.get_model_version(name, trained["version"])
    card, verdict = mv.description, trained["promotion"]
    for section in ("### Test metrics", "### Ladder (validation)",
                    "### Calibration by band (test)", "### Data", "### Gate verdict"):
        assert section in card, section
    auc = trained["test"]["auc_lo"]
    assert f"{auc:.4f}" in card  # the interval's lower bound, as the gate read it
    assert f"data hash `{trained['fingerprint']['hash']}`" in card
    assert f"**{verdict['decision']}** (auto mode)" in card
    for reason in verdict["reasons"]:
        assert f"- {reason}" in card
    assert all(f"| {r['rung']} |" in card for r in trained["ladder"])
    tags = mv.tags
    assert tags["label_strategy"] == "forward_window"
    assert tags["training_as_of"] == AS_OF.isoformat()
    assert tags["gate_verdict"] == ("passed" if verdict["decision"] == "promoted" else "failed")
    inputs = client.get_run(trained["parent_run_id"]).inputs.dataset_inputs
    contexts = {next(t.value for t in d.tags if t.key == "mlflow.data.context"): d.dataset
                for d in inputs}
    assert set(contexts) == {"training", "testing"}
    fp = trained["fingerprint"]
    assert contexts["training"].name == f"train as of {fp['train_dates']}"
    assert contexts["testing"].name == f"test as of {fp['test_dates']}"
    assert json.loads(contexts["testing"].profile)["num_rows"] == fp["test_rows"]


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


# --- the gate, floor by floor --------------------------------------------------------------

GATE_FLOORS = {"max_calibration_gap": 0.03, "max_ece": 0.05, "min_auc_lower": 0.70}


def _passing_report(y: Any, pd_: Any) -> dict[str, Any]:
    """Evaluation inputs that clear every floor by a margin (the gate's real dict shape)."""
    return {
        "rung": "logistic_regression", "recency_auc": 0.62, "y": y, "pd": pd_,
        "in_the_large": {"mean_pd": 0.10, "bad_rate": 0.12},  # gap 0.02 <= 0.03
        "intervals": {"auc": {"estimate": 0.78, "lo": 0.72, "hi": 0.84},  # lo > 0.70
                      "ece": {"estimate": 0.03, "lo": 0.01, "hi": 0.05},  # <= 0.05
                      "brier": {"estimate": 0.08, "lo": 0.07, "hi": 0.09},
                      "ks": {"estimate": 0.40, "lo": 0.33, "hi": 0.47}},
        "gain_vs_recency": {"estimate": 0.08, "lo": 0.02, "hi": 0.14},  # lo > 0
    }


def _failing_one_floor(base: dict[str, Any], floor: str) -> dict[str, Any]:
    """``base`` with exactly one floor missed, by a hair or on its strict edge."""
    report = copy.deepcopy(base)
    if floor == "calibration in the large":
        report["in_the_large"] = {"mean_pd": 0.10, "bad_rate": 0.135}  # gap 0.035
    elif floor == "calibration error by PD decile":
        report["intervals"]["ece"] = {"estimate": 0.055, "lo": 0.03, "hi": 0.08}
    elif floor == "AUC":
        report["intervals"]["auc"] = {"estimate": 0.76, "lo": 0.70, "hi": 0.82}  # not above
    elif floor == "beats recency alone":
        report["gain_vs_recency"] = {"estimate": 0.03, "lo": 0.0, "hi": 0.06}  # not above 0
    else:
        raise AssertionError(floor)
    return report


def test_the_gate_refuses_each_failed_floor_and_a_weaker_challenger_and_keeps_the_champion(
    history: str, mlflow_env: tuple[str, str]
) -> None:
    """Long because it is one scenario on one registry: a champion, a challenger, and the
    gate's verdict on it under each failed floor, then a weaker model, then a pass."""
    import mlflow.sklearn
    from mlflow import MlflowClient

    uri, name = mlflow_env
    cfg = load_config()
    gate_cfg = copy.deepcopy(cfg["promotion"])
    assert {k: float(gate_cfg[k]) for k in GATE_FLOORS} == GATE_FLOORS  # the documented floors
    assert gate_cfg["mode"] == "auto"
    trained = train(AS_OF, database_url=history, tracking_uri=uri, model_name=name,
                    run_id="gate-champion", promote=False,
                    config=pinned_config("logistic_regression"))
    champion = trained["version"]
    promote_version(database_url=history, tracking_uri=uri, model_name=name,
                    version=champion, decided_by="test")
    client = MlflowClient(tracking_uri=uri)
    source = client.get_model_version(name, champion)
    challenger = str(client.create_model_version(name, source.source,
                                                 run_id=source.run_id).version)
    engine = make_engine(history)
    try:
        test = build_training_set(engine, AS_OF, cfg["dataset"], "gate-test", float(
            load_policy()["population"]["lookback_days"])).part("test")
        y = test[LABEL].to_numpy(int)
        assert 0 < y.sum() < len(y)
        p_champion = mlflow.sklearn.load_model(f"models:/{name}/{champion}").predict_proba(
            test)[:, 1]
        # PDs that rank every bad above every good: better than any champion that is not
        # perfect itself, so the champion comparison passes and each floor stands alone
        assert roc_auc_score(y, p_champion) < 0.97
        base = _passing_report(y, np.where(y == 1, 0.9, 0.05))

        def judge(report: dict[str, Any], run: str, mode: str = "auto") -> dict[str, Any]:
            verdict = gate(engine, model_name=name, version=challenger, test=test,
                           report=report, cfg={**gate_cfg, "mode": mode}, run_id=run)
            row = promotions(engine, name)[-1]
            assert (row["model_version"], row["previous_champion"], row["decided_by"],
                    row["run_id"]) == (challenger, champion, "gate", run)
            assert (row["decision"], row["reasons"]) == (verdict["decision"], verdict["reasons"])
            assert client.get_model_version(name, challenger).tags["promotion_decision"] \
                == verdict["decision"]
            return verdict

        def champion_now() -> str:
            return str(client.get_model_version_by_alias(name, "champion").version)

        # the control: this report passes every check (recorded, not promoted, in manual)
        control = judge(base, "gate-control", mode="manual")
        assert control["decision"] == "recommended"
        assert [r[:6] for r in control["reasons"]] == ["pass: "] * 5
        assert champion_now() == champion

        for floor, reason in (
            ("calibration in the large", "calibration in the large: mean PD 0.1000 vs bad "
                                         "rate 0.1350, gap 0.0350 vs ceiling 0.03"),
            ("calibration error by PD decile", "calibration error by PD decile 0.0550 "),
            ("AUC", "AUC 0.7600, lower bound 0.7000 vs floor 0.7"),
            ("beats recency alone", "beats recency alone: AUC gain +0.0300 [+0.0000, "),
        ):
            verdict = judge(_failing_one_floor(base, floor), f"gate-{floor}")
            failed = [r for r in verdict["reasons"] if r.startswith("FAIL: ")]
            assert verdict["decision"] == "rejected", floor
            assert len(failed) == 1 and failed[0].startswith(f"FAIL: {reason}"), verdict
            assert champion_now() == champion, floor

        # a challenger that clears every floor but ranks worse than the champion
        noise = np.random.default_rng(7).uniform(0.05, 0.2, len(y))
        weaker = judge({**base, "pd": noise}, "gate-weaker")
        failed = [r for r in weaker["reasons"] if r.startswith("FAIL: ")]
        assert weaker["decision"] == "rejected"
        assert len(failed) == 1 and failed[0].startswith(
            f"FAIL: AUC gain over champion v{champion}:"), weaker
        assert champion_now() == champion
        metrics = promotions(engine, name)[-1]["metrics"]
        assert metrics["champion"]["version"] == champion and metrics["champion"]["auc_gain"] < 0

        # and the same gate, on the passing report in auto mode, does move the alias
        assert judge(base, "gate-pass")["decision"] == "promoted"
        assert champion_now() == challenger
    finally:
        engine.dispose()
    decisions = [r["decision"] for r in promotions(make_engine(history), name)]
    assert decisions == ["manual", "recommended"] + ["rejected"] * 5 + ["promoted"]
