"""Batch scoring: every customer of a date, by the champion, into ``risk_scores``.

The body of the ``score_customers`` DAG (prepare → score chunks, mapped → publish) and
of ``creditrisk score --date D`` (the same three steps in one process). The champion
alias is resolved to one version once, in :func:`prepare`; every chunk loads that
version and every row written carries it. Chunks land in the day's partition of
``risk_scores_stage`` with their monitoring counts; :func:`publish` checks the stage is
complete, sums the counts into the ``score_monitoring`` row and swaps the partition in
atomically (:mod:`creditrisk.storage.scores`).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from creditrisk.catalogue import FEATURE_NAMES
from creditrisk.features.build import build_for_date
from creditrisk.features.population import DORMANT as DORMANT_SEGMENT
from creditrisk.features.population import SCORED, SEGMENT_COLUMN, segment
from creditrisk.model.alias_audit import audit_champion
from creditrisk.model.explain import contributions, feature_baseline
from creditrisk.model.pipeline import model_columns
from creditrisk.registry import (
    CHAMPION,
    ModelRef,
    configure_mlflow,
    load_pipeline,
    load_reference,
    registry_errors,
    resolve_alias,
)
from creditrisk.scoring.decide import CAPACITY_COLUMNS, decide, load_policy, population_answer
from creditrisk.scoring.monitoring import chunk_stats, combine
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
    ``reason_codes`` is each customer's JSON text (an Arrow-backed string column), as
    ``risk_scores`` stores it. Column by column: no Python work per customer.
    ``features`` holds every catalogue column, or at least :func:`scoring_columns`.
    """
    import json

    import numpy as np
    import pandas as pd
    import pyarrow as pa

    X = features[[c for c in FEATURE_NAMES if c in features.columns]].astype("float64")
    seg = segment(X, float(policy["population"]["lookback_days"]))
    rows = np.flatnonzero(seg == SCORED)
    dormant = population_answer(DORMANT_SEGMENT, policy)
    cols: dict[str, Any] = {
        "probability_of_default": np.full(len(X), np.nan),
        "credit_score": pd.array(np.zeros(len(X), dtype="int64"), dtype="Int64"),
        **{c: np.full(len(X), dormant[c], dtype=object if c in ("risk_band", "decision")
                      else None)
           for c in ("risk_band", "decision", "recommended_limit", "recommended_term_days")},
    }
    cols["credit_score"][:] = pd.NA
    which = np.full(len(X), len(rows))  # each customer's reasons: theirs, or the dormant's
    reasons = pa.array([], pa.string())
    if len(rows):
        scored = X.iloc[rows]
        d = decide(pipeline.predict_proba(scored)[:, 1], scored,
                   contributions(pipeline, scored), policy,
                   baseline=feature_baseline(pipeline), reasons_as_json=True)
        cols["probability_of_default"][rows] = d.probability_of_default.round(8)
        cols["credit_score"][rows] = d.policy.credit_score
        cols["risk_band"][rows] = d.policy.risk_band
        cols["decision"][rows] = d.decision
        cols["recommended_limit"][rows] = d.policy.recommended_limit
        cols["recommended_term_days"][rows] = d.policy.recommended_term_days
        which[rows] = np.arange(len(rows))
        reasons = d.reason_codes
    all_reasons = pa.concat_arrays([reasons.cast(pa.string()),
                                    pa.array([json.dumps(dormant["reason_codes"])])])
    out = pd.DataFrame({"customer_id": X.index.astype("str"), "segment": seg, **cols})
    out["reason_codes"] = pd.array(all_reasons.take(pa.array(which)),
                                   dtype=pd.ArrowDtype(pa.string()))
    return out


def scoring_columns(pipeline: Pipeline, reference: dict[str, Any] | None) -> list[str]:
    """The feature columns scoring reads, in catalogue order: the model's, the policy's
    (the population's recency, the spending capacity) and those monitoring bins against
    the version's training reference. Everything else in the row is never used."""
    need = {*model_columns(pipeline), SEGMENT_COLUMN, *CAPACITY_COLUMNS,
            *((reference or {}).get("features") or {})}
    return [c for c in FEATURE_NAMES if c in need]


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
    on_resolved: Callable[[ModelRef], object] | None = None,
) -> ScorePlan:
    """Resolve the champion once, make sure the date's features exist, plan the chunks.

    ``on_resolved`` is called with the version as soon as it is resolved (``score_date``
    starts loading it there, while the rest of prepare waits on the database).
    """

    ref = resolve_alias(tracking_uri, model_name, alias)
    if on_resolved is not None:
        on_resolved(ModelRef(ref.name, ref.version, ref.run_id, ""))
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
    """Score one chunk of the plan with the plan's model version into the stage, with
    the chunk's monitoring counts against the version's training reference."""

    pipeline, reference = _load_version(_plan_ref(plan), tracking_uri)
    engine = _engine(database_url)
    try:
        feats = _read_chunk(engine, plan, chunk, scoring_columns(pipeline, reference))
        payload, stats = _chunk_payload(plan, feats, pipeline, reference, run_id)
        return _write_chunk(engine, plan, chunk, payload, len(feats), stats, run_id)
    finally:
        engine.dispose()


