"""The request path's shortcuts give exactly what the slow, general path gives.

- **PD.** For every rung the ladder can produce (:data:`RUNGS`) and both calibrations,
  the loaded model's ``predict`` equals ``pipeline.predict_proba`` within 1e-12 and its
  contributions equal :func:`creditrisk.model.explain.contributions`. The logistic rungs
  take the numpy fast path; the others must fall back to the pipeline. A fast path that
  disagrees with its pipeline is refused at load (the pipeline scores instead).
- **Reasons.** :func:`reason_codes` (layout cached per names, only the named features
  read, group sums column by column, argmaxes over padded group columns) equals the
  straightforward implementation it replaced, ties included, within one chunk and across
  chunks.
- **Population.** :func:`segment` of a column mapping equals it of the frame.

No warehouse, no registry: pipelines are fitted here on synthetic rows inside the
request schema's ranges.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest

from creditrisk.catalogue import BY_NAME, FEATURE_NAMES
from creditrisk.features.population import segment
from creditrisk.model.explain import contributions
from creditrisk.model.pipeline import (
    CALIBRATION_METHODS,
    RUNGS,
    LogisticFastPath,
    calibrate,
    make_pipeline,
)
from creditrisk.model.train import load_config
from creditrisk.registry import ModelRef
from creditrisk.scoring import decide as decide_mod
from creditrisk.scoring.decide import load_policy, reason_codes
from serving.model import LoadedModel
from serving.schemas import FEATURE_RANGES

FAST_RUNGS = {r for r, family in RUNGS.items() if family == "logistic"}


def synthetic_rows(n: int, seed: int) -> pd.DataFrame:
    """Rows inside each feature's schema range, heavy-tailed like amounts and counts."""
    rng = np.random.default_rng(seed)
    cols = {}
    for name in FEATURE_NAMES:
        lo, hi = FEATURE_RANGES[name]
        if hi <= 1.0:
            cols[name] = rng.uniform(max(lo, 0.0), hi, n)
        elif lo < 0:
            cols[name] = rng.normal(0.0, 2.0, n)
        else:
            cols[name] = np.round(rng.lognormal(2.0, 1.5, n), 2)
    return pd.DataFrame(cols)


