"""Batch scoring: every customer of a date, by the champion, into ``risk_scores``.

The body of the ``score_customers`` DAG (prepare → score chunks, mapped → publish) and
of ``creditrisk score --date D`` (the same three steps in one process). The champion
alias is resolved to one version once, in :func:`prepare`; every chunk loads that
version and every row written carries it. Chunks land in ``risk_scores_stage``;
:func:`publish` checks the stage is complete and swaps the date in atomically with its
``score_monitoring`` row.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from creditrisk.catalogue import FEATURE_NAMES
from creditrisk.features.build import build_for_date
from creditrisk.features.population import DORMANT as DORMANT_SEGMENT
from creditrisk.features.population import SCORED, segment
from creditrisk.model.alias_audit import audit_champion
from creditrisk.model.explain import contributions, feature_baseline
from creditrisk.registry import (
    CHAMPION,
    ModelRef,
    configure_mlflow,
    load_pipeline,
    load_reference,
    registry_errors,
    resolve_alias,
)
from creditrisk.scoring.decide import Decision, decide, load_policy, population_answer
from creditrisk.scoring.monitoring import monitoring_row
from creditrisk.storage import scores
from creditrisk.storage.db import check_connection, database_failures, make_engine
from creditrisk.storage.features import count_features, read_features, stale_feature_dates

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


def score_features(
    pipeline: Pipeline, features: pd.DataFrame, policy: dict[str, Any]
) -> pd.DataFrame:
    """PD, policy outputs and reasons for customers (features indexed by customer_id).

    Customers in the scoring population get the model's PD through
    :func:`creditrisk.scoring.decide.decide` (the API's path too); dormant ones get the
    policy's answer and no PD (:func:`creditrisk.scoring.decide.population_answer`).
    """
    import numpy as np
    import pandas as pd

    X = features[list(FEATURE_NAMES)].astype("float64")
    seg = segment(X, float(policy["population"]["lookback_days"]))
    scored = X[seg == SCORED]
    out = pd.DataFrame({"customer_id": X.index.astype("str"), "segment": seg})
    out["probability_of_default"] = np.nan
    out["credit_score"] = pd.array([None] * len(X), dtype="Int64")
    if len(scored):
        pd_ = pipeline.predict_proba(scored)[:, 1]
        d = decide(pd_, scored, contributions(pipeline, scored), policy,
                   baseline=feature_baseline(pipeline))
        rows = np.flatnonzero(seg == SCORED)
        out.loc[rows, "probability_of_default"] = d.probability_of_default.round(8)
        out.loc[rows, "credit_score"] = d.policy.credit_score
        answers = _answers(len(X), rows, d, policy)
    else:
        answers = _answers(len(X), np.array([], dtype=int), None, policy)
    for col in ("risk_band", "decision", "recommended_limit", "recommended_term_days",
                "reason_codes"):
        out[col] = answers[col]
    return out


def _answers(n: int, rows: Any, d: Decision | None, policy: dict[str, Any]) -> dict[str, list]:
    """Band, decision, limit, term and reasons per customer: the decision's for the scored
    rows, the dormant answer for the rest."""
    dormant = population_answer(DORMANT_SEGMENT, policy)
    cols = {c: [dormant[c]] * n for c in ("risk_band", "decision", "recommended_limit",
                                          "recommended_term_days", "reason_codes")}
    if d is not None:
        for k, r in enumerate(rows):
            cols["risk_band"][r] = str(d.policy.risk_band[k])
            cols["decision"][r] = str(d.decision[k])
            cols["recommended_limit"][r] = float(d.policy.recommended_limit[k])
            cols["recommended_term_days"][r] = int(d.policy.recommended_term_days[k])
            cols["reason_codes"][r] = d.reason_codes[k]
    return cols


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

    engine = make_engine(database_url)
    check_connection(engine)
    return engine


def prepare(
    score_date: dt.date, *, database_url: str, tracking_uri: str | None, model_name: str,
    alias: str, run_id: str, chunk_customers: int | None = None,
) -> ScorePlan:
    """Resolve the champion once, make sure the date's features exist, plan the chunks."""

    ref = resolve_alias(tracking_uri, model_name, alias)
    engine = _engine(database_url)
    try:
        if alias == CHAMPION:  # a move made in the MLflow UI leaves no row: record it here
            audit_champion(engine, ref.name, ref.version, detected_by="score_customers")
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

    day = dt.date.fromisoformat(plan["score_date"])
    ref = ModelRef(plan["model_name"], plan["model_version"], plan["model_run_id"], "")
    with registry_errors(tracking_uri, f"publishing the scores of {day}"):
        configure_mlflow(tracking_uri)
    reference = load_reference(ref, tracking_uri)
    policy = load_policy()
    engine = _engine(database_url)
    try:
        staged = scores.staged_frame(engine, day)
        staged = staged[staged["segment"] == SCORED]  # the model's output: PDs only
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
    drifted = {k: v for k, v in mon["psi_features"].items() if v is not None and v > threshold}
    if mon["psi_alert"]:
        log.warning("PSI over %.2f on %s: score %s, features %s", threshold, day,
                    mon["psi_score"], drifted)
    log.info("published %d scores for %s (model %s v%s), mean PD %.4f", published, day,
             ref.name, ref.version, mon["mean_pd"])
    return {"score_date": day.isoformat(), "published": published,
            "model_version": ref.version, "model_run_id": ref.run_id,
            # XCom is JSON: no NaN (a day with nobody in the population has no mean PD)
            "mean_pd": mon["mean_pd"] if mon["n_scored"] else None,
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
