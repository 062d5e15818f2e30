"""Shadow scoring of the challenger and its swap-set report, on the real warehouse with a
real registry: risk_scores untouched, atomic and idempotent, skipped without a
challenger, and a broken challenger never stops the champion."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from creditrisk.model.train import pinned_config, train
from creditrisk.registry import ModelRef, load_pipeline
from creditrisk.scoring import shadow as sh
from creditrisk.scoring.batch import prepare, publish, score_chunk, score_features
from creditrisk.scoring.decide import load_policy
from tests.warehouse import load_generated, rows

pytestmark = pytest.mark.slow
END = dt.date(2019, 2, 13)
DAY = dt.date(2019, 2, 14)
MODEL = "credit-risk-pd-shadow"


@pytest.fixture(scope="module")
def shadow_world(  # type: ignore[no-untyped-def]
    warehouse_copy, mlflow_store: str, tmp_path_factory
) -> Iterator[tuple[str, str, str, str]]:
    """History, a champion (logistic regression) and a challenger (RFM logistic, the
    newest training, so `challenger` is on it) of one registered model."""
    from mlflow import MlflowClient

    with warehouse_copy("crtest_shadow_module") as url:
        load_generated(url, tmp_path_factory.mktemp("landing"), customers=500, days=90,
                       end_date=END, seed=23)
        first = train(DAY, database_url=url, tracking_uri=mlflow_store, model_name=MODEL,
                      run_id="train-1", promote=False,
                      config=pinned_config("logistic_regression"))
        client = MlflowClient(tracking_uri=mlflow_store)
        client.set_registered_model_alias(MODEL, "champion", first["version"])
        second = train(DAY, database_url=url, tracking_uri=mlflow_store, model_name=MODEL,
                       run_id="train-2", promote=False, config=pinned_config("rfm_logistic"))
        assert str(client.get_model_version_by_alias(MODEL, "challenger").version) == str(
            second["version"]) != str(first["version"])
        yield url, mlflow_store, str(first["version"]), str(second["version"])


def _champion(url: str, uri: str, run: str, day: dt.date = DAY) -> dict:
    plan = prepare(day, database_url=url, tracking_uri=uri, model_name=MODEL,
                   alias="champion", run_id=run, chunk_customers=150).as_dict()
    for chunk in range(plan["chunks"]):
        score_chunk(plan, chunk, database_url=url, tracking_uri=uri, run_id=run)
    publish(plan, database_url=url, tracking_uri=uri, run_id=run)
    return plan


def _table(url: str, table: str, day: dt.date = DAY, without: tuple[str, ...] = ()) -> list[str]:
    drop = "".join(f" - '{c}'" for c in without)
    return [r[0] for r in rows(url, f"SELECT (to_jsonb(t){drop})::text FROM {table} t"
                                    " WHERE score_date = :d ORDER BY 1", d=day)]


def _champion_tables(url: str) -> dict[str, list[str]]:
    return {t: _table(url, t) for t in ("risk_scores", "score_monitoring")}


def _recompute(url: str, champion: str, challenger: str) -> dict:
    """The swap set from the two tables, in Python (pandas), not in the module's SQL."""
    import pandas as pd

    cols = "customer_id, probability_of_default, risk_band, decision"
    champ = pd.DataFrame(rows(url, f"SELECT {cols} FROM risk_scores WHERE score_date = :d"
                                   " AND model_version = :v", d=DAY, v=champion),
                         columns=["customer_id", "pd", "band", "decision"])
    chall = pd.DataFrame(rows(url, f"SELECT {cols} FROM shadow_scores WHERE score_date = :d"
                                   " AND model_version = :v", d=DAY, v=challenger),
                         columns=["customer_id", "pd", "band", "decision"])
    both = champ.merge(chall, on="customer_id", suffixes=("_r", "_s"))
    diff = (both["pd_s"] - both["pd_r"]).dropna().to_numpy(dtype=float)
    cells = Counter(zip(both["band_r"], both["decision_r"], both["band_s"], both["decision_s"],
                        strict=True))
    same = (both["decision_r"] == both["decision_s"]).to_numpy()
    return {"n": len(both), "n_changed": int((~same).sum()), "agreement_rate": same.mean(),
            "cells": dict(cells), "n_pd": len(diff), "mean": diff.mean(),
            "quantiles": np.quantile(diff, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])}


