"""The platform's alerts as an Airflow notifier: one transport for callbacks and deadlines.

:class:`CreditRiskNotifier` wraps :mod:`creditrisk.alerts` (a Slack-compatible webhook
post to ``CREDITRISK_ALERT_WEBHOOK_URL``) in Airflow's ``BaseNotifier``:

- as every task's ``on_failure_callback`` (``notify``, in the task's own process, once
  the task has failed for good: a try that will be retried calls ``on_retry_callback``
  instead, so one broken night gives one alert). A landing file over the quarantine
  threshold is reported as that event, with the file's counts;
- as the callback of a Deadline Alert (``async_notify``, in the triggerer, given the
  run and the deadline the scheduler saw missed).

Why here, in ``plugins/``, and not in ``dags/dag_common`` or the core: the core
(``include/creditrisk``) must not import Airflow (``.importlinter``), and a deadline
callback is imported by dotted path in the triggerer, which has the plugins folder on
``sys.path`` (every Airflow process does) but not the DAG bundle. Task processes have
both, so the DAG files import the notifier from here too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseNotifier

from creditrisk import alerts


def _cause(exc: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def task_failure_alert(context: Any) -> alerts.Alert:
    """The alert for a task instance that failed for good (or went over the quarantine)."""
    from creditrisk.tasks import QuarantineThresholdError

    ti = context["ti"]
    exc = context.get("exception")
    over = _cause(exc, QuarantineThresholdError)
    if isinstance(over, QuarantineThresholdError) and over.result is not None:
        res = over.result
        return alerts.quarantine_over_threshold(
            file=res.source_file, day=res.logical_date, rows=res.rows_read,
            quarantined=res.rows_quarantined, threshold=over.threshold or 0.0,
            run_id=res.run_id)
    try:
        log_url: str | None = ti.log_url
    except Exception:  # noqa: BLE001 - a missing base URL must not lose the alert
        log_url = None
    return alerts.task_failed(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id,
                              try_number=getattr(ti, "try_number", None), error=exc,
                              log_url=log_url)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="seconds")
    return str(value)


def _run_url(dag_id: str, run_id: str) -> str | None:
    try:
        from airflow.sdk.configuration import conf

        base = str(conf.get("api", "base_url", fallback="") or "").rstrip("/")
    except Exception:  # noqa: BLE001 - a link is a nicety; the alert goes out without it
        return None
    return f"{base}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}" if base else None


def deadline_alert(context: Any) -> alerts.Alert:
    """The alert for a missed Deadline Alert, from the context the scheduler passes.

    That context is ``{"dag_run": <the run as the REST API shows it>, "deadline":
    {"id": ..., "deadline_time": ...}}``.
    """
    run = dict(context.get("dag_run") or {})
    deadline = dict(context.get("deadline") or {})
    dag_id = str(run.get("dag_id", "?"))
    run_id = str(run.get("dag_run_id") or run.get("run_id") or "?")
    return alerts.deadline_missed(
        dag_id=dag_id, run_id=run_id, deadline=_text(deadline.get("deadline_time")) or "?",
        state=_text(run.get("state")), queued_at=_text(run.get("queued_at")),
        url=_run_url(dag_id, run_id))


class CreditRiskNotifier(BaseNotifier):
    """Send the platform's alerts through :func:`creditrisk.alerts.send`.

    Args:
        context: Set by Airflow when it runs a deadline callback (the triggerer builds the
            notifier with the deadline's context, then awaits it).
        webhook_url: Post here instead of ``CREDITRISK_ALERT_WEBHOOK_URL`` (tests).
    """

    def __init__(self, context: Any = None, *, webhook_url: str | None = None) -> None:
        super().__init__(context)
        self.webhook_url = webhook_url

    def notify(self, context: Any) -> None:
        """Task-failure callback: one alert for a task that failed for good."""
        alerts.send(task_failure_alert(context), self.webhook_url)

    async def async_notify(self, context: Any) -> None:
        """Deadline callback (in the triggerer): the blocking post runs off the event loop."""
        await asyncio.to_thread(alerts.send, deadline_alert(context), self.webhook_url)
