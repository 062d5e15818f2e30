"""Lending policy: PD → credit score, band, decision, limit, term and reason codes.

Every number lives in ``conf/policy.yaml``. The functions are vectorised (numpy) for
batch scoring of a million customers; :func:`decide` answers the API's few rows one by
one in plain floats instead (:func:`_decide_rows`: the same operations in the same order,
so the same bits, at a fraction of numpy's per-call cost on one-element arrays).

How the policy answers the original challenge's "optimal amount and duration": the
limit is the largest line whose expected loss stays within a per-customer budget,
``PD × LGD × limit ≤ budget``, capped by the customer's own spending capacity (their
last 30 days of purchases, or their average month over their tenure, whichever is
larger) and by a product maximum; the term shortens as the band worsens, so riskier
customers carry exposure for less time. A REVIEW customer is offered a reduced line
pending a person's review; a DECLINE gets no line.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from creditrisk.catalogue import BY_NAME
from creditrisk.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

APPROVE, REVIEW, DECLINE = "APPROVE", "REVIEW", "DECLINE"
THIN_FILE = "THIN_FILE"
DORMANT = "DORMANT"


def load_policy(path: str | Path | None = None) -> dict[str, Any]:
    """The policy config: ``path``, ``CREDITRISK_POLICY_CONFIG``, or the packaged one."""
    import yaml

    source = path or os.environ.get("CREDITRISK_POLICY_CONFIG")
    try:
        text = (Path(source).read_text() if source else
                resources.files("creditrisk").joinpath("conf/policy.yaml").read_text())
    except OSError as exc:
        raise InputError(f"cannot read the policy config {source}: {exc}") from None
    cfg: dict[str, Any] = yaml.safe_load(text)
    horizon = int(cfg["pd_horizon_days"])
    longer = {b: t for b, t in cfg["term_days"].items() if int(t) > horizon}
    if longer:
        raise InputError(f"policy terms {longer} are longer than pd_horizon_days={horizon}: "
                         "the PD does not speak for that long")
    return cfg


def _clip(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``np.clip(a, lo, hi)`` for ``lo <= hi``, NaN kept: the same values, a fraction of
    its per-call cost (the API calls these on one row)."""
    import numpy as np

    return np.minimum(np.maximum(a, lo), hi)


def credit_score(pd_: np.ndarray, cfg: dict[str, Any]) -> np.ndarray:
    """Points-to-double-odds score of PDs, clipped to [min, max] and rounded."""
    import numpy as np

    s = cfg["score"]
    p = _clip(np.asarray(pd_, dtype=float), 1e-9, 1 - 1e-9)
    factor = s["pdo"] / np.log(2.0)
    offset = s["base_points"] - factor * np.log(s["base_odds"])
    score = offset + factor * np.log((1 - p) / p)
    return _clip(np.round(score), s["min"], s["max"]).astype(int)


def risk_band(pd_: np.ndarray, cfg: dict[str, Any]) -> np.ndarray:
    """Band letter of each PD (the first band whose max_pd exceeds it)."""
    import numpy as np

    bounds = np.array([b["max_pd"] for b in cfg["bands"]])
    names = np.array([b["band"] for b in cfg["bands"]], dtype=object)
    idx = np.searchsorted(bounds, np.asarray(pd_, dtype=float), side="right")
    return names[np.minimum(idx, len(names) - 1)]


def decision(pd_: np.ndarray, cfg: dict[str, Any]) -> np.ndarray:
    """APPROVE / REVIEW / DECLINE by the PD cut-offs."""
    import numpy as np

    d = cfg["decision"]
    p = np.asarray(pd_, dtype=float)
    return np.where(p < d["approve_below"], APPROVE,
                    np.where(p < d["review_below"], REVIEW, DECLINE)).astype(object)


#: The feature columns :func:`spending_capacity` reads (batch scoring reads them besides
#: the model's own).
CAPACITY_COLUMNS = ("spend_last_30d", "tenure_days", "monetary_total")


def spending_capacity(features: Mapping[str, Any], cfg: dict[str, Any]) -> np.ndarray:
    """Monthly spending capacity (UGX) from the features, floored at min_spend_basis.

    ``features`` is a DataFrame or any mapping of feature name to a column of values.
    """
    import numpy as np

    recent = np.asarray(features["spend_last_30d"], dtype=float)
    tenure_months = np.maximum(np.asarray(features["tenure_days"], dtype=float) / 30.0, 1.0)
    average = np.asarray(features["monetary_total"], dtype=float) / tenure_months
    return np.maximum(np.maximum(recent, average), cfg["limit"]["min_spend_basis"])


