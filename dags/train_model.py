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

**Which date.** D is the day after the newest loaded transaction, whatever the run's
logical date, so the run that unpausing starts (for the last Monday 04:00 UTC) trains on
what is loaded; trigger with `{"as_of": "2019-02-14"}` (a date picker in the form) for
another, and `{"promote": false}` to skip the gate.

**Limits.** Owner `creditrisk-platform`. `train` is stopped (and retried once) after 120
minutes per try; the whole ladder took 15–21 s on 2,000–3,742 customers.

**Re-runs.** A re-run trains and registers a new version (versions are immutable); the
gate decides again. The same step by hand: `creditrisk train --as-of 2019-02-14 --promote`;
promotion by hand: `creditrisk promote --version N`, or move the alias in the MLflow UI.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task
from dag_common.conventions import date_param, default_args, timeout

DAG_ID = "train_model"


@dag(
    dag_id=DAG_ID,
    schedule="0 4 * * 1",
    start_date=dt.datetime(2018, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retries=1, retry_delay=dt.timedelta(minutes=5)),
    tags=["creditrisk", "training"],
    params={
        "as_of": date_param("Training date (YYYY-MM-DD); empty: the newest loaded day + 1"),
        "promote": Param(True, type="boolean", description="Run the promotion gate"),
    },
    doc_md=__doc__,
)
def train_model() -> None:
    @task(multiple_outputs=False, execution_timeout=timeout(DAG_ID, "train"))
    def train(**context) -> dict:  # type: ignore[no-untyped-def]
        from creditrisk.tasks import train_from_settings

        params = context["params"]
        return train_from_settings(
            as_of=params.get("as_of"), run_id=context["run_id"], promote=bool(params["promote"])
        )

    train()


train_model()
