"""The lending policy: score scaling, bands, decisions, limits, terms, reason codes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditrisk.catalogue import FEATURE_NAMES
from creditrisk.scoring.decide import (
    APPROVE,
    DECLINE,
    REVIEW,
    apply_policy,
    credit_score,
    decision,
    load_policy,
    reason_codes,
    recommended_limit,
    risk_band,
)

CFG = load_policy()


def test_points_to_double_odds() -> None:
    s = CFG["score"]
    base_pd = 1 / (1 + s["base_odds"])
    doubled_pd = 1 / (1 + 2 * s["base_odds"])
    base, doubled = credit_score(np.array([base_pd, doubled_pd]), CFG)
    assert base == s["base_points"]
    assert doubled - base == s["pdo"]
    assert credit_score(np.array([1e-12]), CFG)[0] == s["max"]
    assert credit_score(np.array([1 - 1e-12]), CFG)[0] == s["min"]
    # the PD range decide() allows spans the scale: a PD of 0.002 is not on the cap
    floor = s["pd_floor"]
    lo, hi = credit_score(np.array([1 - floor, floor]), CFG)
    assert s["min"] <= lo <= s["min"] + 5 and s["max"] - 5 <= hi <= s["max"]
    assert credit_score(np.array([0.002]), CFG)[0] < s["max"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=2, max_size=50))
def test_lower_pd_never_gets_a_worse_score_band_or_decision(pds: list[float]) -> None:
    p = np.sort(np.array(pds))
    scores = credit_score(p, CFG)
    assert (np.diff(scores) <= 0).all()
    assert ((scores >= 300) & (scores <= 850)).all()
    order = {b["band"]: i for i, b in enumerate(CFG["bands"])}
    bands = [order[b] for b in risk_band(p, CFG)]
    assert bands == sorted(bands)
    rank = {APPROVE: 0, REVIEW: 1, DECLINE: 2}
    ds = [rank[d] for d in decision(p, CFG)]
    assert ds == sorted(ds)


def test_decision_cut_offs() -> None:
    d = CFG["decision"]
    got = decision(np.array([d["approve_below"] - 1e-6, d["approve_below"], d["review_below"]]),
                   CFG)
    assert list(got) == [APPROVE, REVIEW, DECLINE]


def test_limit_respects_expected_loss_budget_capacity_and_cap() -> None:
    lim = CFG["limit"]
    pd_ = np.array([0.01, 0.2, 0.2, 0.9])
    capacity = np.array([10_000_000.0, 10_000_000.0, 8_000.0, 1e9])
    decisions = np.array([APPROVE, APPROVE, APPROVE, DECLINE], dtype=object)
    got = recommended_limit(pd_, capacity, decisions, CFG)
    assert got[0] == lim["max_limit"]
    assert got[1] * 0.2 * lim["lgd"] <= lim["expected_loss_budget"]
    # the largest round amount within the budget
    assert (got[1] + lim["round_to"]) * 0.2 * lim["lgd"] > lim["expected_loss_budget"]
    assert got[1] % lim["round_to"] == 0
    assert got[2] <= 8_000
    assert got[3] == 0


def _features(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.uniform(0, 50_000, size=(n, len(FEATURE_NAMES))),
                        columns=list(FEATURE_NAMES))


def test_apply_policy_is_consistent() -> None:
    pd_ = np.linspace(0.01, 0.99, 40)
    res = apply_policy(pd_, _features(40), CFG)
    declined = res.decision == DECLINE
    assert (res.recommended_limit[declined] == 0).all()
    assert (res.recommended_term_days[declined] == 0).all()
    assert (res.recommended_term_days[~declined] > 0).all()
    assert np.all(np.diff(res.credit_score) <= 0)


def test_reason_codes_are_the_top_risk_raising_groups() -> None:
    contrib = pd.DataFrame([[0.5, -1.0, 0.2, 0.0], [-0.1, -0.2, -0.3, -0.4]],
                           columns=["recency_days", "frequency", "fraud_count", "tenure_days"])
    values = {"recency_days": [40.0, 1.0], "frequency": [3.0, 50.0], "fraud_count": [1.0, 0.0],
              "tenure_days": [80.0, 80.0]}
    baseline = {"recency_days": 10.0, "frequency": 10.0, "fraud_count": 0.0, "tenure_days": 60}
    codes = reason_codes(contrib, values, baseline, {"reasons": {"top_k": 2}})
    assert [c["feature"] for c in codes[0]] == ["recency_days", "fraud_count"]
    assert codes[0][0]["code"] == "RECENCY_DAYS"
    assert codes[0][0]["text"] == "Long time since the last transaction"  # 40 > baseline 10
    assert codes[1] == []  # nothing raises this customer's risk


def test_correlated_features_make_one_reason_in_the_customers_direction() -> None:
    """purchases_7d, purchases_30d and active_days_30d are one group: one reason, and a
    heavy buyer (above the baseline) is never told "few"."""
    cols = ["purchases_7d", "purchases_30d", "active_days_30d", "monetary_mean"]
    contrib = pd.DataFrame([[0.3, 0.2, 0.1, 0.05]], columns=cols)
    heavy = {"purchases_7d": [40.0], "purchases_30d": [150.0], "active_days_30d": [28.0],
             "monetary_mean": [5000.0]}
    baseline = {"purchases_7d": 1.0, "purchases_30d": 4.0, "active_days_30d": 3.0,
                "monetary_mean": 3000.0}
    codes = reason_codes(contrib, heavy, baseline, {"reasons": {"top_k": 4}})[0]
    assert [c["group"] for c in codes] == ["recent_activity", "amounts"]
    assert codes[0]["contribution"] == pytest.approx(0.6)
    assert codes[0]["text"] == "Many purchases this week"
    assert not any(w in c["text"].lower() for c in codes for w in ("few", "low", "little"))


def test_bad_policy_path_is_a_clear_error() -> None:
    from creditrisk.errors import InputError

    with pytest.raises(InputError, match="policy config"):
        load_policy("/nonexistent/policy.yaml")


def test_one_horizon_for_the_label_the_training_the_dag_and_the_policy_terms() -> None:
    """The PD is the chance of going bad within H days: every place that names H agrees,
    and no term is longer than the horizon the PD speaks for."""
    import re
    from pathlib import Path

    from creditrisk.features.labels import DEFAULT_HORIZON_DAYS
    from creditrisk.model.train import load_config

    policy = load_policy()
    h = int(load_config()["dataset"]["horizon_days"])
    assert h == DEFAULT_HORIZON_DAYS == int(policy["pd_horizon_days"])
    dag = (Path(__file__).resolve().parents[2] / "dags" / "build_features.py").read_text()
    assert re.search(r'"horizon_days": Param\((\d+)', dag).group(1) == str(h)  # type: ignore[union-attr]
    assert max(policy["term_days"].values()) <= h


def test_every_policy_key_is_read_by_the_code() -> None:
    """A key nobody reads is a setting that silently does nothing."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    code = "".join(p.read_text() for top in ("include", "serving")
                   for p in (repo / top).rglob("*.py"))

    def keys(node: object, prefix: str = "") -> list[str]:
        if isinstance(node, dict):
            out = []
            for k, v in node.items():
                out += [f"{prefix}{k}"] + (keys(v, f"{prefix}{k}.") if k != "term_days" else [])
            return out
        return []

    for path in keys(load_policy()):
        leaf = path.rsplit(".", 1)[-1]
        if leaf in {"A", "B", "C", "D", "E"}:
            continue
        assert f'"{leaf}"' in code, f"policy key {path} is read nowhere"


def test_batch_reasons_as_json_equal_the_api_reasons_dumped() -> None:
    """Batch scoring builds each customer's reasons as JSON column by column; they are
    exactly ``json.dumps`` of the reasons the API returns, empty lists included."""
    import json

    from creditrisk.scoring.decide import load_policy, reason_codes, reason_codes_json

    cfg = load_policy()
    rng = np.random.default_rng(5)
    names = list(FEATURE_NAMES)
    contrib = pd.DataFrame(rng.normal(0, 0.4, (3_000, len(names))), columns=names)
    contrib.iloc[:20] = -1.0  # nothing raises the risk: no reason
    contrib.iloc[20:40] = np.round(contrib.iloc[20:40] * 4) / 4  # whole sums: "2.0", not "2"
    values = {n: rng.normal(0, 1, 3_000) for n in names}
    baseline = dict.fromkeys(names, 0.0)
    want = [json.dumps(r) for r in reason_codes(contrib, values, baseline, cfg)]
    assert reason_codes_json(contrib, values, baseline, cfg).to_pylist() == want
    assert want[0] == "[]" and any('"contribution": 1.0}' in w for w in want[20:40])
