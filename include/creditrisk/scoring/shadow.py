"""Shadow scoring: the challenger scores the night's customers beside the champion.

After the champion's day is published (:mod:`creditrisk.scoring.batch`), and only while
the ``challenger`` alias points at another version than the version the day was scored
with, :func:`plan_shadow` resolves the challenger once and checks it loads;
:func:`score_shadow_chunk` scores the champion plan's chunks (the same hash split) into
``shadow_scores_stage``; :func:`publish_shadow` swaps the (day, version) into
``shadow_scores`` with its swap-set report in one transaction, then attaches the report
to the challenger's model version in MLflow. ``risk_scores`` is only read.

Nothing here may fail or delay the champion: it runs after the champion's publish, a
missing challenger is logged once and skipped, and a challenger that cannot be resolved
or loaded is skipped with a warning and one ``shadow_skipped`` alert.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from typing import Any

from creditrisk import alerts
from creditrisk.errors import InputError
from creditrisk.model.describe import SWAP_SECTION
from creditrisk.registry import (
    CHALLENGER,
    ModelRef,
    attach_to_version,
    load_pipeline,
    resolve_alias,
)
from creditrisk.scoring.batch import _engine, _single_thread, score_features
from creditrisk.scoring.decide import load_policy
from creditrisk.storage import shadow as store
from creditrisk.storage.db import database_failures
from creditrisk.storage.features import read_features
from creditrisk.storage.scores import chunk_predicate

log = logging.getLogger(__name__)

PLANNED, NO_CHALLENGER, SKIPPED = "planned", "no_challenger", "skipped"
#: Tags the swap-set report sets on the challenger's model version in MLflow.
SUMMARY_TAG, ARTIFACT_TAG = "swap_set_summary", "swap_set_artifact"


@dataclass
class ShadowPlan:
    """What :func:`plan_shadow` decided: the challenger, and the champion plan's chunks."""

    status: str
    score_date: str
    model_name: str
    champion_version: str
    reason: str = ""
    challenger_version: str = ""
    challenger_run_id: str = ""
    customers: int = 0
    chunks: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_shadow(plan: dict[str, Any], *, database_url: str, tracking_uri: str | None,
                run_id: str) -> dict[str, Any]:
    """Resolve ``challenger`` once for the champion's ``plan``; check it loads.

    Returns a :class:`ShadowPlan` as a dict: ``planned``, ``no_challenger`` (none, or
    the champion itself: logged once, nothing written) or ``skipped`` (it could not be
    resolved or loaded: a warning and one alert; the champion's day is not affected).
    """
    day, name, champion = plan["score_date"], plan["model_name"], str(plan["model_version"])
    base = ShadowPlan(NO_CHALLENGER, day, name, champion)
    try:
        ref = resolve_alias(tracking_uri, name, CHALLENGER)
    except InputError:
        base.reason = f"no {CHALLENGER} alias on {name}"
        log.info("shadow scoring of %s: %s, nothing to shadow", day, base.reason)
        return base.as_dict()
    except Exception as exc:  # the shadow must never fail the night: skip and alert
        return _skip(base, "?", f"resolving {name}@{CHALLENGER} failed: {_line(exc)}", run_id)
    if ref.version == champion:
        base.reason = f"{CHALLENGER} is the champion (v{champion})"
        log.info("shadow scoring of %s: %s, nothing to shadow", day, base.reason)
        return base.as_dict()
    try:
        load_pipeline(ref, tracking_uri)
    except Exception as exc:  # a broken challenger: skip and alert, never fail the night
        return _skip(base, ref.version, f"loading v{ref.version} failed: {_line(exc)}", run_id)
    engine = _engine(database_url)
    try:
        store.clear_stage(engine, dt.date.fromisoformat(day), name, ref.version)
    finally:
        engine.dispose()
    shadow = ShadowPlan(PLANNED, day, name, champion, challenger_version=ref.version,
                        challenger_run_id=ref.run_id, customers=int(plan["customers"]),
                        chunks=int(plan["chunks"]))
    log.info("shadow scoring %s: %d customers in %d chunk(s) with %s v%s (%s) beside v%s",
             day, shadow.customers, shadow.chunks, name, ref.version, CHALLENGER, champion)
    return shadow.as_dict()


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def _skip(base: ShadowPlan, version: str, reason: str, run_id: str) -> dict[str, Any]:
    base.status, base.reason, base.challenger_version = SKIPPED, reason, version
    log.warning("shadow scoring of %s skipped: %s; the champion's scores are unaffected",
                base.score_date, reason)
    alerts.send(alerts.shadow_skipped(score_date=base.score_date, model_name=base.model_name,
                                      challenger_version=version, reason=reason,
                                      run_id=run_id))
    return base.as_dict()