def fitted(rung: str, method: str, seed: int = 0) -> Any:
    spec = load_config()["ladder"][rung]
    params = dict(spec.get("params", {}))
    if RUNGS[rung] == "xgboost":
        params.update(n_estimators=20, n_jobs=1)
    X = synthetic_rows(3000, seed)
    logit = (-0.05 * X["purchase_recency_days"] + 0.3 * np.log1p(X["purchases_30d"])
             - 0.5)
    y = (np.random.default_rng(seed + 1).uniform(size=len(X))
         < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    cols = list(spec["columns"])
    pipe = make_pipeline(rung, cols, params).fit(X.iloc[:2000], y[:2000])
    pipe = calibrate(pipe, X.iloc[2000:], y[2000:], method)
    pipe.feature_baseline_ = {c: float(X[c].median()) for c in cols}
    return pipe


def loaded(pipe: Any) -> LoadedModel:
    return LoadedModel(ref=ModelRef(name="m", version="1", run_id="r", alias="champion"),
                       pipeline=pipe, loaded_at="now")


@pytest.mark.parametrize("method", CALIBRATION_METHODS)
@pytest.mark.parametrize("rung", list(RUNGS))
def test_every_rung_scores_exactly_as_its_pipeline(rung: str, method: str) -> None:
    pipe = fitted(rung, method)
    model = loaded(pipe)
    assert model.fast == (rung in FAST_RUNGS)
    X = synthetic_rows(500, seed=7).to_numpy().copy()
    X[:5] = 0.0  # the edges of the ranges too
    frame = pd.DataFrame(X, columns=list(FEATURE_NAMES))
    got_pd, got_c = model.predict(X)
    want_pd = pipe.predict_proba(frame)[:, 1]
    assert np.max(np.abs(got_pd - want_pd)) <= 1e-12
    for i in range(0, 20):  # one row at a time, as /predict calls it
        one_pd, _ = model.predict(X[i:i + 1])
        assert abs(one_pd[0] - want_pd[i]) <= 1e-12
    want_c = contributions(pipe, frame)
    if want_c is None:
        assert got_c is None
    else:
        full = want_c.reindex(columns=list(FEATURE_NAMES), fill_value=0.0).to_numpy()
        assert got_c is not None and np.max(np.abs(got_c - full)) <= 1e-12


def test_a_fast_path_that_disagrees_with_its_pipeline_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipe = fitted("logistic_regression", "sigmoid")
    assert loaded(pipe).fast
    real = LogisticFastPath.of

    def off_by_a_hair(p: Any) -> LogisticFastPath | None:
        fast = real(p)
        return dataclasses.replace(fast, intercept=fast.intercept + 1e-9) if fast else None

    monkeypatch.setattr(LogisticFastPath, "of", staticmethod(off_by_a_hair))
    model = loaded(pipe)
    assert not model.fast  # refused: the pipeline scores
    X = synthetic_rows(50, seed=3).to_numpy()
    want = pipe.predict_proba(pd.DataFrame(X, columns=list(FEATURE_NAMES)))[:, 1]
    assert np.array_equal(model.predict(X)[0], want)


def reference_reason_codes(contrib: np.ndarray, values: Any, baseline: Any, cfg: dict,
                           names: list[str]) -> list[list[dict[str, Any]]]:
    """reason_codes as it was before the request-path work (the straightforward way)."""
    k = int(cfg["reasons"]["top_k"])
    c = np.asarray(contrib, dtype=float)
    groups = sorted({BY_NAME[n].group for n in names})
    member = np.array([[BY_NAME[n].group == g for n in names] for g in groups], dtype=float)
    group_sum = c @ member.T
    order = np.argsort(-group_sum, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(group_sum, order, axis=1)
    strongest = np.empty(group_sum.shape, dtype=int)
    for gi in range(len(groups)):
        cols = np.flatnonzero(member[gi])
        strongest[:, gi] = cols[np.argmax(c[:, cols], axis=1)]
    feature = np.take_along_axis(strongest, order, axis=1)
    x = np.column_stack([np.asarray(values[n], dtype=float) for n in names])
    base = np.array([baseline.get(n, -np.inf) for n in names])
    above = np.take_along_axis(x, feature, axis=1) > base[feature]
    out = []
    for row_top, row_feature, row_above, row_order in zip(
            np.round(top, 4).tolist(), feature.tolist(), above.tolist(), order.tolist(),
            strict=True):
        reasons = []
        for value, j, up, gi in zip(row_top, row_feature, row_above, row_order, strict=True):
            if value <= 0:
                break
            reasons.append({"code": names[j].upper(), "feature": names[j],
                            "group": groups[gi],
                            "text": (BY_NAME[names[j]].low, BY_NAME[names[j]].high)[up],
                            "contribution": value})
        out.append(reasons)
    return out


@pytest.mark.parametrize("rows", [1, 2, 64, 700])
@pytest.mark.parametrize("ties", [False, True])
def test_reason_codes_equal_the_straightforward_implementation(
    rows: int, ties: bool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    if rows == 700:
        monkeypatch.setattr(decide_mod, "_CHUNK", 64)  # across chunk boundaries too
    rng = np.random.default_rng(rows + 1000 * ties)
    names = list(FEATURE_NAMES)
    c = rng.normal(0.0, 0.5, (rows, len(names)))
    if ties:  # equal contributions inside a group, and equal group sums
        c = np.round(c * 2) / 2
    values = synthetic_rows(rows, seed=rows).to_dict("series")
    baseline = {n: float(np.median(values[n])) for n in names[::2]}  # some without one
    cfg = load_policy()
    got = reason_codes(c, values, baseline, cfg, names)
    assert got == reference_reason_codes(c, values, baseline, cfg, names)
    frame = pd.DataFrame(c, columns=names)  # a DataFrame contrib, as batch scoring passes
    assert reason_codes(frame, pd.DataFrame(values), baseline, cfg) == got


def test_a_non_finite_contribution_spoils_only_its_own_row() -> None:
    names = list(FEATURE_NAMES)
    c = np.random.default_rng(5).normal(0.0, 0.5, (3, len(names)))
    c[1, 4] = np.nan
    values = synthetic_rows(3, seed=5).to_dict("series")
    cfg = load_policy()
    got = reason_codes(c, values, {}, cfg, names)
    want = reference_reason_codes(c[[0, 2]], {n: v.to_numpy()[[0, 2]] for n, v in values.items()},
                                  {}, cfg, names)
    assert [got[0], got[2]] == want


def test_a_row_scores_the_same_alone_and_in_a_micro_batch() -> None:
    """What the API's micro-batching relies on: no row's answer depends on its company."""
    from serving.predictor import score_items
    from serving.schemas import PredictRequest

    model = loaded(fitted("logistic_regression", "isotonic"))
    cfg = load_policy()
    rows = synthetic_rows(40, seed=9)
    rows["purchase_recency_days"] = np.linspace(0, 40, 40)  # scored and dormant ones
    items = [PredictRequest(features=r, amount=float(a))
             for r, a in zip(rows.to_dict("records"), np.linspace(0, 3e5, 40), strict=True)]
    together = score_items(items, model, None, cfg)
    alone = [score_items([it], model, None, cfg)[0] for it in items]
    assert [o.body for o in together] == [o.body for o in alone]


def test_segment_of_a_column_mapping_equals_segment_of_the_frame() -> None:
    frame = synthetic_rows(400, seed=11)
    frame.loc[:10, "purchase_recency_days"] = 30.0  # on the lookback's edge
    col = frame["purchase_recency_days"].to_numpy()
    assert np.array_equal(segment({"purchase_recency_days": col}, 30), segment(frame, 30))
