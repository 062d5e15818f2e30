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
from tests.integration.fault_tools import terminate_while_blocked
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
    # the day's partition has one index, its primary key: the swap built no second one
    assert rows(url, "SELECT count(*), bool_and(indisprimary) FROM pg_index WHERE indrelid ="
                     f" 'risk_scores_p{DAY:%Y%m%d}'::regclass") == [(1, True)]


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


# columns that name the run or its clock: the only ones a re-run may change
RUN_COLUMNS = {"risk_scores": ("run_id", "scored_at"),
               "score_monitoring": ("run_id", "computed_at")}


def _day(url: str, table: str, day: dt.date, *, without: tuple[str, ...] = ()) -> list[str]:
    """Every row of ``table`` for ``day`` as text: all columns, or all but ``without``."""
    drop = "".join(f" - '{c}'" for c in without)
    return [r[0] for r in rows(url, f"SELECT (to_jsonb(t){drop})::text FROM {table} t"
                                    " WHERE score_date = :d ORDER BY 1", d=day)]


def _state(url: str, days: tuple[dt.date, ...]) -> dict[tuple[str, dt.date], list[str]]:
    return {(t, d): _day(url, t, d) for t in RUN_COLUMNS for d in days}


# where publish is killed: waiting on score_monitoring (monitoring upserted next, before the
# swap), or mid-swap (D's previous partition detached and dropped, the staged one not yet
# detached from the stage: the test reads risk_scores_stage, so only the detach waits)
CRASH_POINTS = {
    "before_swap": ("score_monitoring", "ACCESS EXCLUSIVE", "%INSERT INTO score_monitoring%"),
    "mid_swap": ("risk_scores_stage", "ACCESS SHARE",
                 "%ALTER TABLE risk_scores_stage DETACH PARTITION%"),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_crash_mid_publish_leaves_every_day_intact_hides_nothing_and_a_rerun_equals_a_clean_run(
    scored_world: tuple[str, str, str], point: str,
) -> None:
    """Kill the backend of D's publish mid-transaction, before the swap or in the middle
    of it: D-1, D and D+1 stay byte-identical in risk_scores and score_monitoring; a
    reader polling meanwhile sees D whole from one run (before the swap it reads on; mid
    swap it waits for the transaction, then reads the old D whole: never a gap); the
    re-run of D equals its clean run."""
    url, uri, model = scored_world
    days = (DAY - dt.timedelta(days=1), DAY, DAY + dt.timedelta(days=1))

    def score(day: dt.date, run: str) -> dict:
        return score_date(day, database_url=url, tracking_uri=uri, model_name=model,
                          alias="champion", run_id=run, chunk_customers=500)

    for day in days:
        score(day, f"clean-{day}")
    clean = {t: _day(url, t, DAY, without=cols) for t, cols in RUN_COLUMNS.items()}
    before = _state(url, days)
    n = len(before[("risk_scores", DAY)])
    assert n > 0 and all(len(before[("score_monitoring", d)]) == 1 for d in days)
    plan = prepare(DAY, database_url=url, tracking_uri=uri, model_name=model, alias="champion",
                   run_id="crashed", chunk_customers=500).as_dict()
    for chunk in range(plan["chunks"]):
        score_chunk(plan, chunk, database_url=url, tracking_uri=uri, run_id="crashed")

    seen: list[list[tuple]] = []
    stop = threading.Event()

    def reader() -> None:  # what a dashboard polling D sees, one snapshot per query
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                while not stop.is_set():
                    seen.append([tuple(r) for r in conn.execute(sa.text(
                        "SELECT run_id, count(*) FROM risk_scores WHERE score_date = :d"
                        " GROUP BY run_id"), {"d": DAY}).all()])
        finally:
            engine.dispose()

    def while_blocked() -> None:  # publish is stopped at the crash point
        start = len(seen)
        deadline = time.monotonic() + (30 if point == "before_swap" else 2)
        while len(seen) < start + 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        during.append(len(seen) - start)

    during: list[int] = []
    polling = threading.Thread(target=reader, daemon=True)
    polling.start()
    lock_table, mode, waiting = CRASH_POINTS[point]
    try:
        crash = terminate_while_blocked(
            url, lock_table, waiting,
            lambda: publish(plan, database_url=url, tracking_uri=uri, run_id="crashed"),
            while_blocked=while_blocked, mode=mode)
        time.sleep(0.5)  # a reader that waited on the swap reads on once it is gone
    finally:
        stop.set()
        polling.join(30)
    assert "publishing the scores of" in str(crash.error)
    if point == "before_swap":
        assert during and during[0] >= 20, during  # the reader polled inside the window
    else:
        assert during == [0]  # mid swap, readers of risk_scores wait (no gap to see) ...
        assert len(seen) > 1  # ... and read on once the transaction is gone
    assert {tuple(s) for s in seen} == {((f"clean-{DAY}", n),)}  # never a mix, never a gap
    assert _state(url, days) == before  # every column of both tables, all three days

    score(DAY, "rerun")
    after = _state(url, days)
    for table in RUN_COLUMNS:
        for day in (days[0], days[2]):
            assert after[(table, day)] == before[(table, day)], (table, day)
        assert _day(url, table, DAY, without=RUN_COLUMNS[table]) == clean[table], table
    assert rows(url, "SELECT DISTINCT run_id FROM risk_scores WHERE score_date = :d",
                d=DAY) == [("rerun",)]
    assert rows(url, "SELECT run_id FROM score_monitoring WHERE score_date = :d",
                d=DAY) == [("rerun",)]
    assert rows(url, "SELECT count(*) FROM risk_scores_stage") == [(0,)]
    assert rows(url, "SELECT count(*) FROM risk_scores_stage_chunks") == [(0,)]
    # one partition per day, the stage's none left behind
    assert rows(url, "SELECT count(*) FROM pg_inherits WHERE inhparent ="
                     " 'risk_scores_stage'::regclass") == [(0,)]
    assert rows(url, "SELECT count(*) FROM pg_inherits WHERE inhparent ="
                     " 'risk_scores'::regclass AND inhrelid::regclass::text LIKE"
                     " 'risk_scores_p%'") == [(len(days),)]


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
    # this warehouse's audit knows the champion (as the platform's promote would have
    # written it): only the drift is news, not the alias (see test_alias_audit.py)
    from mlflow import MlflowClient

    from creditrisk.storage.db import make_engine
    from creditrisk.storage.promotions import record_promotion

    champion = str(MlflowClient(tracking_uri=uri).get_model_version_by_alias(
        model, "champion").version)
    engine = make_engine(db_url)
    try:
        record_promotion(engine, model_name=model, model_version=champion,
                         previous_champion=None, decision="promoted", decided_by="test",
                         reasons=[], metrics={}, run_id="test")
    finally:
        engine.dispose()
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


def test_the_score_command_answers_in_json_or_prose_with_progress(
    scored_world: tuple[str, str, str],
) -> None:
    """`creditrisk score` as an operator runs it: `--json` is one parseable object on
    stdout, and its figures are the table's; prose mode shows a progress bar on stderr that
    `--quiet` removes."""
    import json
    import os
    import subprocess
    import sys

    url, uri, model = scored_world
    env = {**os.environ, "DATABASE_URL": url, "MLFLOW_TRACKING_URI": uri,
           "CREDITRISK_MODEL_NAME": model}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "creditrisk.cli", *args], env=env,
                              capture_output=True, text=True, timeout=300, check=False)

    as_json = cli("--json", "score", "--date", str(DAY), "--chunk-customers", "300",
                  "--run-id", "cli-json")
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)  # the whole of stdout is one JSON object
    stored = rows(url, f"SELECT count(*), min(run_id) FROM risk_scores WHERE score_date='{DAY}'")
    assert (result["published"], result["run_id"]) == (stored[0][0], "cli-json") == (
        stored[0][0], stored[0][1])
    assert "scoring chunks" not in as_json.stderr  # no bar in JSON mode

    prose = cli("score", "--date", str(DAY), "--chunk-customers", "300", "--run-id", "cli-2")
    assert prose.returncode == 0, prose.stderr
    assert prose.stdout.startswith(f"scored {stored[0][0]} customers for {DAY}")
    assert "scoring chunks" in prose.stderr
    quiet = cli("score", "--date", str(DAY), "--run-id", "cli-3", "--quiet", "--json")
    assert quiet.returncode == 0 and "scoring chunks" not in quiet.stderr
    assert json.loads(quiet.stdout)["run_id"] == "cli-3"