def test_the_challenger_is_shadow_scored_and_reported_and_risk_scores_do_not_change(
    shadow_world: tuple[str, str, str, str],
) -> None:
    from mlflow import MlflowClient

    url, uri, champion, challenger = shadow_world
    plan = _champion(url, uri, "night-1")
    before = _champion_tables(url)
    assert before["risk_scores"] and len(before["score_monitoring"]) == 1
    res = sh.shadow_score_date(plan, database_url=url, tracking_uri=uri, run_id="night-1")
    assert res["status"] == sh.PLANNED and res["challenger_version"] == challenger
    assert _champion_tables(url) == before  # every column of every row of the day

    # every customer of the day, once, with exactly what the challenger decides
    got = rows(url, "SELECT customer_id, model_name, model_version, segment,"
                    " probability_of_default, credit_score, risk_band, decision, run_id"
                    " FROM shadow_scores WHERE score_date = :d ORDER BY customer_id", d=DAY)
    from creditrisk.storage.db import make_engine
    from creditrisk.storage.features import read_features

    engine = make_engine(url)
    try:
        feats = read_features(engine, DAY)
    finally:
        engine.dispose()
    pipe = load_pipeline(ModelRef(MODEL, challenger, res["challenger_run_id"], ""), uri)
    want = score_features(pipe, feats, load_policy()).sort_values("customer_id")
    assert [r[0] for r in got] == list(want["customer_id"]) and len(got) == len(feats)
    assert {(r[1], r[2], r[8]) for r in got} == {(MODEL, challenger, "night-1")}
    assert [r[3] for r in got] == list(want["segment"])
    assert [r[6:8] for r in got] == list(zip(want["risk_band"], want["decision"], strict=True))
    np.testing.assert_allclose([np.nan if r[4] is None else r[4] for r in got],
                               want["probability_of_default"].to_numpy(dtype=float))
    champion_pd = dict(rows(url, "SELECT customer_id, probability_of_default FROM risk_scores"
                                 " WHERE score_date = :d AND segment = 'scored'", d=DAY))
    assert any(abs(champion_pd[r[0]] - r[4]) > 1e-6 for r in got if r[4] is not None)
    assert rows(url, "SELECT count(*) FROM shadow_scores_stage") == [(0,)]

    # the report equals what the two tables say, recomputed here
    (report,) = rows(url, "SELECT champion_version, challenger_version, n, n_changed,"
                          " agreement_rate, transitions, n_pd, pd_diff_mean, pd_diff_min,"
                          " pd_diff_p05, pd_diff_p25, pd_diff_p50, pd_diff_p75, pd_diff_p95,"
                          " pd_diff_max, run_id FROM swap_set_reports WHERE score_date = :d",
                     d=DAY)
    want_report = _recompute(url, champion, challenger)
    assert report[:2] == (champion, challenger) and report[15] == "night-1"
    assert report[2:4] == (want_report["n"], want_report["n_changed"]) == (len(got),
                                                                           report[3])
    assert want_report["n_changed"] > 0  # two different models: a real swap set
    assert report[4] == pytest.approx(want_report["agreement_rate"])
    assert {(c["from_band"], c["from_decision"], c["to_band"], c["to_decision"]): c["n"]
            for c in report[5]} == want_report["cells"]
    assert report[6] == want_report["n_pd"] > 0
    assert report[7] == pytest.approx(want_report["mean"])
    np.testing.assert_allclose(report[8:15], want_report["quantiles"], rtol=1e-9, atol=1e-12)

    # attached to the challenger's version in MLflow: the JSON artifact and a summary tag
    client = MlflowClient(tracking_uri=uri)
    tags = client.get_model_version(MODEL, challenger).tags
    assert tags[sh.SUMMARY_TAG] == res["summary"] and f"agreement {report[4]:.1%}" in res[
        "summary"]
    import mlflow.artifacts

    path = mlflow.artifacts.download_artifacts(run_id=res["challenger_run_id"],
                                               artifact_path=tags[sh.ARTIFACT_TAG],
                                               tracking_uri=uri)
    stored = json.loads(Path(path).read_text())
    assert (stored["n"], stored["n_changed"], stored["transitions"]) == (
        report[2], report[3], report[5])
    assert sh.SUMMARY_TAG not in client.get_model_version(MODEL, champion).tags
    # and summarised in the version's description (its card), one section, the newest night
    card = client.get_model_version(MODEL, challenger).description
    assert card.count("### Swap set (newest night)") == 1, card
    assert res["summary"] in card and "### Gate verdict" in card