def _plan_ref(plan: dict[str, Any]) -> ModelRef:
    return ModelRef(plan["model_name"], plan["model_version"], plan["model_run_id"], "")


def _read_chunk(engine: Engine, plan: dict[str, Any], chunk: int,
                columns: list[str] | None) -> pd.DataFrame:
    """The chunk's customers' features (``columns`` only, or the whole row if None)."""
    return read_features(engine, dt.date.fromisoformat(plan["score_date"]), ordered=False,
                         where_sql=scores.chunk_predicate(chunk, plan["chunks"]),
                         columns=columns)


def _chunk_payload(plan: dict[str, Any], feats: pd.DataFrame, pipeline: Pipeline,
                   reference: dict[str, Any] | None, run_id: str) -> tuple[bytes, dict[str, Any]]:
    """The chunk's COPY payload for the stage and its monitoring counts."""
    rows = score_features(pipeline, feats, load_policy())
    payload = scores.copy_text(rows, {
        "score_date": plan["score_date"], "model_name": plan["model_name"],
        "model_version": plan["model_version"], "run_id": run_id,
        "scored_at": dt.datetime.now(dt.UTC).isoformat()})
    return payload, _chunk_stats(rows, feats, reference)


def _write_chunk(engine: Engine, plan: dict[str, Any], chunk: int, payload: bytes, n_rows: int,
                 stats: dict[str, Any], run_id: str) -> int:
    """COPY the chunk into the day's stage with its counts (one transaction)."""
    day = dt.date.fromisoformat(plan["score_date"])
    run = {"model_name": plan["model_name"], "model_version": plan["model_version"],
           "run_id": run_id}
    with database_failures(engine, f"writing chunk {chunk} of {day} to risk_scores_stage"):
        written = scores.write_stage_chunk(engine, day, chunk, plan["chunks"], payload,
                                           n_rows, stats, run)
    log.info("chunk %d/%d of %s: %d customers scored", chunk + 1, plan["chunks"], day, written)
    return written


_LOADED: dict[tuple[str, str, str, str | None], tuple[Any, dict[str, Any]]] = {}
_LOADING = threading.Lock()


def _load_version(ref: ModelRef, tracking_uri: str | None) -> tuple[Pipeline, dict[str, Any]]:
    """The version's pipeline and training reference, verified, once per process (a
    version never changes; the chunks of one ``creditrisk score`` share them)."""
    key = (ref.name, ref.version, ref.run_id, tracking_uri)
    with _LOADING:
        if key not in _LOADED:
            with registry_errors(tracking_uri, f"loading {ref.name} v{ref.version}"):
                configure_mlflow(tracking_uri)
            pipeline = load_pipeline(ref, tracking_uri)
            _single_thread(pipeline)
            _LOADED.clear()  # one version at a time: memory stays one model's
            _LOADED[key] = (pipeline, load_reference(ref, tracking_uri))
        return _LOADED[key]


def _chunk_stats(rows: pd.DataFrame, feats: pd.DataFrame,
                 reference: dict[str, Any] | None) -> dict[str, Any]:
    """Monitoring counts of the chunk's customers in the population (the model's PDs)."""
    scored = (rows["segment"] == SCORED).to_numpy()
    return chunk_stats(rows["probability_of_default"].to_numpy()[scored],
                       rows["risk_band"].to_numpy()[scored], rows["decision"].to_numpy()[scored],
                       feats[scored], reference)


def publish(plan: dict[str, Any], *, database_url: str, tracking_uri: str | None,
            run_id: str) -> dict[str, Any]:
    """Check the stage is complete, compute monitoring, swap the date in atomically."""

    day = dt.date.fromisoformat(plan["score_date"])
    ref = ModelRef(plan["model_name"], plan["model_version"], plan["model_run_id"], "")
    loaded = _LOADED.get((ref.name, ref.version, ref.run_id, tracking_uri))
    if loaded is not None:  # this process scored the chunks: the reference is verified
        reference = loaded[1]
    else:
        with registry_errors(tracking_uri, f"publishing the scores of {day}"):
            configure_mlflow(tracking_uri)
        reference = load_reference(ref, tracking_uri)
    policy = load_policy()
    engine = _engine(database_url)
    try:
        # the chunks' counts, summed: the day is never read back into memory
        threshold = float(policy["monitoring"]["psi_threshold"])
        mon = combine(scores.staged_chunks(engine, day), reference, threshold)
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


