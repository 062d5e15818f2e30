"""The distributed path for real: ``score_customers`` on CeleryExecutor with two workers.

The runner's own machinery (``devstack``) brings up, in a private state
folder and on free ports: an embedded PostgreSQL (warehouse, Airflow metadata, MLflow
store), a Redis broker (``redis-server --save '' --appendonly no``), Airflow's
api-server, scheduler and dag-processor on CeleryExecutor, and two Celery workers
with distinct ``--celery-hostname``. A warehouse with history and a champion model is
prepared first; the scoring chunk size is set so that the date splits into several
mapped ``score_chunk`` tasks. The DAG is triggered through the REST API for a fixed
date, and the test checks that both workers ran chunks and that the scores equal, row
by row, what one process (``creditrisk.scoring.batch.score_date``) writes for the same date.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from devstack import postgres as pg
from devstack import stack as ls
from tests.e2e.test_platform import _free_port, _processes_mentioning
from tests.warehouse import load_generated, rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

END = dt.date(2019, 2, 13)
DAY = dt.date(2019, 2, 14)
CUSTOMERS = 600
CHUNK_CUSTOMERS = 150  # ~4 mapped score_chunk tasks for the date
MODEL_NAME = "credit-risk-pd-celery"
COMPARED = ("customer_id", "score_date", "probability_of_default", "credit_score", "risk_band",
            "decision", "recommended_limit", "recommended_term_days", "reason_codes",
            "model_name", "model_version")
AIRFLOW_SERVICES = {"airflow-api-server", "airflow-scheduler", "airflow-dag-processor"}


def _redis_usable() -> str | None:
    """None when a redis-server binary can be started here, else why not."""
    binary = shutil.which("redis-server")
    if binary is None:
        return "no redis-server binary on PATH (apt-get install redis-server)"
    try:
        subprocess.run([binary, "--version"], capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"redis-server cannot be started: {exc}"
    return None


def _process_groups(pgids: set[int]) -> list[str]:
    """Live (non-zombie) processes whose process group is one of ``pgids``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) in pgids:
            found.append(proc.name)
    return found


@dataclass(frozen=True)
class CeleryStack:
    layout: ls.Layout
    warehouse: str
    tracking_uri: str
    api: ls.AirflowAPI
    started_s: float


@pytest.fixture(scope="module")
def celery_stack() -> Iterator[CeleryStack]:
    reason = _redis_usable()
    if reason:
        pytest.skip(reason)
    started = time.monotonic()
    state = Path(tempfile.mkdtemp(prefix="crcel-"))  # short: the pg socket lives in it
    layout = ls.Layout(
        state=state, airflow_port=_free_port(), mlflow_port=_free_port(),
        api_port=_free_port(), executor="CeleryExecutor", celery_workers=2,
        redis_port=_free_port(),
    )
    saved_db_url = os.environ.pop("DATABASE_URL", None)  # the runner's embedded server
    pgids: set[int] = set()
    try:
        for d in (layout.state, layout.logs, layout.pids, layout.airflow_home):
            d.mkdir(parents=True, exist_ok=True)
        dbs = pg.start_postgres(layout.pgdata)
        from creditrisk.model.train import train
        from creditrisk.storage import migrate
        from tests.integration.test_scoring import fast_config

        migrate.upgrade(dbs.warehouse)
        load_generated(dbs.warehouse, state / "landing", customers=CUSTOMERS, days=90,
                       end_date=END, seed=31)
        artifacts = state / "mlartifacts"
        os.environ["CREDITRISK_MLFLOW_ARTIFACT_ROOT"] = str(artifacts)
        res = train(DAY, database_url=dbs.warehouse, tracking_uri=dbs.mlflow,
                    model_name=MODEL_NAME, run_id="celery-train", promote=False,
                    config=fast_config())
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=dbs.mlflow).set_registered_model_alias(
            MODEL_NAME, "champion", res["version"])

        from creditrisk.scoring.decide import load_policy

        policy = load_policy()
        policy["scoring"]["chunk_customers"] = CHUNK_CUSTOMERS
        (state / "policy.yaml").write_text(yaml.safe_dump(policy))

        keys = ls.load_secrets(layout)
        base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env = ls.platform_env(layout, dbs, keys, base=base)
        env.update(
            MLFLOW_TRACKING_URI=dbs.mlflow,  # the store itself: no tracking server needed
            CREDITRISK_MLFLOW_ARTIFACT_ROOT=str(artifacts),
            CREDITRISK_MODEL_NAME=MODEL_NAME,
            CREDITRISK_POLICY_CONFIG=str(state / "policy.yaml"),
            # only the triggered run: no scheduled run of today's date alongside it
            AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
            AIRFLOW__CELERY__WORKER_CONCURRENCY="1",
        )
        stack = [s for s in ls.services(layout, dbs, env)
                 if s.name in AIRFLOW_SERVICES or s.name == "redis"
                 or s.name.startswith("airflow-worker-")]
        assert sorted(s.name for s in stack) == [
            "airflow-api-server", "airflow-dag-processor", "airflow-scheduler",
            "airflow-worker-1", "airflow-worker-2", "redis"]
        ls.start_stack(layout, stack, env, keys)
        pgids = {pid for s in stack if (pid := s.running_pid(layout)) is not None}
        ls.wait_healthy(stack, layout, timeout=300)
        api = ls.AirflowAPI(layout.airflow_url, keys["admin_password"])
        yield CeleryStack(layout, dbs.warehouse, dbs.mlflow, api, time.monotonic() - started)
    finally:
        ls.down(layout)  # the pid files' process groups, then the embedded PostgreSQL
        time.sleep(1)
        leftovers = _process_groups(pgids) + _processes_mentioning(str(state))
        if saved_db_url is not None:
            os.environ["DATABASE_URL"] = saved_db_url
        shutil.rmtree(state, ignore_errors=True)
        assert leftovers == [], f"processes left running after down: {leftovers}"