def test_a_rerun_replaces_the_shadow_day_and_a_retry_after_commit_is_a_no_op(
    shadow_world: tuple[str, str, str, str],
) -> None:
    from creditrisk.storage import shadow as store
    from creditrisk.storage.db import make_engine

    url, uri, champion, challenger = shadow_world
    run_cols = ("run_id", "scored_at")
    plan = _champion(url, uri, "rerun-a")
    sh.shadow_score_date(plan, database_url=url, tracking_uri=uri, run_id="rerun-a")
    first = _table(url, "shadow_scores", without=run_cols)
    first_report = _table(url, "swap_set_reports", without=("run_id", "computed_at"))
    sh.shadow_score_date(plan, database_url=url, tracking_uri=uri, run_id="rerun-b")
    assert _table(url, "shadow_scores", without=run_cols) == first
    assert _table(url, "swap_set_reports", without=("run_id", "computed_at")) == first_report
    assert len(first_report) == 1
    assert rows(url, "SELECT DISTINCT run_id FROM shadow_scores WHERE score_date = :d",
                d=DAY) == [("rerun-b",)]
    assert rows(url, "SELECT run_id FROM swap_set_reports WHERE score_date = :d",
                d=DAY) == [("rerun-b",)]
    # the publish task died after its commit: the retry finds this run's rows and stops
    snapshot = _table(url, "shadow_scores") + _table(url, "swap_set_reports")
    engine = make_engine(url)
    try:
        again = store.publish(engine, DAY, len(first), MODEL, champion, challenger, "rerun-b")
        assert again["run_id"] == "rerun-b" and again["n"] == len(first)
        with pytest.raises(RuntimeError, match="not publishing"):  # another run: refused
            store.publish(engine, DAY, len(first), MODEL, champion, challenger, "other")
    finally:
        engine.dispose()
    assert _table(url, "shadow_scores") + _table(url, "swap_set_reports") == snapshot


def test_no_challenger_or_the_champion_itself_writes_nothing_and_logs_once(
    shadow_world: tuple[str, str, str, str], caplog: pytest.LogCaptureFixture,
) -> None:
    from mlflow import MlflowClient

    url, uri, champion, challenger = shadow_world
    client = MlflowClient(tracking_uri=uri)
    day = DAY + dt.timedelta(days=1)
    plan = _champion(url, uri, "quiet", day)
    try:
        client.delete_registered_model_alias(MODEL, "challenger")
        with caplog.at_level(logging.INFO, logger="creditrisk.scoring.shadow"):
            none = sh.shadow_score_date(plan, database_url=url, tracking_uri=uri,
                                        run_id="quiet")
            said = [r for r in caplog.records if "nothing to shadow" in r.getMessage()]
        client.set_registered_model_alias(MODEL, "challenger", champion)
        itself = sh.shadow_score_date(plan, database_url=url, tracking_uri=uri, run_id="quiet")
    finally:
        client.set_registered_model_alias(MODEL, "challenger", challenger)
    assert (none["status"], itself["status"]) == (sh.NO_CHALLENGER, sh.NO_CHALLENGER)
    assert "no challenger alias" in none["reason"] and "is the champion" in itself["reason"]
    assert len(said) == 1
    for table in ("shadow_scores", "shadow_scores_stage", "swap_set_reports"):
        assert rows(url, f"SELECT count(*) FROM {table} WHERE score_date = :d", d=day) == [(0,)]


