"""What every DAG shares: its owner, typed params, schedules, task timeouts and waits.

Read once when a DAG file is parsed (by the dag-processor, and by each task's process),
so nothing here may be slow or touch a database. The settings below are environment
variables of the Airflow processes (restart them to change one); a bad value is an import
error of the DAG that names the variable.

Task timeouts are sized from measured run times (docs/operations.md, "The DAGs'
conventions", and docs/benchmarks.md). Each ``execution_timeout`` is per try, so a hung try is
killed and retried instead of holding a worker slot forever:

===========================================  ==================================  =======
task                                         measured (largest seen)             timeout
===========================================  ==================================  =======
ingest_transactions.plan_days                a date computation                  5 min
ingest_transactions.wait_for_landing_files   one file check per poke             5 min
ingest_transactions.ingest                   365 s: 90 daily files, 148,194      60 min
                                             rows, in one run (the Xente-shaped
                                             seed); 46.5 s for a 1,048,305-row
                                             day (benchmarks)
build_features.plan                          each a part of the whole build:     10 min
build_features.chunk_ids                     1.5 s for 1M transactions of 50k    5 min
build_features.build_chunk                   customers (benchmarks), + labels    30 min
build_features.publish                       (in publish)                        30 min
train_model.train                            15-21 s at 2,000-3,742 customers    120 min
score_customers.prepare                      each a part of the whole scoring    20 min
score_customers.chunk_ids                    run: 64.7 s for 1M customers in     5 min
score_customers.score_chunk                  4 chunks (benchmarks), 9-12 s on    30 min
score_customers.publish                      the stack                           30 min
ingest_loans.plan_days                       a date computation                  5 min
ingest_loans.ingest                          under 1 s per day of the 120-day    30 min
                                             outcome-loop test (tests/e2e)
ingest_loans.backtest                        one query and a few intervals       30 min
===========================================  ==================================  =======

The margins: about 10x the largest ingest measured (a whole history in one run), 25x or
more the whole scoring run at 1M customers for prepare, score_chunk and publish
(chunk_ids only builds a list of numbers), and over 300x for
features and training. A slow night on a loaded machine is not killed; a hung database
call or registry request is. ``prepare`` builds a missing day's features, hence 20
minutes for a step that normally takes seconds.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from airflow.sdk import CronTriggerTimetable, Param

#: every DAG's owner, shown in the UI's DAG list and on every task
OWNER = "creditrisk-platform"

#: ``execution_timeout`` of each task, by ``dag_id.task_id`` (see the table above)
TASK_TIMEOUTS: dict[str, dt.timedelta] = {
    "ingest_transactions.plan_days": dt.timedelta(minutes=5),
    "ingest_transactions.wait_for_landing_files": dt.timedelta(minutes=5),
    "ingest_transactions.ingest": dt.timedelta(minutes=60),
    "build_features.plan": dt.timedelta(minutes=10),
    "build_features.chunk_ids": dt.timedelta(minutes=5),
    "build_features.build_chunk": dt.timedelta(minutes=30),
    "build_features.publish": dt.timedelta(minutes=30),
    "train_model.train": dt.timedelta(minutes=120),
    "score_customers.prepare": dt.timedelta(minutes=20),
    "score_customers.chunk_ids": dt.timedelta(minutes=5),
    "score_customers.score_chunk": dt.timedelta(minutes=30),
    "score_customers.publish": dt.timedelta(minutes=30),
    "score_customers.plan_shadow": dt.timedelta(minutes=10),
    "score_customers.shadow_chunk": dt.timedelta(minutes=30),
    "score_customers.publish_shadow": dt.timedelta(minutes=30),
    "ingest_loans.plan_days": dt.timedelta(minutes=5),
    "ingest_loans.ingest": dt.timedelta(minutes=30),
    "ingest_loans.backtest": dt.timedelta(minutes=30),
}


def _env_seconds(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number of seconds") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be a positive number of seconds")
    return value


def landing_wait() -> dt.timedelta:
    """How long a scheduled ingest waits for its day's file before it fails and alerts.

    ``CREDITRISK_LANDING_WAIT_S`` (default 3000 s = 50 min: the 02:00 ingest gives up at
    02:50, before the 03:00 scoring runs on whatever is loaded).
    """
    return dt.timedelta(seconds=_env_seconds("CREDITRISK_LANDING_WAIT_S", 3000))


def landing_poke() -> dt.timedelta:
    """How often the waiting ingest looks for its file (``CREDITRISK_LANDING_POKE_S``, 300)."""
    return dt.timedelta(seconds=_env_seconds("CREDITRISK_LANDING_POKE_S", 300))


def score_deadline() -> dt.timedelta:
    """How long after it is queued a scoring run must have finished, or an alert goes out.

    ``CREDITRISK_SCORE_DEADLINE_S`` (default 3600 s: the 03:00 run must be done by
    about 04:00 UTC; measured scoring takes about a minute at 1M customers).
    """
    return dt.timedelta(seconds=_env_seconds("CREDITRISK_SCORE_DEADLINE_S", 3600))


def default_args(*, retries: int, retry_delay: dt.timedelta) -> dict[str, Any]:
    """The ``default_args`` of a DAG: owner, retries and the shared failure notifier."""
    from creditrisk_notifier import CreditRiskNotifier

    return {"owner": OWNER, "retries": retries, "retry_delay": retry_delay,
            "on_failure_callback": CreditRiskNotifier()}


def timeout(dag_id: str, task_id: str) -> dt.timedelta:
    """The ``execution_timeout`` of ``dag_id.task_id`` (KeyError if it has none: add it)."""
    return TASK_TIMEOUTS[f"{dag_id}.{task_id}"]


def date_param(description: str) -> Param:
    """An optional day (YYYY-MM-DD): a date picker in the trigger form, checked on trigger."""
    return Param(None, type=["null", "string"], format="date", description=description)


def day_range_params() -> dict[str, Param]:
    """``date`` or ``from_date``/``to_date``: the params of a DAG that loads landing days."""
    return {
        "date": date_param("One day (YYYY-MM-DD)"),
        "from_date": date_param("Range start (YYYY-MM-DD)"),
        "to_date": date_param("Range end, inclusive (YYYY-MM-DD)"),
    }


def planned_days(context: dict[str, Any]) -> list[str]:
    """The days a landing run loads (its params, else the day before its logical date)."""
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


def daily(cron: str) -> CronTriggerTimetable:
    """A UTC cron schedule whose first run is the next due time, never a past one.

    With no ``start_date`` and ``run_immediately`` of zero, unpausing a DAG (as
    ``./platform up`` does) does not start a run for the last due time before now; the
    first scheduled run is the next one. A run for a past due time would work on a day
    that may not be in the landing folder at all (history that ends in the past).
    """
    return CronTriggerTimetable(cron, timezone="UTC", run_immediately=dt.timedelta(0))
