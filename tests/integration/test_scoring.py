"""Batch scoring on the real warehouse with a real registry: atomic, versioned, crash-safe."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from creditrisk.model.train import pinned_config, train
from creditrisk.scoring.batch import prepare, publish, score_chunk, score_date
from tests.warehouse import load_generated, rows

pytestmark = pytest.mark.slow
END = dt.date(2019, 2, 13)
DAY = dt.date(2019, 2, 14)


def fast_config() -> dict:
    return pinned_config("logistic_regression")


@pytest.fixture(scope="module")
def scored_world(  # type: ignore[no-untyped-def]
    warehouse_copy, mlflow_store: str, tmp_path_factory
) -> Iterator[tuple[str, str, str]]:
    """A warehouse with history and a champion (logistic regression) in a real registry."""
    with warehouse_copy("crtest_scoring_module") as url:
        load_generated(url, tmp_path_factory.mktemp("landing"), customers=900, days=90,
                       end_date=END, seed=17)
        model = "credit-risk-pd-scoring"
        res = train(DAY, database_url=url, tracking_uri=mlflow_store, model_name=model,
                    run_id="train", promote=False, config=fast_config())
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=mlflow_store).set_registered_model_alias(
            model, "champion", res["version"])
        yield url, mlflow_store, model


def test_every_customer_scored_once_with_the_champion_version(
    scored_world: tuple[str, str, str],
) -> None:
    url, uri, model = scored_world
    for run in ("s1", "s2"):  # the second run replaces the first
        res = score_date(DAY, database_url=url, tracking_uri=uri, model_name=model,
                         alias="champion", run_id=run, chunk_customers=200)
    features = rows(url, f"SELECT count(*) FROM customer_features WHERE as_of_date='{DAY}'")
    assert rows(url, f"SELECT count(*), count(DISTINCT customer_id), min(run_id), "
                      f"max(run_id), count(DISTINCT model_version) FROM risk_scores "
                      f"WHERE score_date='{DAY}'") == [(features[0][0], features[0][0], "s2",
                                                        "s2", 1)]
    assert rows(url, "SELECT model_version FROM risk_scores LIMIT 1")[0][0] == res["model_version"]
    # the Airflow plugin's "MLflow run" link on publish reads this run id
    from mlflow import MlflowClient

    assert res["model_run_id"] == MlflowClient(tracking_uri=uri).get_model_version(
        model, res["model_version"]).run_id
    mon = rows(url, "SELECT n_scored, psi_score IS NOT NULL, psi_features <> '{}'::jsonb "
                     "FROM score_monitoring")
    in_population = rows(url, f"SELECT count(*) FROM risk_scores WHERE score_date='{DAY}'"
                              " AND segment = 'scored'")[0][0]
    assert 0 < in_population <= features[0][0]
    assert mon == [(in_population, True, True)]  # monitoring watches the model's PDs
    assert rows(url, "SELECT count(*) FROM risk_scores_stage") == [(0,)]
    # a DECLINE has no line; so has every customer outside the population (no PD at all)
    bad = rows(url, "SELECT count(*) FROM risk_scores WHERE segment = 'scored' AND"
                    " (decision='DECLINE') <> "
                    "(recommended_limit = 0 AND recommended_term_days = 0)")
    assert bad == [(0,)]
    assert rows(url, "SELECT count(*) FROM risk_scores WHERE segment <> 'scored' AND NOT ("
                     "probability_of_default IS NULL AND recommended_limit = 0 AND"
                     " risk_band = 'DORMANT')") == [(0,)]
    latest = rows(url, "SELECT count(*) FROM latest_risk_scores")
    assert latest == features


def test_alias_moves_mid_run_do_not_mix_versions(scored_world: tuple[str, str, str]) -> None:
    from mlflow import MlflowClient

    url, uri, model = scored_world
    client = MlflowClient(tracking_uri=uri)
    champion = str(client.get_model_version_by_alias(model, "champion").version)
    plan = prepare(DAY, database_url=url, tracking_uri=uri, model_name=model, alias="champion",
                   run_id="pinned", chunk_customers=300).as_dict()
    client.delete_registered_model_alias(model, "champion")  # moved away mid-run
    try:
        for chunk in range(plan["chunks"]):
            score_chunk(plan, chunk, database_url=url, tracking_uri=uri, run_id="pinned")
        publish(plan, database_url=url, tracking_uri=uri, run_id="pinned")
    finally:
        client.set_registered_model_alias(model, "champion", champion)
    assert rows(url, f"SELECT DISTINCT model_version FROM risk_scores WHERE score_date='{DAY}'") \
        == [(champion,)]


def test_crash_mid_publish_keeps_the_previous_day_and_a_rerun_completes(
    scored_world: tuple[str, str, str],
) -> None:
    """Terminate the scoring's Postgres backend mid-write: old day intact, re-run completes."""
    url, uri, model = scored_world
    score_date(DAY, database_url=url, tracking_uri=uri, model_name=model, alias="champion",
               run_id="before", chunk_customers=500)
    before = rows(url, f"SELECT customer_id, run_id FROM risk_scores WHERE score_date='{DAY}'"
                        " ORDER BY 1")
    plan = prepare(DAY, database_url=url, tracking_uri=uri, model_name=model, alias="champion",
                   run_id="crashed", chunk_customers=500).as_dict()
    for chunk in range(plan["chunks"]):
        score_chunk(plan, chunk, database_url=url, tracking_uri=uri, run_id="crashed")

    # Hold a lock on score_monitoring: publish deletes the day, inserts the new rows, then
    # blocks on the monitoring row, mid-transaction. Kill it right there.
    locker = sa.create_engine(url).connect()
    locker.execute(sa.text("BEGIN; LOCK TABLE score_monitoring IN ACCESS EXCLUSIVE MODE"))
    errors: list[BaseException] = []

    def run_publish() -> None:
        try:
            publish(plan, database_url=url, tracking_uri=uri, run_id="crashed")
        except BaseException as exc:  # the terminated backend
            errors.append(exc)

    worker = threading.Thread(target=run_publish)
    worker.start()
    killed = 0
    deadline = time.monotonic() + 60
    while not killed and time.monotonic() < deadline:
        # pg_stat_activity is snapshotted per transaction: refresh it every poll
        locker.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        killed = locker.execute(sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
            "wait_event_type = 'Lock' AND query ILIKE '%INSERT INTO score_monitoring%'"
        )).scalar_one()
        time.sleep(0.2)
    seen = locker.execute(sa.text(
        "SELECT pid, state, wait_event_type, left(query, 80) FROM pg_stat_activity"
        " WHERE datname = current_database()")).all()
    locker.execute(sa.text("ROLLBACK"))
    locker.close()
    worker.join(60)
    assert killed == 1 and errors, f"publish was not caught mid-write: {errors!r} {seen}"
    assert rows(url, f"SELECT customer_id, run_id FROM risk_scores WHERE score_date='{DAY}'"
                      " ORDER BY 1") == before

    score_date(DAY, database_url=url, tracking_uri=uri, model_name=model, alias="champion",
               run_id="rerun", chunk_customers=500)
    after = rows(url, f"SELECT customer_id, run_id FROM risk_scores WHERE score_date='{DAY}'"
                       " ORDER BY 1")
    assert [c for c, _ in after] == [c for c, _ in before]
    assert {r for _, r in after} == {"rerun"}


