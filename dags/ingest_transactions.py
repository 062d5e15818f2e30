"""
### ingest_transactions

Validates each day's Xente landing file (`xente_YYYY-MM-DD.csv` in
`CREDITRISK_LANDING_DIR`) with the Great Expectations suite
`great_expectations/expectations/raw_transactions.json`, loads the good rows into
`raw_transactions` (COPY through a staging table, keyed by `transaction_id`) and puts
every bad row into `quarantined_transactions` with its reasons. One `ingestion_runs`
row per file records the counts, the GX result and timings; the task log links the
Data Docs page of each validation.

**Which day.** A scheduled run (daily, 02:00 UTC) loads the previous UTC day. Trigger
with params to choose: `{"date": "2019-02-13"}` for one day, or
`{"from_date": "2018-11-15", "to_date": "2019-02-13"}` to load history in one run.

**Failures.** A broken file (empty, BOM, not UTF-8, wrong header or delimiter, wrong
field count, truncated) fails with its name and line, and nothing of it is loaded. A
file whose quarantined share is over `CREDITRISK_QUARANTINE_THRESHOLD` (default 5%)
fails after quarantining, without retries (the same file fails the same way), and posts a
quarantine alert to `CREDITRISK_ALERT_WEBHOOK_URL`; any other failure that outlives its
retries posts a task-failure alert. On success the `raw_transactions` asset is updated, which
triggers `build_features`.

**Re-runs.** Every file is loaded in one transaction: clearing and re-running a day
changes no row of `raw_transactions` and leaves one run's worth of quarantine.
The same step by hand: `creditrisk ingest --date 2019-02-13`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task
from dag_common.alerting import on_task_failure
from dag_common.assets import RAW_TRANSACTIONS


@dag(
    dag_id="ingest_transactions",
    schedule="0 2 * * *",
    # Early enough for the public Xente period (2018-11 .. 2019-02) to be loadable.
    start_date=dt.datetime(2018, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=2),
                  "on_failure_callback": on_task_failure},
    tags=["creditrisk", "ingestion"],
    params={
        "date": Param(None, type=["null", "string"], description="One day (YYYY-MM-DD)"),
        "from_date": Param(None, type=["null", "string"], description="Range start"),
        "to_date": Param(None, type=["null", "string"], description="Range end, inclusive"),
    },
    doc_md=__doc__,
)
def ingest_transactions() -> None:
    @task
    def plan_days(**context) -> list[str]:  # type: ignore[no-untyped-def]
        from creditrisk.dates import ingest_days

        params = context["params"]
        days = ingest_days(
            context.get("logical_date"),
            context["dag_run"].run_after,
            date=params.get("date"),
            from_date=params.get("from_date"),
            to_date=params.get("to_date"),
        )
        return [d.isoformat() for d in days]

    @task(outlets=[RAW_TRANSACTIONS])
    def ingest(days: list[str], **context) -> list[dict]:  # type: ignore[no-untyped-def]
        from airflow.sdk.exceptions import AirflowFailException

        from creditrisk.tasks import QuarantineThresholdError, ingest_days_from_settings

        try:
            return ingest_days_from_settings(days, run_id=context["run_id"])
        except QuarantineThresholdError as exc:
            # the same file fails the same way on every try: fail now, alert once
            raise AirflowFailException(str(exc)) from exc

    ingest(plan_days())


ingest_transactions()