def recommended_limit(pd_: np.ndarray, capacity: np.ndarray, decisions: np.ndarray,
                      cfg: dict[str, Any]) -> np.ndarray:
    """Expected-loss budgeted limit, capped by capacity and product maximum (UGX)."""
    import numpy as np

    lim = cfg["limit"]
    p = _clip(np.asarray(pd_, dtype=float), 1e-6, 1.0)
    by_loss = lim["expected_loss_budget"] / (p * lim["lgd"])
    raw = np.minimum(np.minimum(by_loss, capacity * lim["spend_multiple"]), lim["max_limit"])
    raw = np.where(decisions == REVIEW, raw * lim["review_factor"], raw)
    raw = np.where(decisions == DECLINE, 0.0, raw)
    return np.floor(raw / lim["round_to"]) * lim["round_to"]


def recommended_term(bands: np.ndarray, decisions: np.ndarray, cfg: dict[str, Any]) -> (
    np.ndarray
):
    """Repayment term in days by band; 0 for a decline."""
    import numpy as np

    terms = np.array([cfg["term_days"][b] for b in bands], dtype=int)
    return np.where(decisions == DECLINE, 0, terms)


@dataclass(frozen=True)
class _ReasonLayout:
    """What :func:`reason_codes` derives from the column names alone (cached per names)."""

    groups: list[str]
    #: each group's columns, in column order (the order their contributions are summed)
    cols: list[list[int]]
    #: groups × widest group: each group's columns in order, padded with ``len(names)``
    #: (a column of -inf appended to the contributions, for the argmax)
    padded: np.ndarray
    texts: list[tuple[str, str]]
    codes: list[str]


@functools.lru_cache(maxsize=64)
def _reason_layout(names: tuple[str, ...]) -> _ReasonLayout:
    import numpy as np

    groups = sorted({BY_NAME[n].group for n in names})
    cols = [[j for j, n in enumerate(names) if BY_NAME[n].group == g] for g in groups]
    width = max(len(c) for c in cols)
    padded = np.array([c + [len(names)] * (width - len(c)) for c in cols], dtype=int)
    return _ReasonLayout(groups, cols, padded,
                         [(BY_NAME[n].low, BY_NAME[n].high) for n in names],
                         [n.upper() for n in names])


#: rows per chunk of :func:`_by_group` (rows × groups × widest group floats at a time)
_CHUNK = 16_384


def _by_group(c: np.ndarray, layout: _ReasonLayout) -> tuple[np.ndarray, np.ndarray]:
    """(rows × groups sums of contributions, rows × groups column of each group's largest).

    A group's sum adds its columns one at a time in column order, row by row: a row's sums
    never depend on which other rows are scored with it (a matrix product picks its
    summation order by shape), and :func:`_decide_rows` repeats the same additions in
    plain floats, so the API's single answer, its micro-batches and batch scoring agree
    exactly. The largest is the first maximum in column order, as
    ``cols[np.argmax(c[:, cols])]`` per group.
    """
    import numpy as np

    n, groups = c.shape[0], layout.padded.shape[0]
    sums, strongest = np.empty((n, groups)), np.empty((n, groups), dtype=int)
    rows_of_groups = np.arange(groups)[None, :]
    for start in range(0, n, _CHUNK):
        part = c[start:start + _CHUNK]
        for gi, cols in enumerate(layout.cols):
            acc = part[:, cols[0]]
            for j in cols[1:]:
                acc = acc + part[:, j]
            sums[start:start + _CHUNK, gi] = acc
        ext = np.concatenate([part, np.full((part.shape[0], 1), -np.inf)], axis=1)
        pos = ext[:, layout.padded].argmax(axis=2)
        strongest[start:start + _CHUNK] = layout.padded[rows_of_groups, pos]
    return sums, strongest


