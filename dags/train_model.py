"""
### train_model

Weekly retraining. Builds the training set observable on the training date D — weekly
feature snapshots T <= D - H with their forward-window labels (built when missing) —
splits it out of time and by customer, trains Logistic Regression, Random Forest and
XGBoost, logs each as a nested MLflow run (metrics, slices, fairness, plots, model card)
under one parent run, registers the best as a new version of `CREDITRISK_MODEL_NAME` with
the alias `challenger`, then runs the promotion gate: the challenger becomes `champion`
only if it passes the floors and does not lose to the current champion on the same test
set. Every decision is in `model_promotions` and in this task's log.

**Which date.** D is the day after the newest loaded transaction; trigger with
`{"as_of": "2019-02-14"}` for another, and `{"promote": false}` to skip the gate.

**Re-runs.** A re-run trains and registers a new version (versions are immutable); the
gate decides again. The same step by hand: `creditrisk train --as-of 2019-02-14 --promote`;
promotion by hand: `creditrisk promote --version N`, or move the alias in the MLflow UI.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task
from dag_common.alerting import on_task_failure


@dag(
    dag_id="train_model",
    schedule="0 4 * * 1",
    start_date=dt.datetime(2018, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": dt.timedelta(minutes=5),
                  "on_failure_callback": on_task_failure},
    tags=["creditrisk", "training"],
    params={
        "as_of": Param(None, type=["null", "string"], description="Training date (YYYY-MM-DD)"),
        "promote": Param(True, type="boolean", description="Run the promotion gate"),
    },
    doc_md=__doc__,
)
def train_model() -> None:
    @task(multiple_outputs=False)
    def train(**context) -> dict:  # type: ignore[no-untyped-def]
        from creditrisk.tasks import train_from_settings

        params = context["params"]
        return train_from_settings(
            as_of=params.get("as_of"), run_id=context["run_id"], promote=bool(params["promote"])
        )

    train()


train_model()
