"""The model card: a markdown summary of one candidate run, rendered from its logged facts."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from creditrisk.evaluation.slices import MIN_FAIRNESS_SEGMENT

if TYPE_CHECKING:
    pass

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int_]

#: probabilities are clipped to [EPS_LOG_LOSS, 1 - EPS_LOG_LOSS] for the log loss


DEFAULT_PURPOSE = (
    "Scores Buy-Now-Pay-Later applicants at checkout on the Xente eCommerce platform: a "
    "probability of default (PD) per customer from their transaction history, turned by "
    "the credit policy into a credit score, a risk band, a decision and a recommended "
    "limit and term. The same model scores every customer nightly."
)


DEFAULT_INTENDED_USE = (
    "Decision support for a BNPL lender: clear APPROVE and DECLINE cases may be decided "
    "automatically within the limits set by the credit policy; every application in the "
    "REVIEW band goes to a credit analyst, who sees the PD and the reason codes. Limits "
    "and terms are recommendations, capped by policy. Declined customers can ask for a "
    "human review."
)


DEFAULT_NOT_INTENDED_FOR = (
    "Pricing (interest rates or fees), collections or legal action against a customer; "
    "lending products other than short-term BNPL at checkout; populations outside the "
    "platform's customers (other countries, merchants or currencies than the training "
    "data); fully automated adverse decisions without an appeal route; any non-credit "
    "use such as employment, insurance or marketing eligibility; inferring personal or "
    "protected characteristics."
)


DEFAULT_LABEL_LIMITS = (
    "The label is a behavioural proxy, not a repayment outcome: no customer in the data "
    "has borrowed or repaid. A 'bad' customer is one who goes silent, commits fraud or is "
    "among the least engaged in the outcome window. Disengagement is not default, so the "
    "PD is a probability of the proxy event and its level is not a loss rate; calibrate "
    "against real repayments, and replace the label with a repayment-outcome strategy, as "
    "soon as the first loans mature."
)

REPAYMENT_LABEL_LIMITS = (
    "The label is the repayment outcome of the customers who borrowed: bad = 30 or more "
    "days past due within the loan's term plus grace. It exists only for customers the "
    "platform lent to (approved, or given a small exploration limit): outcomes of the "
    "customers it rejected are unknown (reject inference, docs/model.md), so the PD is "
    "best where the lending was, and only matured loans count, so the newest months are "
    "not yet in it."
)


def _fmt(value: Any) -> str:
    """A cell: floats rounded to 4 places, NaN/None as "n/a", pipes escaped."""
    if value is None:
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return str(round(v, 4))
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _records(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, pd.DataFrame):
        return [{str(k): v for k, v in r.items()} for r in value.to_dict(orient="records")]
    return [dict(r) for r in value]


def _feature_rows(features: Any) -> list[tuple[Any, Any, Any]]:
    rows: list[tuple[Any, Any, Any]] = []
    for f in features or ():
        if isinstance(f, Mapping):
            rows.append((f.get("name"), f.get("meaning", ""), f.get("unit", "")))
        elif hasattr(f, "name"):
            rows.append((f.name, getattr(f, "meaning", ""), getattr(f, "unit", "")))
        elif isinstance(f, str):
            rows.append((f, "", ""))
        else:
            t = tuple(f) + ("", "")
            rows.append((t[0], t[1], t[2]))
    return rows


def _floor_rows(floors: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[list[Any]]:
    """Promotion floors as rows: rule, required, observed (on ``metrics``), met."""
    rows: list[list[Any]] = []
    for key, floor in floors.items():
        metric, rule = key, "="
        if key.startswith("min_"):
            metric, rule = key[4:], ">="
        elif key.startswith("max_"):
            metric, rule = key[4:], "<="
        observed = metrics.get(metric)
        met: bool | None = None
        if isinstance(observed, int | float) and not math.isnan(float(observed)):
            obs = float(observed)
            if isinstance(floor, list | tuple) and len(floor) == 2:
                rule = "in"
                met = float(floor[0]) <= obs <= float(floor[1])
            elif isinstance(floor, int | float) and rule in (">=", "<="):
                met = obs >= float(floor) if rule == ">=" else obs <= float(floor)
        elif isinstance(floor, list | tuple) and len(floor) == 2:
            rule = "in"
        rows.append([metric if observed is not None else key, rule, floor, observed, met])
    return rows


def model_card(info: Mapping[str, Any]) -> str:
    """Render a markdown model card.

    Args:
        info: What to render; every key is optional:

            * ``model_name``: registered model name.
            * ``version``: registered version (None before registration).
            * ``candidate``: the estimator family, e.g. "logistic_regression".
            * ``run_id``, ``trained_at``, ``as_of``: the MLflow run, when it trained and
              the as-of date of the training data.
            * ``purpose``: text; defaults to :data:`DEFAULT_PURPOSE`.
            * ``intended_use``, ``not_intended_for``: texts; default to
              :data:`DEFAULT_INTENDED_USE` and :data:`DEFAULT_NOT_INTENDED_FOR`.
            * ``data``: the training-set fingerprint (rows, customers, snapshot dates,
              split ranges, label_strategy, horizon_days, bad_rate, hash, ...).
            * ``label_definition``: text; ``label_limits``: text, defaults to
              :data:`DEFAULT_LABEL_LIMITS`.
            * ``metrics``: split name → :func:`classification_metrics` dict.
            * ``promotion_floors``: e.g. ``{"min_roc_auc": 0.7, "max_ece": 0.1,
              "calibration_slope": [0.7, 1.3]}``, checked against the "test" metrics
              (else the last split given).
            * ``slices``: :func:`slice_metrics` frame, or a list of dicts.
            * ``fairness``: :func:`fairness_report` dict.
            * ``stability``: name → value, e.g. ``{"score_psi_train_vs_test": 0.03}``.
            * ``features``: the catalogue (objects with name/meaning/unit), dicts, or
              ``(name, meaning, unit)`` tuples.
            * ``caveats``: extra caveat lines (list of str).

    Returns:
        The card, markdown; numbers rounded to 4 places.
    """
    out: list[str] = []
    for section in (_card_header, _card_purpose, _card_data, _card_metrics, _card_slices,
                    _card_fairness, _card_stability, _card_features, _card_caveats):
        out += section(info)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)) + "\n"


def _card_header(info: Mapping[str, Any]) -> list[str]:
    name = info.get("model_name") or "credit-risk model"
    version = info.get("version")
    out = [f"# Model card: {name}" + (f" v{version}" if version is not None else "")]
    out.append("")
    out.append(_table(["item", "value"], [
        ["registered version", version if version is not None else "not registered yet"],
        ["candidate", info.get("candidate")],
        ["MLflow run", info.get("run_id")],
        ["trained at", info.get("trained_at")],
        ["data as of", info.get("as_of")],
    ]))
    return out


def _card_purpose(info: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    out += ["", "## Purpose", "", str(info.get("purpose") or DEFAULT_PURPOSE)]
    out += ["", "## Intended use", "", str(info.get("intended_use") or DEFAULT_INTENDED_USE),
            "", "**Not intended for:** " + str(info.get("not_intended_for")
                                               or DEFAULT_NOT_INTENDED_FOR)]
    return out


def _card_data(info: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    out += ["", "## Data", ""]
    data = info.get("data") or {}
    out.append(_table(["item", "value"], data.items()) if data else "_No fingerprint given._")

    out += ["", "## Label and its limits", ""]
    strategy = str(data.get("label_strategy", "unknown"))
    out += [f"**Label strategy used:** `{strategy}` ({data.get('matured_loans', 0)} matured "
            "loans before the training date; the repayment label takes over from the proxy "
            "once `dataset.repayment.min_matured_loans` have matured).", ""]
    if info.get("label_definition"):
        out += [str(info["label_definition"]), ""]
    limits = REPAYMENT_LABEL_LIMITS if strategy == "repayment" else DEFAULT_LABEL_LIMITS
    out.append("**Limits:** " + str(info.get("label_limits") or limits))
    return out


def _card_metrics(info: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    out += ["", "## Metrics", ""]
    metrics: Mapping[str, Mapping[str, Any]] = info.get("metrics") or {}
    if not metrics:
        out.append("_No metrics given._")
    for split, values in metrics.items():
        out += [f"### {split}", "", _table(["metric", "value"], values.items()), ""]
    floors = info.get("promotion_floors") or {}
    if floors:
        checked = "test" if "test" in metrics else (list(metrics)[-1] if metrics else None)
        observed = metrics.get(checked, {}) if checked else {}
        out += [f"### Promotion floors (checked on {checked or 'no split'})", "",
                _table(["metric", "rule", "required", "observed", "met"],
                       _floor_rows(floors, observed)), ""]
    return out


def _card_slices(info: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    out += ["", "## Slices", ""]
    slices = _records(info.get("slices"))
    if slices:
        headers = list(slices[0])
        out.append(_table(headers, ([r.get(h) for h in headers] for r in slices)))
    else:
        out.append("_No slice metrics given._")
    return out


def _card_fairness(info: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    out += ["", "## Fairness", ""]
    fairness = info.get("fairness") or {}
    if fairness:
        out.append(
            f"Approval = PD < {_fmt(fairness.get('approve_below'))}; overall approval rate "
            f"{_fmt(fairness.get('overall_approval_rate'))}. Four-fifths rule: the lowest "
            "segment approval rate must be at least 0.8 of the highest (segments under "
            f"{_fmt(fairness.get('min_segment_size', MIN_FAIRNESS_SEGMENT))} customers are "
            "shown but not compared). The data holds no protected attribute; these are "
            "proxies for unequal treatment by channel and provider. Overall: "
            f"**{'passes' if fairness.get('passes_four_fifths') else 'fails'}**."
        )
        for seg_name, entry in (fairness.get("segmentations") or {}).items():
            out += ["", f"### {seg_name}", ""]
            out.append(_table(["segment", "n", "approval rate", "in ratio"], (
                [s, v.get("n"), v.get("approval_rate"), v.get("included")]
                for s, v in (entry.get("segments") or {}).items())))
            verdict = ("passes" if entry.get("passes_four_fifths") else "fails") if entry.get(
                "assessed", True) else "not assessed (fewer than two comparable segments)"
            out += ["", f"Ratio {_fmt(entry.get('ratio'))}: {verdict}."]
    else:
        out.append("_No fairness report given._")
    return out


def _card_stability(info: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    out += ["", "## Stability", ""]
    stability = info.get("stability") or {}
    if stability:
        out.append(_table(["measure", "value", "reading"], (
            [k, v, _psi_reading(v) if "psi" in k.lower() else ""] for k, v in stability.items())))
    else:
        out.append("_No stability measures given._")
    return out


def _card_features(info: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    out += ["", "## Features", ""]
    feature_rows = _feature_rows(info.get("features"))
    out.append(_table(["feature", "meaning", "unit"], feature_rows) if feature_rows
               else "_No feature list given._")
    return out


def _card_caveats(info: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    out += ["", "## Caveats", ""]
    repayment = (info.get("data") or {}).get("label_strategy") == "repayment"
    caveats = [
        "The label is the repayment outcome of past loans (see above): rejected customers "
        "have none." if repayment else
        "The label is a proxy for default (see above); PD levels describe the proxy event.",
        "Trained on one platform's customers in one country and currency (UGX); "
        "performance elsewhere is unknown.",
        "Thin-file customers (few transactions) get less reliable scores; see Slices.",
        "Fairness is checked on channel and provider segments only: the data holds no "
        "protected attribute, so indirect discrimination cannot be ruled out.",
        "Metrics come from out-of-time snapshots; behaviour can drift. Monitor the score "
        "PSI and re-train when it exceeds 0.25.",
        *[str(c) for c in info.get("caveats") or ()],
    ]
    out += [f"- {c}" for c in caveats]
    return out


def _psi_reading(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    if math.isnan(v):
        return ""
    return "stable" if v < 0.1 else "moderate shift" if v <= 0.25 else "significant shift"