def test_dag_test_of_score_customers_fans_out_and_alerts_on_drift(
    load_dag, warehouse_env: Path, db_url: str, scored_world: tuple[str, str, str],  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from tests.alert_receiver import webhook_receiver

    _, uri, model = scored_world
    from creditrisk.config import get_settings

    policy = tmp_path / "policy.yaml"
    import yaml

    from creditrisk.scoring.decide import load_policy

    cfg = load_policy()
    cfg["scoring"]["chunk_customers"] = 60
    # another population than the one trained on, and a hair-trigger threshold: drift
    cfg["monitoring"]["psi_threshold"] = 0.01
    policy.write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("CREDITRISK_POLICY_CONFIG", str(policy))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("CREDITRISK_MODEL_NAME", model)
    get_settings.cache_clear()
    load_generated(db_url, warehouse_env, customers=150, days=30, end_date=END, seed=5)
    with webhook_receiver() as receiver:
        monkeypatch.setenv("CREDITRISK_ALERT_WEBHOOK_URL", receiver.url)
        get_settings.cache_clear()
        run = load_dag("score_customers").test(
            logical_date=dt.datetime(2019, 2, 14, 3, tzinfo=dt.UTC))
    assert run.state == "success"
    assert receiver.kinds() == ["psi_threshold"]
    (flagged,) = rows(db_url, "SELECT psi_alert, model_version FROM score_monitoring"
                               " WHERE score_date = '2019-02-14'")
    assert flagged[0] is True
    alert = receiver.posts[0]
    assert "Drift on 2019-02-14: PSI over 0.01" in alert["text"]
    assert f"{model} v{flagged[1]}" in str(alert["blocks"])
    mapped = [ti for ti in run.get_task_instances() if ti.task_id == "score_chunk"]
    assert len(mapped) > 1 and all(ti.state == "success" for ti in mapped)
    n = rows(db_url, "SELECT count(*) FROM customer_features WHERE as_of_date='2019-02-14'")
    assert rows(db_url, "SELECT count(*) FROM risk_scores WHERE score_date='2019-02-14'") == n


def test_a_retry_after_a_committed_publish_is_a_no_op(scored_world: tuple[str, str, str]) -> None:
    """publish committed, then the task died handing its result to Airflow: the retry
    finds an empty stage and this run's rows in place, and succeeds without touching them."""
    from creditrisk.storage import scores
    from creditrisk.storage.db import make_engine

    url, uri, model = scored_world
    res = score_date(DAY, database_url=url, tracking_uri=uri, model_name=model,
                     alias="champion", run_id="once")
    before = rows(url, f"SELECT customer_id, run_id, scored_at FROM risk_scores "
                       f"WHERE score_date='{DAY}' ORDER BY customer_id")
    engine = make_engine(url)
    try:
        again = scores.publish(engine, DAY, len(before), {}, model, res["model_version"], "once")
        assert again == len(before)
        with pytest.raises(RuntimeError, match="not publishing"):  # another run: refused
            scores.publish(engine, DAY, len(before), {}, model, res["model_version"], "other")
    finally:
        engine.dispose()
    assert rows(url, f"SELECT customer_id, run_id, scored_at FROM risk_scores "
                     f"WHERE score_date='{DAY}' ORDER BY customer_id") == before