def _import_model_stack() -> None:
    """Import what loading a version imports (skops and the sklearn it pulls in)."""
    import contextlib

    with contextlib.suppress(Exception):  # only a head start: the load imports anyway
        import mlflow.artifacts  # noqa: F401
        import sklearn.calibration  # noqa: F401
        import sklearn.compose  # noqa: F401
        import sklearn.linear_model  # noqa: F401
        import skops.io  # noqa: F401


def _single_thread(pipeline: Pipeline) -> None:
    """XGBoost's OpenMP threads spin against other workers on 2 cores: use one."""
    model = pipeline.named_steps.get("model") if hasattr(pipeline, "named_steps") else None
    if model is not None and model.__class__.__name__ == "XGBClassifier":
        model.set_params(n_jobs=1)


def score_date(
    day: dt.date, *, database_url: str, tracking_uri: str | None, model_name: str,
    alias: str, run_id: str, chunk_customers: int | None = None,
) -> dict[str, Any]:
    """prepare → every chunk → publish, in one process (the CLI).

    The chunks go through a pipeline, so that the database and Python work at once: one
    thread reads chunk i + 1 while this one scores chunk i, and up to
    ``scoring.local_workers`` (policy.yaml) earlier chunks are being COPYd into the
    stage meanwhile. The version loads from the moment prepare has resolved it, while
    prepare finishes and the first chunk is read (the whole row: which columns the
    version needs is known once it is loaded; later chunks read only those). Each chunk
    is scored and staged exactly as :func:`score_chunk` does it; memory holds one chunk's
    features ahead, the one being scored and the payloads being written.
    """
    # the model's libraries import (a second or more) while prepare waits on the registry
    # and the database; the version loads as soon as prepare has resolved it
    threading.Thread(target=_import_model_stack, name="score-imports", daemon=True).start()
    loads: list[Future[tuple[Pipeline, dict[str, Any]]]] = []
    with ThreadPoolExecutor(1, thread_name_prefix="score-load") as loader:
        plan = prepare(day, database_url=database_url, tracking_uri=tracking_uri,
                       model_name=model_name, alias=alias, run_id=run_id,
                       chunk_customers=chunk_customers,
                       on_resolved=lambda ref: loads.append(
                           loader.submit(_load_version, ref, tracking_uri))).as_dict()
        return _score_plan(plan, loads[0], database_url=database_url,
                           tracking_uri=tracking_uri, run_id=run_id)


def _score_plan(plan: dict[str, Any], loading: Future[tuple[Pipeline, dict[str, Any]]], *,
                database_url: str, tracking_uri: str | None, run_id: str) -> dict[str, Any]:
    """Every chunk of ``plan`` through the pipeline of :func:`score_date`, then publish."""
    writers = max(1, min(int(load_policy()["scoring"].get("local_workers", 1)), plan["chunks"]))
    engine = _engine(database_url)
    try:
        with ThreadPoolExecutor(1 + writers, thread_name_prefix="score") as pool:
            def read(chunk: int) -> pd.DataFrame:
                # the first chunk is read while the version loads, so the whole row; the
                # next ones are not needed before the first is scored: the version's columns
                columns = (scoring_columns(*loading.result()) if chunk or loading.done()
                           else None)
                return _read_chunk(engine, plan, chunk, columns)

            reading = pool.submit(read, 0)
            writing: list[Future[int]] = []
            for chunk in range(plan["chunks"]):
                feats = reading.result()
                if chunk + 1 < plan["chunks"]:
                    reading = pool.submit(read, chunk + 1)
                pipeline, reference = loading.result()
                payload, stats = _chunk_payload(plan, feats, pipeline, reference, run_id)
                n_rows = len(feats)
                del feats
                while sum(not w.done() for w in writing) >= writers:
                    wait(writing, return_when=FIRST_COMPLETED)
                for done in writing:
                    if done.done():
                        done.result()  # the first failure fails the run, as in the DAG
                writing.append(pool.submit(_write_chunk, engine, plan, chunk, payload, n_rows,
                                           stats, run_id))
                del payload
            for done in writing:
                done.result()
    finally:
        engine.dispose()
    return publish(plan, database_url=database_url, tracking_uri=tracking_uri, run_id=run_id)
