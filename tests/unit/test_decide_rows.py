"""The API's row path of :func:`decide` gives the array path's answers, bit for bit.

``decide`` answers up to ``ROW_PATH_MAX`` rows in plain floats (the API's calls); batch
scoring and anything larger take the numpy functions. Both must agree exactly, so that
``/predict`` answers what ``risk_scores`` holds: here on random rows, on ties, and on
every boundary the policy has (band edges, cut-offs, the PD floor, the spending basis,
the limit's rounding, the score's clip), with a basket, and on the cases the row path
hands back to the array path (non-finite values, bands out of order).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from creditrisk.catalogue import FEATURE_NAMES
from creditrisk.scoring import decide as decide_mod
from creditrisk.scoring.decide import ROW_PATH_MAX, Decision, decide, load_policy

NAMES = list(FEATURE_NAMES)


def _world(n: int, seed: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """PDs, feature columns, contributions and a baseline, with the policy's edges."""
    rng = np.random.default_rng(seed)
    edges = [float(b["max_pd"]) for b in cfg["bands"]] + [
        float(cfg["decision"]["approve_below"]), float(cfg["decision"]["review_below"]),
        float(cfg["score"]["pd_floor"]), 1.0 - float(cfg["score"]["pd_floor"]), 0.0, 1.0,
        1e-12, 0.5, float(np.nextafter(0.45, 0.0)), float(np.nextafter(0.6, 1.0))]
    pd_ = rng.random(n) ** 2
    pd_[:len(edges)] = edges[:n]
    X = np.abs(rng.normal(0, 1, (n, len(NAMES)))) * rng.choice([1, 10, 1e3, 1e5], (n, len(NAMES)))
    X[::5, NAMES.index("tenure_days")] = 30.0  # a tenure of exactly one month
    X[1::5, NAMES.index("tenure_days")] = 0.0
    X[2::5, NAMES.index("spend_last_30d")] = float(cfg["limit"]["min_spend_basis"])
    contrib = rng.normal(0, 0.5, (n, len(NAMES)))
    contrib[::3] = np.round(contrib[::3] * 2) / 2  # equal contributions and equal sums
    contrib[::7] = 0.0
    baseline = {name: float(np.median(X[:, j])) for j, name in enumerate(NAMES) if j % 2}
    return {"pd": pd_, "X": X, "contrib": contrib, "baseline": baseline,
            "amounts": [None if k % 3 == 0 else float(v)
                        for k, v in enumerate(rng.choice([100.0, 5e4, 1e6], n))],
            "categories": [(None, "airtime", "financial_services")[k % 3] for k in range(n)]}


def _decide(w: dict[str, Any], rows: slice, cfg: dict[str, Any], **kw: Any) -> Decision:
    X = w["X"][rows]
    return decide(w["pd"][rows], dict(zip(NAMES, X.T, strict=True)), w["contrib"][rows], cfg,
                  names=NAMES, baseline=w["baseline"], **kw)


def _row(d: Decision, i: int) -> tuple[Any, ...]:
    p = d.policy
    return (float(d.probability_of_default[i]), int(p.credit_score[i]), str(p.risk_band[i]),
            str(p.decision[i]), float(p.recommended_limit[i]),
            int(p.recommended_term_days[i]), str(d.decision[i]), d.reason_codes[i])


def _same(alone: Decision, together: Decision, i: int) -> None:
    got, want = _row(alone, 0), _row(together, i)
    assert got == want, (i, got, want)
    # bit for bit, not only equal as numbers (-0.0 == 0.0)
    assert [np.float64(v).tobytes() for v in got[:1] + got[4:5]] == [
        np.float64(v).tobytes() for v in want[:1] + want[4:5]]


