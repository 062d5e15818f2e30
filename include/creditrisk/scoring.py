"""Batch scoring: every customer of a date, by the champion, into ``risk_scores``.

The body of the ``score_customers`` DAG (prepare → score chunks, mapped → publish) and
of ``creditrisk score --date D`` (the same three steps in one process). The champion
alias is resolved to one version once, in :func:`prepare`; every chunk loads that
version and every row written carries it. Chunks land in ``risk_scores_stage``;
:func:`publish` checks the stage is complete and swaps the date in atomically with its
``score_monitoring`` row.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
from collections.abc import Generator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from creditrisk.errors import CreditRiskError, InputError, ServiceUnavailableError

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelRef:
    """One registered model version, as resolved from an alias."""

    name: str
    version: str
    run_id: str
    alias: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def describe_uri(uri: str | None) -> str:
    """A tracking URI safe to print: a password in it is masked."""
    from urllib.parse import urlsplit, urlunsplit

    if not uri:
        return "<unset>"
    try:
        parts = urlsplit(uri)
        if parts.password is None:
            return uri
        user = parts.username or ""
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
    except ValueError:
        return "<unparseable URI>"


def _unreachable_reason(exc: BaseException) -> str | None:
    """Why the registry could not be reached, if that is what ``exc`` is; else None.

    MLflow wraps a failed HTTP request (refused, timed out, retries exhausted) into a
    plain ``MlflowException`` whose context is the ``requests`` error; a store URI that
    is a database fails with SQLAlchemy's ``OperationalError``.
    """
    import re

    import requests
    import sqlalchemy as sa

    seen: set[int] = set()
    err: BaseException | None = exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, requests.exceptions.RequestException | sa.exc.OperationalError
                      | ConnectionError | TimeoutError):
            text = str(err)
            errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
            if errno:
                return errno.group(1).strip()
            if isinstance(err, requests.exceptions.Timeout) or "timed out" in text.lower():
                return "timed out"
            lines = text.strip().splitlines()
            return f"{type(err).__name__}: {lines[0][:160]}" if lines else type(err).__name__
        err = err.__cause__ or err.__context__
    return None


@contextlib.contextmanager
def registry_errors(tracking_uri: str | None, what: str) -> Generator[None]:
    """Turn an unreachable MLflow registry into a one-line :class:`ServiceUnavailableError`.

    The message names the tracking URI (password masked) and what was being done, so
    the failed task's log says which server to bring back; the task's retries do the rest.
    """
    try:
        yield
    except CreditRiskError:
        raise
    except Exception as exc:
        reason = _unreachable_reason(exc)
        if reason is None:
            raise
        raise _unreachable(tracking_uri, reason, what) from exc


def _unreachable(tracking_uri: str | None, reason: str, what: str) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        f"the MLflow registry at {describe_uri(tracking_uri)} is unreachable ({reason}) "
        f"while {what}: nothing was written; re-run once the tracking server is up"
    )


def resolve_alias(tracking_uri: str | None, name: str, alias: str) -> ModelRef:
    """Resolve ``models:/name@alias`` to a version, once."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from creditrisk.training import configure_mlflow

    try:
        with registry_errors(tracking_uri, f"resolving {name}@{alias}"):
            configure_mlflow(tracking_uri)
            mv = MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(
            exc
        ).lower():
            raise InputError(
                f"no version of {name} has the alias {alias!r}: train and promote first "
                f"(creditrisk train --as-of D --promote, or creditrisk promote --version N)"
            ) from None
        raise ServiceUnavailableError(
            f"MLflow registry at {describe_uri(tracking_uri)} failed resolving {name}@{alias}: "
            f"{str(exc).strip().splitlines()[0][:200]}"
        ) from exc
    except OSError as exc:
        raise ServiceUnavailableError(
            f"MLflow registry at {describe_uri(tracking_uri)} unavailable: {exc}"
        ) from exc
    return ModelRef(name=name, version=str(mv.version), run_id=str(mv.run_id), alias=alias)


def load_pipeline(ref: ModelRef, tracking_uri: str | None = None) -> Pipeline:
    """Load exactly the resolved version (never the alias again)."""
    import mlflow.sklearn

    with registry_errors(tracking_uri, f"loading {ref.name} v{ref.version}"):
        model: Pipeline = mlflow.sklearn.load_model(ref.uri)
    return model


