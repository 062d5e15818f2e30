"""Score checkout requests with the loaded model, the shared policy and the feature store.

The PD → decision path is :func:`creditrisk.scoring.decide.decide`, the function batch
scoring uses, so for the same customer, date and model version the API answers exactly
what ``risk_scores`` holds; the checkout's basket rules live there too (policy ``basket``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from creditrisk.catalogue import FEATURE_NAMES
from creditrisk.features.population import SCORED, segment
from creditrisk.scoring.decide import decide, population_answer, thin_file_answer
from serving.features import FeatureStore
from serving.model import LoadedModel
from serving.schemas import PredictRequest

log = logging.getLogger("serving.predictor")
_RECENCY = "purchase_recency_days"  # what segment() reads


#: ``Outcome.lookup`` of an item whose features were not looked up (inline features)
NOT_LOOKED_UP: Any = object()


@dataclass
class Outcome:
    """One item's answer (a dict shaped like PredictResponse, without request fields).

    ``lookup``: what the feature store answered for a ``customer_id`` item (features and
    as-of date, or None for an unknown customer), so that the shadow sample scores the
    challenger on exactly the features the answer used.
    """

    body: dict[str, Any] | None
    error: str | None = None
    lookup: Any = NOT_LOOKED_UP


class _Columns(Mapping[str, np.ndarray]):
    """The feature columns of a row matrix by name, each made only when read (the
    policy reads a handful of the 37: a dict of every column cost more than them)."""

    def __init__(self, X: np.ndarray) -> None:
        self._X = X

    def __getitem__(self, name: str) -> np.ndarray:
        return self._X[:, _INDEX[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(FEATURE_NAMES)

    def __len__(self) -> int:
        return len(FEATURE_NAMES)


_INDEX = {name: j for j, name in enumerate(FEATURE_NAMES)}


def _thin_file(item: PredictRequest, model: LoadedModel, policy: dict[str, Any]) -> dict:
    return {"customer_id": item.customer_id, **thin_file_answer(policy),
            "model_name": model.ref.name, "model_version": model.ref.version,
            "features_as_of": None, "thin_file": True}


def _gather(
    items: list[PredictRequest], store: FeatureStore | None, resolved: Sequence[Any] | None,
    model: LoadedModel, policy: dict[str, Any], out: list[Outcome],
) -> tuple[list[np.ndarray], list[int], list[str | None], dict[int, Any]]:
    """Each item's feature row (inline, given in ``resolved``, or looked up): the rows, the
    items they belong to, their as-of dates and the lookups; ``out`` gets the items
    answered without a model (thin file, errors)."""
    rows: list[np.ndarray] = []
    where: list[int] = []
    as_of: list[str | None] = []
    looked: dict[int, Any] = {}
    for i, item in enumerate(items):
        if item.features is not None:
            rows.append(np.array(item.features.row(), dtype=float))
            where.append(i)
            as_of.append(None)
            continue
        if item.customer_id is None:  # the request schema requires one of the two
            out[i] = Outcome(None, "neither customer_id nor features given")
            continue
        if resolved is not None and resolved[i] is not NOT_LOOKED_UP:
            found = resolved[i]
        elif store is None:
            out[i] = Outcome(None, "the feature store is not configured")
            continue
        else:
            try:
                found = store.lookup(item.customer_id)
            except Exception as exc:  # warehouse down: a 503 for this item, not a 500
                log.warning("feature lookup failed", extra={"error": type(exc).__name__})
                out[i] = Outcome(None, "feature store unavailable")
                continue
        if found is None:
            out[i] = Outcome(_thin_file(item, model, policy), lookup=None)
            continue
        looked[i] = found
        rows.append(found[0])
        where.append(i)
        as_of.append(found[1].isoformat())
    return rows, where, as_of, looked


def score_items(
    items: list[PredictRequest], model: LoadedModel, store: FeatureStore | None,
    policy: dict[str, Any], resolved: Sequence[Any] | None = None,
) -> list[Outcome]:
    """Answer every item; one model object for all of them (no version mixing).

    ``resolved``: per item, an earlier ``Outcome.lookup`` to use instead of asking the
    store again (the shadow sample's features are the answered call's own).
    """
    out: list[Outcome] = [Outcome(None) for _ in items]
    rows, where, as_of, looked = _gather(items, store, resolved, model, policy, out)
    if not rows:
        return out
    X = np.vstack(rows)
    seg = segment({_RECENCY: X[:, FEATURE_NAMES.index(_RECENCY)]},
                  float(policy["population"]["lookback_days"]))
    for k in np.flatnonzero(seg != SCORED):
        i = where[k]
        out[i] = Outcome({"customer_id": items[i].customer_id,
                          **population_answer(str(seg[k]), policy),
                          "model_name": model.ref.name, "model_version": model.ref.version,
                          "features_as_of": as_of[k], "thin_file": False},
                         lookup=looked.get(i, NOT_LOOKED_UP))
    keep = np.flatnonzero(seg == SCORED)
    if not len(keep):
        return out
    Xs = X[keep]
    pd_, contrib = model.predict(Xs)
    chosen = [items[where[k]] for k in keep]
    d = decide(pd_, _Columns(Xs), contrib, policy,
               names=FEATURE_NAMES, baseline=model.baseline,
               basket_amounts=[it.amount for it in chosen],
               basket_categories=[it.product_category for it in chosen])
    res = d.policy
    for j, k in enumerate(keep):
        i = where[k]
        out[i] = Outcome({
            "customer_id": items[i].customer_id,
            "probability_of_default": round(float(d.probability_of_default[j]), 8),
            "credit_score": int(res.credit_score[j]), "risk_band": str(res.risk_band[j]),
            "decision": str(d.decision[j]), "recommended_limit": float(res.recommended_limit[j]),
            "recommended_term_days": int(res.recommended_term_days[j]),
            "reason_codes": d.reason_codes[j], "model_name": model.ref.name,
            "model_version": model.ref.version, "features_as_of": as_of[k],
            "thin_file": False,
        }, lookup=looked.get(i, NOT_LOOKED_UP))
    return out
