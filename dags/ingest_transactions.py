"""
### ingest_transactions

Validates the run's Xente landing files (`xente_YYYY-MM-DD.csv` in
`CREDITRISK_LANDING_DIR`) with the Great Expectations suite
`great_expectations/expectations/raw_transactions.json` — one validation over every file
of the run, each row tagged with its file — then loads each file's good rows into
`raw_transactions` in its own transaction (COPY straight in, keyed by `transaction_id`;
only rows whose id is already loaded are compared) and puts every bad row into
`quarantined_transactions` with its reasons. One `ingestion_runs` row per file records
the counts, the GX result and timings; the task's "Data Docs" link (the Airflow plugin)
opens the run's validation page.

**Which day.** A scheduled run (daily, 02:00 UTC) loads the previous UTC day. Trigger
with params to choose (the form shows date pickers): `{"date": "2019-02-13"}` for one
day, or `{"from_date": "2018-11-15", "to_date": "2019-02-13"}` to load history in one
run. Unpausing the DAG starts no run for a past 02:00; the first scheduled run is the
next one.

**Waiting for the file.** A run without date params (the nightly one) first waits in
`wait_for_landing_files` for its day's file: it looks every `CREDITRISK_LANDING_POKE_S`
seconds (default 300) and frees its worker slot in between (reschedule mode), until
`CREDITRISK_LANDING_WAIT_S` (default 3000 s: 02:50, before the 03:00 scoring). If the
file is still missing then, the run fails once, without retries, with one task-failed
alert naming the sensor; nothing is loaded and no `ingestion_runs` row is written.
Deliver the file, then clear the task. A run with explicit dates does not wait: a
missing file fails `ingest` at once ("no such landing file").

**Failures.** A broken file (empty, BOM, not UTF-8, wrong header or delimiter, wrong
field count, truncated) fails with its name and line, and nothing of it is loaded. A
file whose quarantined share is over `CREDITRISK_QUARANTINE_THRESHOLD` (default 5%)
fails after quarantining, without retries (the same file fails the same way), and posts a
quarantine alert to `CREDITRISK_ALERT_WEBHOOK_URL`; any other failure that outlives its
retries posts a task-failed alert. On success the `raw_transactions` asset is updated,
which triggers `build_features`.

**Limits.** Owner `creditrisk-platform`. `ingest` is stopped (and retried) after 60
minutes per try: the largest load measured, 90 daily files (148,194 rows) in one run,
took 6 minutes.

**Re-runs.** Every file is loaded in one transaction: clearing and re-running a day
changes no row of `raw_transactions` and leaves one run's worth of quarantine.
The same step by hand: `creditrisk ingest --date 2019-02-13`.
"""

from __future__ import annotations

import datetime as dt
import logging

from airflow.sdk import PokeReturnValue, dag, task
from dag_common.assets import RAW_TRANSACTIONS
from dag_common.conventions import (
    daily,
    day_range_params,
    default_args,
    landing_poke,
    landing_wait,
    planned_days,
    timeout,
)

DAG_ID = "ingest_transactions"


@dag(
    dag_id=DAG_ID,
    # No start_date: unpausing starts no run for a past 02:00 (see conventions.daily).
    schedule=daily("0 2 * * *"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retries=2, retry_delay=dt.timedelta(minutes=2)),
    tags=["creditrisk", "ingestion"],
    params=day_range_params(),
    doc_md=__doc__,
)
def ingest_transactions() -> None:
    @task(execution_timeout=timeout(DAG_ID, "plan_days"))
    def plan_days(**context) -> list[str]:  # type: ignore[no-untyped-def]
        return planned_days(context)

    # A sensor timeout fails the task without retries: one missing file, one alert.
    @task.sensor(mode="reschedule", poke_interval=landing_poke(), timeout=landing_wait(),
                 execution_timeout=timeout(DAG_ID, "wait_for_landing_files"))
    def wait_for_landing_files(days: list[str], **context) -> PokeReturnValue:  # type: ignore[no-untyped-def]
        params = context["params"]
        if params.get("date") or params.get("from_date") or params.get("to_date"):
            return PokeReturnValue(is_done=True)  # explicit days: their files are due now
        from creditrisk.tasks import missing_landing_files

        folder, missing = missing_landing_files(days)
        if missing:
            logging.getLogger(__name__).info("waiting for %s in %s", ", ".join(missing), folder)
        return PokeReturnValue(is_done=not missing)

    @task(outlets=[RAW_TRANSACTIONS], execution_timeout=timeout(DAG_ID, "ingest"))
    def ingest(days: list[str], **context) -> list[dict]:  # type: ignore[no-untyped-def]
        from airflow.sdk.exceptions import AirflowFailException

        from creditrisk.tasks import QuarantineThresholdError, ingest_days_from_settings

        try:
            return ingest_days_from_settings(days, run_id=context["run_id"])
        except QuarantineThresholdError as exc:
            # the same file fails the same way on every try: fail now, alert once
            raise AirflowFailException(str(exc)) from exc

    days = plan_days()
    wait_for_landing_files(days) >> ingest(days)


ingest_transactions()