def _broken_challenger(uri: str) -> str:
    """A registered version whose artifact is not a model: it cannot load."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("creditrisk-pd")
    run = client.create_run(exp.experiment_id, run_name="broken-model")
    client.log_text(run.info.run_id, "not a model", "model/README.txt")
    client.set_terminated(run.info.run_id)
    mv = client.create_model_version(MODEL, f"runs:/{run.info.run_id}/model",
                                     run_id=run.info.run_id)
    client.set_registered_model_alias(MODEL, "challenger", mv.version)
    return str(mv.version)


def test_dag_run_with_a_broken_challenger_publishes_the_champion_and_alerts_once(
    load_dag, warehouse_env: Path, db_url: str, shadow_world: tuple[str, str, str, str],  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """score_customers through dag.test(): the champion's day is published, the shadow
    tasks are skipped, one shadow_skipped alert, and the run succeeds."""
    from mlflow import MlflowClient

    from creditrisk.config import get_settings
    from tests.alert_receiver import webhook_receiver

    _, uri, champion, challenger = shadow_world
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("CREDITRISK_MODEL_NAME", MODEL)
    load_generated(db_url, warehouse_env, customers=120, days=30, end_date=END, seed=5)
    broken = _broken_challenger(uri)
    try:
        with webhook_receiver() as receiver:
            monkeypatch.setenv("CREDITRISK_ALERT_WEBHOOK_URL", receiver.url)
            get_settings.cache_clear()
            run = load_dag("score_customers").test(
                logical_date=dt.datetime(2019, 2, 14, 3, tzinfo=dt.UTC))
    finally:
        MlflowClient(tracking_uri=uri).set_registered_model_alias(MODEL, "challenger",
                                                                  challenger)
    assert run.state == "success"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["publish"] == "success"
    assert {states[t] for t in ("plan_shadow", "shadow_chunk", "publish_shadow")} == {"skipped"}
    kinds = receiver.kinds()  # (a drift alert may come too: another population)
    assert kinds.count("shadow_skipped") == 1 and "task_failed" not in kinds, kinds
    post = receiver.posts[kinds.index("shadow_skipped")]
    assert f"{MODEL} v{broken}" in str(post["blocks"]) and "loading" in post["text"]
    n = rows(db_url, "SELECT count(*) FROM customer_features WHERE as_of_date = :d", d=DAY)
    assert rows(db_url, "SELECT count(*), min(model_version), max(model_version) FROM"
                        " risk_scores WHERE score_date = :d", d=DAY) == [(n[0][0], champion,
                                                                          champion)]
    assert rows(db_url, "SELECT count(*) FROM shadow_scores") == [(0,)]


def test_dag_run_with_a_challenger_fills_shadow_scores_and_the_report(
    load_dag, warehouse_env: Path, db_url: str, shadow_world: tuple[str, str, str, str],  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    import yaml

    from creditrisk.config import get_settings

    _, uri, champion, challenger = shadow_world
    cfg = load_policy()
    cfg["scoring"]["chunk_customers"] = 50
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("CREDITRISK_POLICY_CONFIG", str(policy))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("CREDITRISK_MODEL_NAME", MODEL)
    get_settings.cache_clear()
    load_generated(db_url, warehouse_env, customers=120, days=30, end_date=END, seed=5)
    run = load_dag("score_customers").test(
        logical_date=dt.datetime(2019, 2, 14, 3, tzinfo=dt.UTC))
    assert run.state == "success"
    mapped = [ti for ti in run.get_task_instances() if ti.task_id == "shadow_chunk"]
    assert len(mapped) > 1 and all(ti.state == "success" for ti in mapped)
    n = rows(db_url, "SELECT count(*) FROM risk_scores WHERE score_date = :d", d=DAY)[0][0]
    assert rows(db_url, "SELECT count(*), min(model_version), max(model_version) FROM"
                        " shadow_scores WHERE score_date = :d", d=DAY) == [(n, challenger,
                                                                            challenger)]
    assert rows(db_url, "SELECT champion_version, challenger_version, n FROM swap_set_reports"
                        " WHERE score_date = :d", d=DAY) == [(champion, challenger, n)]


def test_the_score_command_shadows_the_day_unless_told_not_to(
    shadow_world: tuple[str, str, str, str],
) -> None:
    import os
    import subprocess
    import sys

    url, uri, champion, challenger = shadow_world
    env = {**os.environ, "DATABASE_URL": url, "MLFLOW_TRACKING_URI": uri,
           "CREDITRISK_MODEL_NAME": MODEL}

    def cli(*args: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "creditrisk.cli", "--json", "score",
                               "--date", str(DAY), *args], env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    shadowed = cli("--run-id", "cli-shadow")
    assert (shadowed["model_version"], shadowed["shadow"]["status"],
            shadowed["shadow"]["challenger_version"]) == (champion, sh.PLANNED, challenger)
    assert shadowed["shadow"]["report"]["n"] == shadowed["published"]
    assert rows(url, "SELECT run_id FROM swap_set_reports WHERE score_date = :d",
                d=DAY) == [("cli-shadow",)]
    plain = cli("--run-id", "cli-plain", "--no-shadow")
    assert plain["shadow"] is None
    assert rows(url, "SELECT DISTINCT run_id FROM shadow_scores WHERE score_date = :d",
                d=DAY) == [("cli-shadow",)]