def load_reference(ref: ModelRef, tracking_uri: str | None = None) -> dict[str, Any] | None:
    """The training reference distributions logged with the version's run, if any.

    A version without one gives monitoring without PSI; an unreachable registry is an
    error (publishing without the reference would silently drop the drift check).
    """
    import mlflow.artifacts

    try:
        path = mlflow.artifacts.download_artifacts(run_id=ref.run_id,
                                                   artifact_path="reference.json")
    except Exception as exc:
        reason = _unreachable_reason(exc)
        if reason is not None:
            raise _unreachable(tracking_uri, reason,
                               f"reading the reference of {ref.name} v{ref.version}") from exc
        log.warning("model %s v%s has no reference.json: PSI not computed", ref.name,
                    ref.version)
        return None
    with open(path) as fh:
        data: dict[str, Any] = json.load(fh)
        return data


def score_features(
    pipeline: Pipeline, features: pd.DataFrame, policy: dict[str, Any]
) -> pd.DataFrame:
    """PD, policy outputs and reason codes for customers (features indexed by customer_id).

    One function for batch scoring and the API, so both give the same answer.
    """
    import pandas as pd

    from creditrisk.features import FEATURE_NAMES
    from creditrisk.policy import apply_policy, reason_codes
    from creditrisk.training import contributions

    X = features[list(FEATURE_NAMES)].astype("float64")
    pd_ = pipeline.predict_proba(X)[:, 1]
    res = apply_policy(pd_, X, policy)
    contrib = contributions(pipeline, X)
    reasons = reason_codes(contrib, policy) if contrib is not None else [[] for _ in pd_]
    return pd.DataFrame(
        {
            "customer_id": X.index.astype("str"),
            "probability_of_default": pd_.round(8),
            "credit_score": res.credit_score,
            "risk_band": res.risk_band,
            "decision": res.decision,
            "recommended_limit": res.recommended_limit,
            "recommended_term_days": res.recommended_term_days,
            "reason_codes": reasons,
        }
    )


@dataclass
class ScorePlan:
    """What :func:`prepare` decided, passed to every chunk and to publish."""

    score_date: str
    model_name: str
    model_version: str
    model_run_id: str
    customers: int
    chunks: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _engine(database_url: str) -> Engine:
    from creditrisk.storage.db import check_connection, make_engine

    engine = make_engine(database_url)
    check_connection(engine)
    return engine


def prepare(
    score_date: dt.date, *, database_url: str, tracking_uri: str | None, model_name: str,
    alias: str, run_id: str, chunk_customers: int | None = None,
) -> ScorePlan:
    """Resolve the champion once, make sure the date's features exist, plan the chunks."""
    from creditrisk.feature_build import build_for_date
    from creditrisk.policy import load_policy
    from creditrisk.storage import scores
    from creditrisk.storage.features import count_features, stale_feature_dates

    ref = resolve_alias(tracking_uri, model_name, alias)
    engine = _engine(database_url)
    try:
        if count_features(engine, score_date) == 0 or stale_feature_dates(engine, [score_date]):
            log.info("features as of %s missing or older than the data: building them",
                     score_date)
            build_for_date(score_date, database_url=database_url, run_id=run_id)
        n = count_features(engine, score_date)
        scores.clear_stage(engine, score_date)
    finally:
        engine.dispose()
    size = chunk_customers or int(load_policy()["scoring"]["chunk_customers"])
    plan = ScorePlan(score_date.isoformat(), ref.name, ref.version, ref.run_id, n,
                     max(1, math.ceil(n / max(size, 1))))
    log.info("scoring %s: %d customers in %d chunk(s) with %s v%s (%s)", score_date, n,
             plan.chunks, ref.name, ref.version, alias)
    return plan


def score_chunk(plan: dict[str, Any], chunk: int, *, database_url: str,
                tracking_uri: str | None, run_id: str) -> int:
    """Score one chunk of the plan with the plan's model version into the stage."""
    from creditrisk.policy import load_policy
    from creditrisk.storage import scores
    from creditrisk.storage.db import database_failures
    from creditrisk.storage.features import read_features
    from creditrisk.training import configure_mlflow

    ref = ModelRef(plan["model_name"], plan["model_version"], plan["model_run_id"], "")
    with registry_errors(tracking_uri, f"loading {ref.name} v{ref.version}"):
        configure_mlflow(tracking_uri)
    pipeline = load_pipeline(ref, tracking_uri)
    _single_thread(pipeline)
    day = dt.date.fromisoformat(plan["score_date"])
    engine = _engine(database_url)
    try:
        feats = read_features(engine, day, where_sql=scores.chunk_predicate(chunk, plan["chunks"]))
        rows = score_features(pipeline, feats, load_policy())
        rows["score_date"] = day.isoformat()
        rows["model_name"] = ref.name
        rows["model_version"] = ref.version
        rows["scored_at"] = dt.datetime.now(dt.UTC).isoformat()
        rows["run_id"] = run_id
        with database_failures(engine, f"writing chunk {chunk} of {day} to risk_scores_stage"):
            written = scores.write_stage_chunk(engine, day, chunk, plan["chunks"], rows)
    finally:
        engine.dispose()
    log.info("chunk %d/%d of %s: %d customers scored", chunk + 1, plan["chunks"], day, written)
    return written


