"""
### score_customers

Nightly batch scoring. Resolves the registry alias `champion` of
`CREDITRISK_MODEL_NAME` to one model version (once, in `prepare`), makes sure the
date's `customer_features` exist, then scores the customers in chunks — one mapped
`score_chunk` task each, so the work fans out across workers as the customer base
grows — into `risk_scores_stage`. `publish` checks every chunk is in and swaps the whole
date into `risk_scores` in one transaction with its `score_monitoring` row (counts, mean
PD, band shares, PSI of the score and every feature against the champion's training
reference; a PSI over the threshold flags the row and posts a drift alert to
`CREDITRISK_ALERT_WEBHOOK_URL`).

Each row: probability of default, credit score, risk band, decision, recommended limit
and term, reason codes, and the model name and version that produced it.

**Which date.** The run's logical date (runs at 03:00 UTC, after the 02:00 ingestion and
its feature build); trigger with `{"date": "2019-02-14"}` (a date picker in the form)
for another. Unpausing starts no run for a past 03:00.

**Deadline.** A run still unfinished `CREDITRISK_SCORE_DEADLINE_S` seconds (default
3600) after it was queued posts one `deadline_missed` alert (an Airflow Deadline Alert,
sent from the triggerer through the platform's notifier): the nightly run should be done
by about 04:00 UTC. The run itself goes on; the alert says its results are late.

**Limits.** Owner `creditrisk-platform`. Each try is stopped (and retried) after:
`prepare` 20 min (it may build the day's features), `score_chunk` 30 min, `publish`
30 min, `plan_shadow` 10 min, `shadow_chunk` and `publish_shadow` 30 min; 1M customers
take about a minute in all.

**Shadow scoring.** After `publish`, while the registry alias `challenger` points at
another version than the one the day was scored with, `plan_shadow` resolves it once,
the mapped `shadow_chunk` tasks score the same chunks with it into
`shadow_scores_stage`, and `publish_shadow` swaps the day and version into
`shadow_scores` with its `swap_set_reports` row in one transaction, then attaches the
report to the challenger's version in MLflow. `risk_scores` is never written by them.
No challenger (or the champion itself): the three tasks are skipped, logged once. A
challenger that cannot be resolved or loaded: skipped with a warning and one
`shadow_skipped` alert; the champion's day is already published.

**Re-runs.** Readers see the old day or the new day, never a mix; a re-run or a retry
after a crash leaves exactly one row per customer and date. By hand:
`creditrisk score --date 2019-02-14`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference, dag, task
from creditrisk_notifier import CreditRiskNotifier
from dag_common.assets import RISK_SCORES
from dag_common.conventions import daily, date_param, default_args, score_deadline, timeout

DAG_ID = "score_customers"


@dag(
    dag_id=DAG_ID,
    # No start_date: unpausing starts no run for a past 03:00 (see conventions.daily).
    schedule=daily("0 3 * * *"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retries=2, retry_delay=dt.timedelta(minutes=2)),
    # From the time it is queued (the logical date is None for a manual run, and a
    # backfill of an old day would be late from the start).
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=score_deadline(),
        callback=AsyncCallback(CreditRiskNotifier),
        name="score_customers_finished",
    ),
    tags=["creditrisk", "scoring", "monitoring"],
    params={"date": date_param("Score date (YYYY-MM-DD); empty: the logical date")},
    doc_md=__doc__,
)
def score_customers() -> None:
    @task(multiple_outputs=False, execution_timeout=timeout(DAG_ID, "prepare"))
    def prepare(**context) -> dict:  # type: ignore[no-untyped-def]
        from creditrisk.tasks import prepare_from_settings

        return prepare_from_settings(
            date=context["params"].get("date"),
            logical_date=context.get("logical_date") or context["dag_run"].run_after,
            run_id=context["run_id"],
        )

    @task(execution_timeout=timeout(DAG_ID, "chunk_ids"))
    def chunk_ids(plan: dict) -> list[int]:
        return list(range(int(plan["chunks"])))

    @task(execution_timeout=timeout(DAG_ID, "score_chunk"))
    def score_chunk(chunk: int, plan: dict, **context) -> int:  # type: ignore[no-untyped-def]
        from creditrisk.tasks import score_chunk_from_settings

        return score_chunk_from_settings(plan, chunk, run_id=context["run_id"])

    @task(outlets=[RISK_SCORES], multiple_outputs=False,
          execution_timeout=timeout(DAG_ID, "publish"))
    def publish(plan: dict, written: list[int], **context) -> dict:  # type: ignore[no-untyped-def]
        from dag_common.alerting import alert_on_drift

        from creditrisk.tasks import publish_from_settings

        result = publish_from_settings(plan, run_id=context["run_id"])
        alert_on_drift(result, context["run_id"])
        return result

    # The challenger's shadow runs only after the champion's day is published: it can
    # neither delay nor fail it. No challenger (or a broken one) skips the shadow tasks.
    @task(multiple_outputs=False, execution_timeout=timeout(DAG_ID, "plan_shadow"))
    def plan_shadow(plan: dict, **context) -> dict:  # type: ignore[no-untyped-def]
        from airflow.exceptions import AirflowSkipException

        from creditrisk.tasks import plan_shadow_from_settings

        shadow = plan_shadow_from_settings(plan, run_id=context["run_id"])
        if shadow["status"] != "planned":
            raise AirflowSkipException(f"no shadow scoring: {shadow['reason']}")
        return shadow

    @task(execution_timeout=timeout(DAG_ID, "shadow_chunk"))
    def shadow_chunk(chunk: int, shadow: dict, **context) -> int:  # type: ignore[no-untyped-def]
        from creditrisk.tasks import shadow_chunk_from_settings

        return shadow_chunk_from_settings(shadow, chunk, run_id=context["run_id"])

    @task(multiple_outputs=False, execution_timeout=timeout(DAG_ID, "publish_shadow"))
    def publish_shadow(shadow: dict, written: list[int], **context) -> dict:  # type: ignore[no-untyped-def]
        from creditrisk.tasks import publish_shadow_from_settings

        return publish_shadow_from_settings(shadow, run_id=context["run_id"])

    plan = prepare()
    chunks = chunk_ids(plan)
    written = score_chunk.partial(plan=plan).expand(chunk=chunks)
    published = publish(plan, written)
    shadow = plan_shadow(plan)
    published >> shadow
    publish_shadow(shadow, shadow_chunk.partial(shadow=shadow).expand(chunk=chunks))


score_customers()
