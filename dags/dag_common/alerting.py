"""Task callbacks that page an operator through :mod:`creditrisk.alerts`.

``on_task_failure`` is every DAG's ``on_failure_callback``: Airflow calls it in the task's
own process once the task has failed for good (a failure that will be retried calls
``on_retry_callback`` instead), so one broken night gives one alert, not one per try.
A failure caused by a landing file over the quarantine threshold is reported as that
event, with the file's counts, instead of as a generic task failure.
"""

from __future__ import annotations

from typing import Any


def _cause(exc: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def on_task_failure(context: Any) -> None:
    """Send a task-failed (or quarantine-threshold) alert for the failed task instance."""
    from creditrisk import alerts
    from creditrisk.tasks import QuarantineThresholdError

    ti = context["ti"]
    exc = context.get("exception")
    over = _cause(exc, QuarantineThresholdError)
    if isinstance(over, QuarantineThresholdError) and over.result is not None:
        res = over.result
        alert = alerts.quarantine_over_threshold(
            file=res.source_file, day=res.logical_date, rows=res.rows_read,
            quarantined=res.rows_quarantined, threshold=over.threshold or 0.0,
            run_id=res.run_id)
    else:
        try:
            log_url: str | None = ti.log_url
        except Exception:  # noqa: BLE001 - a missing base URL must not lose the alert
            log_url = None
        alert = alerts.task_failed(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id,
                                   try_number=getattr(ti, "try_number", None), error=exc,
                                   log_url=log_url)
    alerts.send(alert)


def alert_on_drift(result: dict[str, Any], run_id: str) -> bool:
    """After ``publish``: send the PSI alert when the day was flagged; True if flagged."""
    if not result.get("psi_alert"):
        return False
    from creditrisk import alerts

    alerts.send(alerts.psi_over_threshold(
        score_date=str(result["score_date"]), model_name=str(result.get("model_name", "")),
        model_version=str(result["model_version"]), psi_score=result.get("psi_score"),
        drifted=dict(result.get("psi_drifted") or {}),
        threshold=float(result.get("psi_threshold", 0.0)), run_id=run_id))
    return True