def publish(plan: dict[str, Any], *, database_url: str, tracking_uri: str | None,
            run_id: str) -> dict[str, Any]:
    """Check the stage is complete, compute monitoring, swap the date in atomically."""
    from creditrisk.monitoring import monitoring_row
    from creditrisk.policy import load_policy
    from creditrisk.storage import scores
    from creditrisk.storage.db import database_failures
    from creditrisk.storage.features import read_features
    from creditrisk.training import configure_mlflow

    day = dt.date.fromisoformat(plan["score_date"])
    ref = ModelRef(plan["model_name"], plan["model_version"], plan["model_run_id"], "")
    with registry_errors(tracking_uri, f"publishing the scores of {day}"):
        configure_mlflow(tracking_uri)
    reference = load_reference(ref, tracking_uri)
    policy = load_policy()
    engine = _engine(database_url)
    try:
        staged = scores.staged_frame(engine, day)
        feats = read_features(engine, day).reindex(staged["customer_id"])
        threshold = float(policy["monitoring"]["psi_threshold"])
        mon = monitoring_row(
            staged["probability_of_default"].to_numpy(), staged["risk_band"].to_numpy(),
            staged["decision"].to_numpy(), feats, reference, threshold,
        )
        with database_failures(engine, f"publishing the scores of {day} (risk_scores and "
                                       "score_monitoring; the previous day's rows are intact)"):
            published = scores.publish(engine, day, int(plan["customers"]), mon, ref.name,
                                       ref.version, run_id)
    finally:
        engine.dispose()
    drifted = {k: v for k, v in mon["psi_features"].items() if v > threshold}
    if mon["psi_alert"]:
        log.warning("PSI over %.2f on %s: score %s, features %s", threshold, day,
                    mon["psi_score"], drifted)
    log.info("published %d scores for %s (model %s v%s), mean PD %.4f", published, day,
             ref.name, ref.version, mon["mean_pd"])
    return {"score_date": day.isoformat(), "published": published,
            "model_version": ref.version, "mean_pd": mon["mean_pd"],
            "psi_score": mon["psi_score"], "psi_alert": mon["psi_alert"],
            "psi_threshold": threshold, "psi_drifted": drifted,
            "model_name": ref.name}


def _single_thread(pipeline: Pipeline) -> None:
    """XGBoost's OpenMP threads spin against other workers on 2 cores: use one."""
    model = pipeline.named_steps.get("model") if hasattr(pipeline, "named_steps") else None
    if model is not None and model.__class__.__name__ == "XGBClassifier":
        model.set_params(n_jobs=1)


def score_date(
    day: dt.date, *, database_url: str, tracking_uri: str | None, model_name: str,
    alias: str, run_id: str, chunk_customers: int | None = None,
) -> dict[str, Any]:
    """prepare → every chunk → publish, in one process (the CLI)."""
    plan = prepare(day, database_url=database_url, tracking_uri=tracking_uri,
                   model_name=model_name, alias=alias, run_id=run_id,
                   chunk_customers=chunk_customers).as_dict()
    for chunk in range(plan["chunks"]):
        score_chunk(plan, chunk, database_url=database_url, tracking_uri=tracking_uri,
                    run_id=run_id)
    return publish(plan, database_url=database_url, tracking_uri=tracking_uri, run_id=run_id)


def prepare_from_settings(
    *, date: str | None, logical_date: dt.datetime, run_id: str
) -> dict[str, Any]:
    """DAG body of ``prepare``: the score date is the param, else the logical date's day."""
    from creditrisk.config import get_settings
    from creditrisk.dates import parse_day

    settings = get_settings()
    day = parse_day(date, "date") if date else logical_date.astimezone(dt.UTC).date()
    return prepare(
        day, database_url=settings.require_database_url(),
        tracking_uri=settings.mlflow_tracking_uri, model_name=settings.model_name,
        alias=settings.model_alias, run_id=run_id,
    ).as_dict()


def score_chunk_from_settings(plan: dict[str, Any], chunk: int, *, run_id: str) -> int:
    """DAG body of one mapped ``score_chunk``."""
    from creditrisk.config import get_settings

    settings = get_settings()
    return score_chunk(plan, chunk, database_url=settings.require_database_url(),
                       tracking_uri=settings.mlflow_tracking_uri, run_id=run_id)


def publish_from_settings(plan: dict[str, Any], *, run_id: str) -> dict[str, Any]:
    """DAG body of ``publish``."""
    from creditrisk.config import get_settings

    settings = get_settings()
    return publish(plan, database_url=settings.require_database_url(),
                   tracking_uri=settings.mlflow_tracking_uri, run_id=run_id)
