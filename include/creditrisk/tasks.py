"""The entry points the DAGs call: the whole API of ``dags/``.

Each function reads the process settings (``creditrisk.config``), resolves the dates
the DAG passes (params or the run's logical date) and calls one stage package. The DAG
files import only this module, :mod:`creditrisk.alerts` and :mod:`creditrisk.dates`, and
only inside task bodies, so parsing a DAG stays cheap.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from pathlib import Path
from typing import Any

from creditrisk import registry
from creditrisk.config import get_settings
from creditrisk.dates import parse_day
from creditrisk.evaluation.backtest import backtest_metrics, run_backtest, write_report
from creditrisk.features.build import (
    build_chunk,
    default_as_of,
    plan_features,
    publish_features,
)
from creditrisk.ingest.load import QuarantineThresholdError, ingest_days
from creditrisk.ingest.outcomes import ingest_outcome_days
from creditrisk.model.train import train
from creditrisk.schema import landing_file_name
from creditrisk.scoring.batch import prepare, publish, score_chunk
from creditrisk.scoring.shadow import plan_shadow, publish_shadow, score_shadow_chunk

log = logging.getLogger(__name__)

__all__ = [
    "QuarantineThresholdError",
    "backtest_from_settings",
    "feature_chunk_from_settings",
    "ingest_days_from_settings",
    "ingest_outcomes_from_settings",
    "missing_landing_files",
    "plan_features_from_settings",
    "plan_shadow_from_settings",
    "prepare_from_settings",
    "publish_features_from_settings",
    "publish_from_settings",
    "publish_shadow_from_settings",
    "score_chunk_from_settings",
    "shadow_chunk_from_settings",
    "train_from_settings",
]


def ingest_days_from_settings(days: list[str], *, run_id: str) -> list[dict[str, object]]:
    """Ingest the ISO days as one run with the process settings (the DAG task's body):
    one validation of all the days' files, then each file loaded in order."""

    settings = get_settings()
    return ingest_days(
        [dt.date.fromisoformat(day) for day in days],
        database_url=settings.require_database_url(),
        landing_dir=settings.landing_dir,
        run_id=run_id,
        threshold=settings.quarantine_threshold,
    )


def ingest_outcomes_from_settings(days: list[str], *, run_id: str) -> list[dict[str, object]]:
    """Ingest the loans and repayments files of the ISO days (the ``ingest_loans`` task)."""

    settings = get_settings()
    return ingest_outcome_days(
        [dt.date.fromisoformat(day) for day in days],
        database_url=settings.require_database_url(), landing_dir=settings.landing_dir,
        run_id=run_id, threshold=settings.quarantine_threshold,
    )


def backtest_from_settings(*, as_of: str, run_id: str) -> dict[str, Any]:
    """The ``ingest_loans.backtest`` task (and ``creditrisk backtest``): the band backtest
    of matured loans as of the day, then its MLflow run (:func:`log_backtest_run`) when a
    tracking URI is configured; ``mlflow_run_id`` is its id, or None."""
    from creditrisk.model.train import load_config

    rep = load_config()["dataset"].get("repayment", {})
    settings = get_settings()
    url = settings.require_database_url()
    days = {"grace_days": int(rep.get("grace_days", 30)), "bad_dpd": int(rep.get("bad_dpd", 30))}
    result = run_backtest(dt.date.fromisoformat(as_of), database_url=url, run_id=run_id, **days)
    result["mlflow_run_id"] = log_backtest_run(
        result, tracking_uri=settings.tracking_uri(), model_name=settings.model_name,
        database_url=url, run_id=run_id, **days)
    return result


def log_backtest_run(result: dict[str, Any], *, tracking_uri: str | None, model_name: str,
                     database_url: str, run_id: str, grace_days: int = 30,
                     bad_dpd: int = 30) -> str | None:
    """Log a backtest (:func:`run_backtest`'s result, rows already written) as a run of the
    model's experiment: the plots, the two tables as CSV and the headline metrics, tagged
    ``run_kind=backtest``, ``as_of`` and the model versions judged.

    It lives here, not in the evaluation package, because the registry (the trainer's
    identity, the bounded HTTP client) is a sibling layer of it. A failure of it (the
    registry down, within its HTTP bounds) is one warning: the backtest's rows stay
    written and its task succeeds.

    Returns:
        The run's id; None without a tracking URI or when logging it failed.
    """
    if not tracking_uri:
        log.info("backtest %s: no MLFLOW_TRACKING_URI, so no MLflow run", result["as_of"])
        return None
    versions = sorted({str(b["model_version"]) for b in result["bands"]})
    tags = {"run_kind": "backtest", "as_of": result["as_of"], "airflow_run_id": run_id,
            "model_name": model_name, "model_versions": ",".join(versions),
            **{f"model_version.{v}": "judged" for v in versions}}
    try:
        with tempfile.TemporaryDirectory(prefix="creditrisk-backtest-") as tmp:
            files = write_report(result, Path(tmp), database_url=database_url,
                                 grace_days=grace_days, bad_dpd=bad_dpd)
            mlflow_run = registry.log_report_run(
                tracking_uri, run_name=f"backtest {result['as_of']}", tags=tags,
                metrics=backtest_metrics(result),
                artifacts={"plots": [f for f in files if f.suffix == ".png"],
                           "tables": [f for f in files if f.suffix == ".csv"]})
    except Exception as exc:
        log.warning("backtest %s: its outcome_backtest rows are written, but its MLflow run "
                    "was not logged: %s: %s", result["as_of"], type(exc).__name__, exc)
        return None
    log.info("backtest %s: MLflow run %s (plots and tables)", result["as_of"], mlflow_run)
    return mlflow_run


def missing_landing_files(days: list[str]) -> tuple[str, list[str]]:
    """The landing folder, and the names of the files of ``days`` not in it (yet)."""

    landing = get_settings().landing_dir
    names = [landing_file_name(dt.date.fromisoformat(day)) for day in days]
    return str(landing), [name for name in names if not (landing / name).is_file()]


def plan_features_from_settings(
    *, as_of: str | None, label_strategy: str, horizon_days: int, chunks: int | None = None,
    run_id: str = "",
) -> dict[str, object]:
    """DAG body of ``build_features.plan``: the as-of date (param, else the day after the
    newest transaction) and the chunks (param, else one per 200,000 customers)."""

    url = get_settings().require_database_url()
    day = parse_day(as_of, "as_of") if as_of else default_as_of(url)
    return plan_features(day, database_url=url, label_strategy=label_strategy,
                         horizon_days=horizon_days, chunks=chunks, run_id=run_id)


def feature_chunk_from_settings(plan: dict[str, Any], chunk: int, *,
                                run_id: str) -> dict[str, object]:
    """DAG body of one mapped ``build_features.build_chunk``."""

    return build_chunk(plan, chunk, database_url=get_settings().require_database_url(),
                       run_id=run_id)


def publish_features_from_settings(plan: dict[str, Any], chunks: list[dict[str, Any]], *,
                                   run_id: str) -> dict[str, object]:
    """DAG body of ``build_features.publish``: every chunk staged, or nothing written."""

    return publish_features(plan, database_url=get_settings().require_database_url(),
                            run_id=run_id, chunks=chunks)


def train_from_settings(*, as_of: str | None, run_id: str, promote: bool) -> dict[str, Any]:
    """The DAG task's body: resolve D (param, else the day after the newest transaction)."""

    settings = get_settings()
    url = settings.require_database_url()
    day = parse_day(as_of, "as_of") if as_of else default_as_of(url)
    result = train(
        day, database_url=url, tracking_uri=settings.tracking_uri(),
        model_name=settings.model_name, run_id=run_id, promote=promote,
    )
    # XCom carries a summary, not the per-candidate metric dicts; the Airflow plugin's
    # links read the run id, the model name and the version from it.
    return {k: result[k] for k in ("as_of", "parent_run_id", "version", "selected")} | {
        "promotion": result.get("promotion", {}).get("decision"),
        "model_name": settings.model_name,
    }


def prepare_from_settings(
    *, date: str | None, logical_date: dt.datetime, run_id: str
) -> dict[str, Any]:
    """DAG body of ``prepare``: the score date is the param, else the logical date's day."""

    settings = get_settings()
    day = parse_day(date, "date") if date else logical_date.astimezone(dt.UTC).date()
    return prepare(
        day, database_url=settings.require_database_url(),
        tracking_uri=settings.tracking_uri(), model_name=settings.model_name,
        alias=settings.model_alias, run_id=run_id,
    ).as_dict()


def score_chunk_from_settings(plan: dict[str, Any], chunk: int, *, run_id: str) -> int:
    """DAG body of one mapped ``score_chunk``."""

    settings = get_settings()
    return score_chunk(plan, chunk, database_url=settings.require_database_url(),
                       tracking_uri=settings.tracking_uri(), run_id=run_id)


def publish_from_settings(plan: dict[str, Any], *, run_id: str) -> dict[str, Any]:
    """DAG body of ``publish``."""

    settings = get_settings()
    return publish(plan, database_url=settings.require_database_url(),
                   tracking_uri=settings.tracking_uri(), run_id=run_id)


def plan_shadow_from_settings(plan: dict[str, Any], *, run_id: str) -> dict[str, Any]:
    """DAG body of ``plan_shadow`` (after ``publish``): the challenger for the same plan."""

    settings = get_settings()
    return plan_shadow(plan, database_url=settings.require_database_url(),
                       tracking_uri=settings.tracking_uri(), run_id=run_id)


def shadow_chunk_from_settings(shadow: dict[str, Any], chunk: int, *, run_id: str) -> int:
    """DAG body of one mapped ``shadow_chunk``."""

    settings = get_settings()
    return score_shadow_chunk(shadow, chunk, database_url=settings.require_database_url(),
                              tracking_uri=settings.tracking_uri(), run_id=run_id)


def publish_shadow_from_settings(shadow: dict[str, Any], *, run_id: str) -> dict[str, Any]:
    """DAG body of ``publish_shadow``: shadow_scores and the swap-set report."""

    settings = get_settings()
    return publish_shadow(shadow, database_url=settings.require_database_url(),
                          tracking_uri=settings.tracking_uri(), run_id=run_id)