def test_train_and_features_commands_show_their_stages(
    scored_world: tuple[str, str, str], tmp_path: Path,
) -> None:
    """`creditrisk train` and `features` name each stage on stderr as they reach it (a bar
    on a terminal, one line per stage in a log); `--json` keeps stdout one object."""
    import json
    import os
    import subprocess
    import sys

    import yaml

    from creditrisk.progress import FEATURE_STAGES, TRAIN_STAGES

    url, uri, model = scored_world
    env = {**os.environ, "DATABASE_URL": url, "MLFLOW_TRACKING_URI": uri,
           "CREDITRISK_MODEL_NAME": model}
    config = tmp_path / "training.yaml"
    config.write_text(yaml.safe_dump(fast_config()))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "creditrisk.cli", *args], env=env,
                              capture_output=True, text=True, timeout=600, check=False)

    trained = cli("train", "--as-of", str(DAY), "--config", str(config), "--run-id", "cli-t")
    assert trained.returncode == 0, trained.stderr
    seen = [s for s in TRAIN_STAGES if f"training: {s}" in trained.stderr]
    assert seen == list(TRAIN_STAGES[:-1]), trained.stderr  # no gate without --promote
    assert "registered " in trained.stdout

    built = cli("features", "--as-of", str(DAY), "--run-id", "cli-f", "--json")
    assert built.returncode == 0, built.stderr
    body = json.loads(built.stdout)
    assert body["customers"] == rows(
        url, f"SELECT count(*) FROM customer_features WHERE as_of_date='{DAY}'")[0][0]
    assert not any(f"features: {s}" in built.stderr for s in FEATURE_STAGES)
    prose = cli("features", "--as-of", str(DAY), "--run-id", "cli-f2")
    assert [s for s in FEATURE_STAGES if f"features: {s}" in prose.stderr] == list(
        FEATURE_STAGES), prose.stderr