@dataclass(frozen=True)
class RankedReasons:
    """Per row, the top feature groups raising the risk (arrays rows × top_k)."""

    names: list[str]
    groups: list[str]
    top: np.ndarray  # the group's summed contribution, rounded to 4 decimals
    feature: np.ndarray  # index into names of the group's strongest feature
    above: np.ndarray  # the customer's value of that feature is above the baseline
    order: np.ndarray  # index into groups
    texts: list[tuple[str, str]]  # per name: (low, high) reason text
    codes: list[str]  # per name: its reason code


def rank_reasons(
    contrib: pd.DataFrame | np.ndarray, values: Mapping[str, Any], baseline: Mapping[str, float],
    cfg: dict[str, Any], names: Sequence[str] | None = None,
) -> RankedReasons:
    """The ranking behind :func:`reason_codes` (see there), vectorised over the rows and
    row-independent (:func:`_by_group`): one row scores the same alone or in a batch."""
    import numpy as np

    k = int(cfg["reasons"]["top_k"])
    c = np.asarray(contrib, dtype=float)
    names = tuple(names) if names is not None else tuple(contrib.columns)  # type: ignore[union-attr]
    layout = _reason_layout(names)
    group_sum, strongest = _by_group(c, layout)  # rows × groups each
    order = np.argsort(-group_sum, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(group_sum, order, axis=1)
    feature = np.take_along_axis(strongest, order, axis=1)
    # only the feature columns some reason names are read (a request: up to top_k of 31)
    picked = np.empty(feature.shape)
    for j in np.unique(feature).tolist():
        rows, pos = np.nonzero(feature == j)
        picked[rows, pos] = np.asarray(values[names[j]], dtype=float)[rows]
    base = np.array([baseline.get(n, -np.inf) for n in names])
    above = picked > base[feature]
    return RankedReasons(list(names), layout.groups, np.round(top, 4), feature, above, order,
                         layout.texts, layout.codes)


def reason_codes(
    contrib: pd.DataFrame | np.ndarray, values: Mapping[str, Any], baseline: Mapping[str, float],
    cfg: dict[str, Any], names: Sequence[str] | None = None,
) -> list[list[dict[str, Any]]]:
    """Per row, up to ``reasons.top_k`` reasons: the feature groups raising the risk most.

    Contributions of the features of one catalogue group (say, the recent-activity
    counts) are summed into one reason, shown with the text of the group's strongest
    feature in the direction the customer differs from the training baseline: a heavy
    buyer whose activity still raises the PD reads "Many purchases this month", never
    "Few purchases".

    Args:
        contrib: rows × features log-odds contributions (a DataFrame, or an array with
            ``names`` giving its columns).
        values: The customers' feature values, by feature name.
        baseline: The training median of each feature the model reads.
        cfg: The policy config.
        names: Column names of an array ``contrib``.
    """
    r = rank_reasons(contrib, values, baseline, cfg, names)
    texts, codes = r.texts, r.codes
    out = []
    for row_top, row_feature, row_above, row_order in zip(
            r.top.tolist(), r.feature.tolist(), r.above.tolist(), r.order.tolist(),
            strict=True):
        reasons = []
        for value, j, up, gi in zip(row_top, row_feature, row_above, row_order, strict=True):
            if value <= 0:
                break
            reasons.append({"code": codes[j], "feature": r.names[j], "group": r.groups[gi],
                            "text": texts[j][up], "contribution": value})
        out.append(reasons)
    return out


def reason_codes_json(
    contrib: pd.DataFrame | np.ndarray, values: Mapping[str, Any], baseline: Mapping[str, float],
    cfg: dict[str, Any], names: Sequence[str] | None = None,
) -> pa.StringArray:
    """:func:`reason_codes` as JSON text per row, equal to ``json.dumps`` of each row's
    list, built by Arrow's string kernels column by column (batch scoring: no dict per
    reason, no encoder call per row)."""
    import json

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    r = rank_reasons(contrib, values, baseline, cfg, names)
    # each (feature, direction) reason up to its value: '{"code": ..., "contribution": ',
    # after the first one of a row with the list's ", " in front
    heads = [json.dumps({"code": n.upper(), "feature": n, "group": BY_NAME[n].group,
                         "text": text, "contribution": 0})[:-2]
             for n in r.names for text in (BY_NAME[n].low, BY_NAME[n].high)]
    closing = pa.array(["}", ".0}"])  # Arrow writes 2.0 as "2", json.dumps as "2.0"
    parts: list[Any] = ["["]
    for s in range(r.top.shape[1]):
        top = r.top[:, s]
        # sorted values: the reasons kept are a prefix of a row; the others are nulls,
        # joined as nothing (values >= 1e-4: no exponents)
        drop = ~(top > 0)
        head = pa.array(heads if s == 0 else [", " + h for h in heads]).take(
            pa.array(r.feature[:, s] * 2 + r.above[:, s], mask=drop))
        value = pc.binary_join_element_wise(
            pc.cast(pa.array(top, mask=drop), pa.string()),
            closing.take(pa.array((top == np.floor(top)).astype(np.int8))), "")
        parts += [head, value]
    parts.append("]")
    if len(parts) == 2:  # no reason asked for (top_k 0)
        return pa.array(["[]"] * len(r.top), pa.string())
    # one pass writes every row's text
    return pc.binary_join_element_wise(*parts, "", null_handling="replace",
                                       null_replacement="")


@dataclass(frozen=True)
class PolicyResult:
    """Everything the policy decides for a set of customers (arrays in input order)."""

    credit_score: np.ndarray
    risk_band: np.ndarray
    decision: np.ndarray
    recommended_limit: np.ndarray
    recommended_term_days: np.ndarray


def apply_policy(pd_: np.ndarray, features: Mapping[str, Any], cfg: dict[str, Any]) -> (
    PolicyResult
):
    """Score, band, decide, size and term every customer."""
    bands = risk_band(pd_, cfg)
    decisions = decision(pd_, cfg)
    return PolicyResult(
        credit_score=credit_score(pd_, cfg),
        risk_band=bands,
        decision=decisions,
        recommended_limit=recommended_limit(pd_, spending_capacity(features, cfg), decisions,
                                            cfg),
        recommended_term_days=recommended_term(bands, decisions, cfg),
    )


@dataclass(frozen=True)
class Decision:
    """The whole answer for a set of customers: the policy's arrays plus reasons and PD."""

    probability_of_default: np.ndarray
    policy: PolicyResult
    decision: np.ndarray
    reason_codes: Any  # list[list[dict]], or JSON texts (pa.StringArray) for batch scoring


def _basket_rules(
    decisions: np.ndarray, limits: np.ndarray, reasons: list[list[dict[str, Any]]],
    amounts: Sequence[float | None] | None, categories: Sequence[str | None] | None,
    cfg: dict[str, Any],
) -> np.ndarray:
    """Checkout rules (policy ``basket``): a basket over the limit, a reviewed category."""
    out = decisions.copy()
    review_categories = set(cfg.get("basket", {}).get("review_categories", []))
    for k in range(len(out)):
        if out[k] == DECLINE:
            continue
        amount = amounts[k] if amounts is not None else None
        category = categories[k] if categories is not None else None
        if amount is not None and amount > limits[k]:
            out[k] = REVIEW
            reasons[k].insert(0, {"code": "BASKET_OVER_LIMIT",
                                  "text": "Basket amount is above the recommended limit"})
        if category is not None and category in review_categories:
            out[k] = REVIEW
            reasons[k].insert(0, {"code": "CATEGORY_REVIEW",
                                  "text": f"Purchases of {category} are reviewed"})
    return out


#: :func:`decide` answers up to this many rows (reasons as dicts) one at a time in plain
#: floats (:func:`_decide_rows`): the API's calls and its micro-batches
ROW_PATH_MAX = 32


def _rint4(x: float) -> float:
    """``np.round(x, 4)`` of one float: numpy multiplies by 10**4, rounds half to even
    (as Python's ``round`` does to an int, exactly) and divides by 10**4."""
    return round(x * 10_000.0) / 10_000.0


def _decide_rows(
    pd_: np.ndarray, features: Mapping[str, Any], contrib: pd.DataFrame | np.ndarray | None,
    cfg: dict[str, Any], names: Sequence[str] | None, baseline: Mapping[str, float],
) -> tuple[np.ndarray, PolicyResult, list[list[dict[str, Any]]]] | None:
    """:func:`decide`'s clipped PDs, policy and reasons, row by row in plain floats.

    The same operations as :func:`apply_policy` and :func:`reason_codes`, in the same
    order, so the same bits: IEEE arithmetic is exactly rounded in both, comparisons
    and ``min``/``max`` pick the same operand on ties, and the one transcendental call
    is ``np.log`` itself (libm's ``math.log`` differs from numpy's in the last bit).
    A test holds both paths equal on random rows and on every boundary of the policy.

    None when a value is not finite or the bands are not in order: the array path
    decides those (NaN has no single answer to a sort or a comparison across both).
    """
    import math

    import numpy as np

    bounds = [float(b["max_pd"]) for b in cfg["bands"]]
    pds = np.asarray(pd_, dtype=float).tolist()
    capacity_in = [np.asarray(features[c], dtype=float).tolist() for c in CAPACITY_COLUMNS]
    c_rows: list[list[float]] | None = None
    if contrib is not None:
        names = tuple(names) if names is not None else tuple(contrib.columns)  # type: ignore[union-attr]
        c_rows = np.asarray(contrib, dtype=float).tolist()
    finite = (all(map(math.isfinite, pds))
              and all(math.isfinite(v) for col in capacity_in for v in col)
              # a NaN or an infinity makes its row's sum non-finite (so may a huge
              # finite row: it is only sent to the array path, which is never wrong)
              and (c_rows is None or all(math.isfinite(sum(row)) for row in c_rows)))
    if bounds != sorted(bounds) or not finite:
        return None
    clipped, res = _policy_rows(pds, capacity_in, cfg)
    reasons = ([[] for _ in pds] if c_rows is None or names is None
               else _reason_rows(c_rows, features, cfg, names, baseline))
    return np.array(clipped, dtype=float), res, reasons


def _policy_rows(pds: list[float], capacity_in: list[list[float]], cfg: dict[str, Any]) -> (
    tuple[list[float], PolicyResult]
):
    """:func:`_decide_rows`'s clipped PDs and policy (:func:`apply_policy`, one row at a
    time; ``capacity_in``: the :data:`CAPACITY_COLUMNS` as lists)."""
    import math
    from bisect import bisect_right

    import numpy as np

    s, lim, d = cfg["score"], cfg["limit"], cfg["decision"]
    bounds = [float(b["max_pd"]) for b in cfg["bands"]]
    band_names = [b["band"] for b in cfg["bands"]]
    floor = float(s["pd_floor"])
    factor = s["pdo"] / np.log(2.0)
    offset = s["base_points"] - factor * np.log(s["base_odds"])
    smin, smax = float(s["min"]), float(s["max"])
    approve, review = float(d["approve_below"]), float(d["review_below"])
    budget, lgd = float(lim["expected_loss_budget"]), float(lim["lgd"])
    multiple, max_limit = float(lim["spend_multiple"]), float(lim["max_limit"])
    basis, round_to = float(lim["min_spend_basis"]), float(lim["round_to"])
    review_factor = float(lim["review_factor"])
    clipped, scores, bands, decisions, limits, terms = [], [], [], [], [], []
    for i, raw_pd in enumerate(pds):
        p = min(max(raw_pd, floor), 1.0 - floor)
        q = min(max(p, 1e-9), 1 - 1e-9)
        score = float(offset + factor * np.log((1 - q) / q))
        scores.append(int(min(max(float(round(score)), smin), smax)))
        band = band_names[min(bisect_right(bounds, p), len(band_names) - 1)]
        verdict = APPROVE if p < approve else REVIEW if p < review else DECLINE
        recent, tenure, monetary = (col[i] for col in capacity_in)
        average = monetary / max(tenure / 30.0, 1.0)
        capacity = max(max(recent, average), basis)
        line = min(min(budget / (min(max(p, 1e-6), 1.0) * lgd), capacity * multiple),
                   max_limit)
        if verdict == REVIEW:
            line = line * review_factor
        if verdict == DECLINE:
            line = 0.0
        clipped.append(p)
        bands.append(band)
        decisions.append(verdict)
        limits.append(float(math.floor(line / round_to)) * round_to)
        terms.append(0 if verdict == DECLINE else int(cfg["term_days"][band]))
    return clipped, PolicyResult(
        np.array(scores, dtype=int), np.array(bands, dtype=object),
        np.array(decisions, dtype=object), np.array(limits, dtype=float),
        np.array(terms, dtype=int))


def _reason_rows(c_rows: list[list[float]], features: Mapping[str, Any], cfg: dict[str, Any],
                 names: Sequence[str], baseline: Mapping[str, float]) -> (
    list[list[dict[str, Any]]]
):
    """:func:`_decide_rows`'s reasons (:func:`reason_codes`, one row at a time)."""
    import math

    import numpy as np

    layout = _reason_layout(tuple(names))
    k = int(cfg["reasons"]["top_k"])
    reasons: list[list[dict[str, Any]]] = [[] for _ in c_rows]
    for i, row in enumerate(c_rows):
        sums, strongest = [], []
        for cols in layout.cols:
            acc, best = row[cols[0]], cols[0]
            for j in cols[1:]:
                acc = acc + row[j]
                if row[j] > row[best]:  # the first maximum, as np.argmax
                    best = j
            sums.append(acc)
            strongest.append(best)
        for gi in sorted(range(len(sums)), key=lambda g: -sums[g])[:k]:
            value = _rint4(sums[gi])
            if value <= 0:
                break
            j = strongest[gi]
            up = (float(np.asarray(features[names[j]], dtype=float)[i])
                  > float(baseline.get(names[j], -math.inf)))
            reasons[i].append({"code": layout.codes[j], "feature": names[j],
                               "group": layout.groups[gi], "text": layout.texts[j][up],
                               "contribution": value})
    return reasons


def decide(
    pd_: np.ndarray, features: Mapping[str, Any], contrib: pd.DataFrame | np.ndarray | None,
    cfg: dict[str, Any], *, names: Sequence[str] | None = None,
    baseline: Mapping[str, float] | None = None,
    basket_amounts: Sequence[float | None] | None = None,
    basket_categories: Sequence[str | None] | None = None, reasons_as_json: bool = False,
) -> Decision:
    """PD → score, band, decision, limit, term and reasons: the one path of batch and API.

    The PD is first held within ``[pd_floor, 1 - pd_floor]`` (policy ``score``): an
    isotonic calibrator may map its lowest bin to exactly 0, which only means no bad was
    seen there, and no customer is without risk.

    For customers in the scoring population (see :func:`population_answer` for the
    others). Batch scoring calls it without a basket; the API passes each checkout's
    amount and product category, which may turn an APPROVE into a REVIEW (never the
    reverse), with the rule's reason first. ``reasons_as_json`` gives the reasons as an
    Arrow array of JSON texts (:func:`reason_codes_json`), for batch scoring.
    """
    import numpy as np

    pd_ = np.asarray(pd_, dtype=float)
    rows = (_decide_rows(pd_, features, contrib, cfg, names, baseline or {})
            if not reasons_as_json and pd_.ndim == 1 and len(pd_) <= ROW_PATH_MAX else None)
    reasons: Any
    if rows is not None:
        pd_, res, reasons = rows
    else:
        floor = float(cfg["score"]["pd_floor"])
        pd_ = _clip(pd_, floor, 1.0 - floor)
        res = apply_policy(pd_, features, cfg)
        if reasons_as_json:  # batch scoring: JSON text per row, as risk_scores stores it
            reasons = reason_codes_json(contrib, features, baseline or {}, cfg, names)
        else:
            reasons = (reason_codes(contrib, features, baseline or {}, cfg, names)
                       if contrib is not None else [[] for _ in range(len(pd_))])
    decisions = np.asarray(res.decision, dtype=object)
    if basket_amounts is not None or basket_categories is not None:
        decisions = _basket_rules(decisions, res.recommended_limit, reasons,
                                  basket_amounts, basket_categories, cfg)
    return Decision(np.asarray(pd_, dtype=float), res, decisions, reasons)


def population_answer(segment: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """The policy's defined answer for a customer outside the scoring population: no PD.

    ``thin_file``: no history on the platform; ``dormant``: known, but no purchase in the
    scoring lookback (policy ``population.lookback_days``), so the model, trained on
    customers who buy, has nothing credible to say.
    """
    answer = cfg[segment]
    band = THIN_FILE if segment == "thin_file" else DORMANT
    return {"probability_of_default": None, "credit_score": None, "risk_band": band,
            "decision": answer["decision"], "recommended_limit": float(answer["limit"]),
            "recommended_term_days": int(answer["term_days"]),
            "reason_codes": [{"code": band, "text": answer["reason"]}]}


def thin_file_answer(cfg: dict[str, Any]) -> dict[str, Any]:
    """The policy's defined answer for a customer with no history: no PD, never an error."""
    return population_answer("thin_file", cfg)
