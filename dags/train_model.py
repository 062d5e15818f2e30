"""
### train_model

Weekly retraining on what is known before the training date D. Evaluation dates D − H
and a week before it (their customers hashed into calibration, validation and test);
training snapshots whose label windows end before them, scoring population only (built
when missing). Climbs the benchmark ladder — recency alone, RFM logistic, WoE scorecard,
logistic regression, XGBoost — each calibrated on its own customers; a richer rung is
kept only if it beats the simpler one by more than the paired-bootstrap interval. Logs
the ladder, intervals, calibration by decile and band, the label sensitivity table and a
nested run per rung; registers the selected rung as `challenger`, then runs the gate:
`champion` only if calibrated in the large (±0.03), ECE ≤ 0.05, AUC lower bound > 0.70,
better than recency alone, and better than the current champion. Every decision is in
`model_promotions` and in this task's log; `promotion.mode: manual` leaves the alias to a
person. See `docs/model.md`.

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