def test_score_customers_fans_out_over_two_celery_workers(celery_stack: CeleryStack) -> None:
    stack, api = celery_stack, celery_stack.api
    started = time.monotonic()
    api.wait_for_dag("score_customers", timeout=180)
    api.call("PATCH", "/api/v2/dags/score_customers", {"is_paused": False})
    run = api.call("POST", "/api/v2/dags/score_customers/dagRuns",
                   {"logical_date": None, "conf": {"date": DAY.isoformat()}})
    run_id = str(run["dag_run_id"])
    state = api.wait_for_run("score_customers", run_id, timeout=420)
    tis = api.call("GET", f"/api/v2/dags/score_customers/dagRuns/{quote(run_id, safe='')}"
                          "/taskInstances?limit=100")["task_instances"]
    assert state == "success", [(t["task_id"], t["map_index"], t["state"]) for t in tis]
    run_s = time.monotonic() - started

    # (a) the mapped chunks ran on both workers, each reporting its Celery node name
    chunks = [t for t in tis if t["task_id"] == "score_chunk"]
    assert len(chunks) >= 3 and all(t["state"] == "success" for t in chunks)
    hosts = {t["hostname"] for t in chunks}
    assert hosts == set(stack.layout.worker_hostnames()), hosts
    ran = [t for t in tis if t["state"] != "skipped"]
    assert {t["hostname"] for t in ran} <= hosts  # every task that ran went through a worker
    # no challenger in this world: only the shadow path is skipped (nothing to shadow)
    assert {t["task_id"] for t in tis if t["state"] == "skipped"} <= {
        "plan_shadow", "shadow_chunk", "publish_shadow"}

    # one row per customer with features for the date, all written by this run
    url = stack.warehouse
    cols = ", ".join(COMPARED)
    distributed = rows(url, f"SELECT {cols} FROM risk_scores WHERE score_date = :d "
                             "ORDER BY customer_id", d=DAY)
    features = rows(url, "SELECT count(*) FROM customer_features WHERE as_of_date = :d", d=DAY)
    assert len(distributed) == features[0][0] > CHUNK_CUSTOMERS * (len(chunks) - 1)
    assert rows(url, "SELECT DISTINCT run_id FROM risk_scores WHERE score_date = :d",
                 d=DAY) == [(run_id,)]

    # (b) equal, row by row, to one process scoring the same date in a single chunk
    from creditrisk.scoring.batch import score_date

    single = score_date(DAY, database_url=url, tracking_uri=stack.tracking_uri,
                        model_name=MODEL_NAME, alias="champion", run_id="single-process")
    assert single["published"] == len(distributed)
    one_process = rows(url, f"SELECT {cols} FROM risk_scores WHERE score_date = :d "
                             "ORDER BY customer_id", d=DAY)
    assert rows(url, "SELECT DISTINCT run_id FROM risk_scores WHERE score_date = :d",
                 d=DAY) == [("single-process",)]
    assert distributed == one_process
    print(f"\ncelery stack up in {stack.started_s:.0f}s; score_customers on 2 workers "
          f"({len(chunks)} chunks) in {run_s:.0f}s")
