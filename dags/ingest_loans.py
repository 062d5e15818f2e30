"""
### ingest_loans

The outcome loop's daily ingest. Validates the day's `loans_YYYY-MM-DD.csv` and
`repayments_YYYY-MM-DD.csv` (in `CREDITRISK_LANDING_DIR`) with the Great Expectations
suites `great_expectations/expectations/loans.json` and `repayments.json`, then checks
what only the warehouse knows (an unknown loan id, a payment before the loan was issued,
an installment beyond the loan's schedule or due on another day, a loan or installment
already loaded with other content) and loads each file's good rows into `loans` and
`repayments` in its own transaction; bad rows go to `quarantined_outcomes` with every
reason. The loans file of a day loads before its repayments file. One `ingestion_runs`
row per file records counts and status. Each kind's files are validated as one batch
per run, whose Data Docs page (suite `loans` or `repayments`) the task log prints and
the task's **Data Docs** button opens. Then `backtest` writes the day's
`outcome_backtest` rows (realized bad rate of matured loans per risk band against the
mean PD at issue, with a Jeffreys interval), alerts when a band leaves its interval, and
logs the check as an MLflow run (band and vintage plots, both tables as CSV; its
**MLflow run** button); MLflow being down costs a warning, not the task.

**Which day.** A scheduled run (daily, 02:30 UTC) loads the previous UTC day. Every day
has both files, even without loans or payments (a header-only file); a missing file
fails the run ("no such landing file").

**Backfilling loan files.** Put the files in the landing folder, then trigger with
`{"from_date": "2019-01-01", "to_date": "2019-03-31"}` (the form shows date pickers), or
by hand `creditrisk ingest-loans --from 2019-01-01 --to 2019-03-31`. Days load in order,
loans before repayments, and the run stops at the first file that fails, after loading
the ones before it; re-running the range changes no loaded row (unchanged rows are
skipped, changed ones quarantined, never overwritten) and leaves one run's worth of
quarantine. Backfill transactions first (`ingest_transactions`): the loans name the
customers and the decisions the platform made on them.

**Failures.** A broken file (empty, BOM, not UTF-8, wrong header or delimiter, wrong
field count, truncated) fails with its name and line. A file whose quarantined share is
over `CREDITRISK_QUARANTINE_THRESHOLD` (default 5%) fails after quarantining, without
retries, and posts a quarantine alert; other failures that outlive their retries post a
task-failed alert.

**Limits.** Owner `creditrisk-platform`; `ingest` and `backtest` are stopped (and
retried) after 30 minutes per try.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task
from dag_common.conventions import (
    daily,
    day_range_params,
    default_args,
    planned_days,
    timeout,
)

DAG_ID = "ingest_loans"


@dag(
    dag_id=DAG_ID,
    # No start_date: unpausing starts no run for a past 02:30 (see conventions.daily).
    schedule=daily("30 2 * * *"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retries=2, retry_delay=dt.timedelta(minutes=2)),
    tags=["creditrisk", "ingestion", "monitoring"],
    params=day_range_params(),
    doc_md=__doc__,
)
def ingest_loans() -> None:
    @task(execution_timeout=timeout(DAG_ID, "plan_days"))
    def plan_days(**context) -> list[str]:  # type: ignore[no-untyped-def]
        return planned_days(context)

    @task(execution_timeout=timeout(DAG_ID, "ingest"))
    def ingest(days: list[str], **context) -> list[dict]:  # type: ignore[no-untyped-def]
        from airflow.sdk.exceptions import AirflowFailException

        from creditrisk.tasks import QuarantineThresholdError, ingest_outcomes_from_settings

        try:
            return ingest_outcomes_from_settings(days, run_id=context["run_id"])
        except QuarantineThresholdError as exc:
            # the same file fails the same way on every try: fail now, alert once
            raise AirflowFailException(str(exc)) from exc

    @task(multiple_outputs=False, execution_timeout=timeout(DAG_ID, "backtest"))
    def backtest(days: list[str], **context) -> dict:  # type: ignore[no-untyped-def]
        from creditrisk.tasks import backtest_from_settings

        # known at the start of the day after the newest day loaded
        as_of = (dt.date.fromisoformat(max(days)) + dt.timedelta(days=1)).isoformat()
        return backtest_from_settings(as_of=as_of, run_id=context["run_id"])

    days = plan_days()
    ingest(days) >> backtest(days)


ingest_loans()