@pytest.mark.parametrize("seed", [0, 1])
def test_rows_alone_equal_the_array_path(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_policy()
    n = 3000
    w = _world(n, seed, cfg)
    basket = {"basket_amounts": w["amounts"], "basket_categories": w["categories"]}
    together = _decide(w, slice(None), cfg, **basket)  # n > ROW_PATH_MAX: numpy
    taken = []
    real = decide_mod._decide_rows
    monkeypatch.setattr(decide_mod, "_decide_rows",
                        lambda *a, **k: taken.append(1) or real(*a, **k))
    for i in range(n):
        alone = _decide(w, slice(i, i + 1), cfg, basket_amounts=w["amounts"][i:i + 1],
                        basket_categories=w["categories"][i:i + 1])
        _same(alone, together, i)
    assert len(taken) == n  # every single row took the row path


def test_a_small_batch_takes_the_row_path_and_equals_the_array_path() -> None:
    cfg = load_policy()
    w = _world(ROW_PATH_MAX + 1, 5, cfg)
    together = _decide(w, slice(None), cfg)
    assert decide_mod._decide_rows(w["pd"][:ROW_PATH_MAX],
                                   dict(zip(NAMES, w["X"][:ROW_PATH_MAX].T, strict=True)),
                                   w["contrib"][:ROW_PATH_MAX], cfg, NAMES,
                                   w["baseline"]) is not None
    small = _decide(w, slice(0, ROW_PATH_MAX), cfg)
    for i in range(ROW_PATH_MAX):
        assert _row(small, i) == _row(together, i)


@pytest.mark.parametrize("change", ["top_k_0", "top_k_1", "no_contrib", "other_scale"])
def test_policy_variants_agree(change: str) -> None:
    cfg = copy.deepcopy(load_policy())
    contrib: Any = "given"
    if change.startswith("top_k"):
        cfg["reasons"]["top_k"] = int(change[-1])
    elif change == "no_contrib":
        contrib = None
    else:  # integer and float settings the yaml might hold either way
        cfg["score"].update(pdo=20.5, base_points=600, base_odds=2, min=250, max=900)
        cfg["limit"].update(round_to=250, review_factor=0.25, spend_multiple=2)
    w = _world(400, 9, cfg)
    if contrib is None:
        w["contrib"] = None
    feats = dict(zip(NAMES, w["X"].T, strict=True))
    together = decide(w["pd"], feats, w["contrib"], cfg, names=NAMES, baseline=w["baseline"])
    for i in range(400):
        alone = decide(w["pd"][i:i + 1], {k: v[i:i + 1] for k, v in feats.items()},
                       None if w["contrib"] is None else w["contrib"][i:i + 1], cfg,
                       names=NAMES, baseline=w["baseline"])
        _same(alone, together, i)


def test_non_finite_values_and_unordered_bands_go_to_the_array_path() -> None:
    cfg = load_policy()
    w = _world(4, 3, cfg)
    feats = dict(zip(NAMES, w["X"].T, strict=True))
    nan_pd = w["pd"].copy()
    nan_pd[1] = np.nan
    nan_contrib = w["contrib"].copy()
    nan_contrib[2, 3] = np.inf
    nan_spend = {**feats, "spend_last_30d": np.array([1.0, np.nan, 2.0, 3.0])}
    for args in ((nan_pd, feats, w["contrib"]), (w["pd"], feats, nan_contrib),
                 (w["pd"], nan_spend, w["contrib"])):
        assert decide_mod._decide_rows(*args, cfg, NAMES, w["baseline"]) is None
        got = decide(*args, cfg, names=NAMES, baseline=w["baseline"])
        assert len(got.reason_codes) == 4  # answered, by the array path
    unordered = copy.deepcopy(cfg)
    unordered["bands"] = list(reversed(unordered["bands"]))
    assert decide_mod._decide_rows(w["pd"], feats, w["contrib"], unordered, NAMES,
                                   w["baseline"]) is None
    assert decide_mod._decide_rows(w["pd"], feats, w["contrib"], cfg, NAMES,
                                   w["baseline"]) is not None