def score_shadow_chunk(shadow: dict[str, Any], chunk: int, *, database_url: str,
                       tracking_uri: str | None, run_id: str) -> int:
    """Score one chunk of the champion's plan with the challenger into the shadow stage."""
    name, version = shadow["model_name"], shadow["challenger_version"]
    pipeline = load_pipeline(ModelRef(name, version, shadow["challenger_run_id"], CHALLENGER),
                             tracking_uri)
    _single_thread(pipeline)
    day = dt.date.fromisoformat(shadow["score_date"])
    engine = _engine(database_url)
    try:
        feats = read_features(engine, day, where_sql=chunk_predicate(chunk, shadow["chunks"]))
        rows = score_features(pipeline, feats, load_policy())
        rows["score_date"] = day.isoformat()
        rows["model_name"] = name
        rows["model_version"] = version
        rows["scored_at"] = dt.datetime.now(dt.UTC).isoformat()
        rows["run_id"] = run_id
        with database_failures(engine, f"writing shadow chunk {chunk} of {day}"):
            written = store.write_stage_chunk(engine, day, name, version, chunk,
                                              shadow["chunks"], rows)
    finally:
        engine.dispose()
    log.info("shadow chunk %d/%d of %s: %d customers scored with v%s", chunk + 1,
             shadow["chunks"], day, written, version)
    return written


def publish_shadow(shadow: dict[str, Any], *, database_url: str, tracking_uri: str | None,
                   run_id: str) -> dict[str, Any]:
    """Swap the (day, challenger version) into shadow_scores with its swap-set report,
    atomically; then attach the report to the challenger's version in MLflow."""
    day = dt.date.fromisoformat(shadow["score_date"])
    engine = _engine(database_url)
    try:
        with database_failures(engine, f"publishing the shadow scores of {day}"):
            row = store.publish(engine, day, int(shadow["customers"]), shadow["model_name"],
                                shadow["champion_version"], shadow["challenger_version"],
                                run_id)
    finally:
        engine.dispose()
    report = {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in row.items()}
    summary = swap_set_summary(report)
    log.info("swap set of %s: %s", day, summary)
    artifact = (f"swap_set/{report['score_date']}_champion_v{report['champion_version']}"
                ".json")
    try:
        attach_to_version(tracking_uri, shadow["model_name"], shadow["challenger_version"],
                          artifact_file=artifact, payload=report,
                          tags={SUMMARY_TAG: summary, ARTIFACT_TAG: artifact},
                          section=(SWAP_SECTION, f"{report['score_date']} against champion "
                                   f"v{report['champion_version']}: {summary}"))
        attached = True
    except Exception as exc:  # the table holds the report; MLflow gets it on a re-run
        log.warning("swap-set report of %s not attached to %s v%s in MLflow: %s", day,
                    shadow["model_name"], shadow["challenger_version"], _line(exc))
        attached = False
    return {"report": report, "summary": summary, "attached": attached,
            "artifact": artifact}


def swap_set_summary(report: dict[str, Any]) -> str:
    """One paragraph for the version's page: agreement, the moves, the PD difference."""
    n = int(report["n"])
    if not n:
        return (f"{report['score_date']} vs champion v{report['champion_version']}: "
                "no customer in common")
    moves: dict[tuple[str, str], int] = {}
    for cell in report["transitions"]:
        if cell["from_decision"] != cell["to_decision"]:
            key = (cell["from_decision"], cell["to_decision"])
            moves[key] = moves.get(key, 0) + int(cell["n"])
    listing = ", ".join(f"{a}→{b} {k}" for (a, b), k in sorted(moves.items(),
                                                                key=lambda kv: -kv[1]))
    text = (f"{report['score_date']} vs champion v{report['champion_version']}: "
            f"{n} customers, agreement {report['agreement_rate']:.1%}, "
            f"{report['n_changed']} change decision ({listing or 'none'})")
    if report["n_pd"]:
        text += (f"; PD diff (challenger − champion) mean {report['pd_diff_mean']:+.4f}, "
                 f"median {report['pd_diff_p50']:+.4f}, 5–95% "
                 f"[{report['pd_diff_p05']:+.4f}, {report['pd_diff_p95']:+.4f}]")
    return text


def shadow_score_date(plan: dict[str, Any], *, database_url: str, tracking_uri: str | None,
                      run_id: str) -> dict[str, Any]:
    """plan_shadow → every chunk → publish_shadow in one process (the CLI), after the
    champion's publish; returns the shadow plan, with the publish result when planned."""
    shadow = plan_shadow(plan, database_url=database_url, tracking_uri=tracking_uri,
                         run_id=run_id)
    if shadow["status"] != PLANNED:
        return shadow
    for chunk in range(shadow["chunks"]):
        score_shadow_chunk(shadow, chunk, database_url=database_url,
                           tracking_uri=tracking_uri, run_id=run_id)
    return {**shadow, **publish_shadow(shadow, database_url=database_url,
                                       tracking_uri=tracking_uri, run_id=run_id)}
