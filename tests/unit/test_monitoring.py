"""Score monitoring: PSI against the stored training reference, and the alert flag."""

from __future__ import annotations

import numpy as np
import pandas as pd

from creditrisk.evaluation.stability import reference_distribution
from creditrisk.scoring.monitoring import monitoring_row, psi_against


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, 20_000)
    ref = reference_distribution(pd.DataFrame({"x": train}), train)
    assert len(ref["pd"]["shares"]) == len(ref["pd"]["edges"]) + 1
    assert abs(sum(ref["pd"]["shares"]) - 1) < 1e-9
    assert psi_against(ref["pd"], rng.normal(0, 1, 20_000)) < 0.01
    assert psi_against(ref["pd"], rng.normal(1.0, 1, 20_000)) > 0.25


def test_monitoring_row_flags_drift_over_the_threshold() -> None:
    rng = np.random.default_rng(1)
    pd_train = rng.uniform(0, 1, 5_000)
    feats_train = pd.DataFrame({"recency_days": rng.exponential(10, 5_000)})
    ref = reference_distribution(feats_train, pd_train)
    same = monitoring_row(rng.uniform(0, 1, 5_000), np.array(["A"] * 5_000),
                          np.array(["APPROVE"] * 5_000),
                          pd.DataFrame({"recency_days": rng.exponential(10, 5_000)}), ref, 0.25)
    assert same["psi_alert"] is False and same["n_scored"] == 5_000
    assert same["band_shares"] == {"A": 1.0}
    drifted = monitoring_row(rng.uniform(0, 1, 5_000), np.array(["B"] * 5_000),
                             np.array(["REVIEW"] * 5_000),
                             pd.DataFrame({"recency_days": rng.exponential(40, 5_000)}), ref, 0.25)
    assert drifted["psi_alert"] is True
    assert drifted["psi_features"]["recency_days"] > 0.25
    assert drifted["psi_score"] < 0.25  # the PD did not move; a feature did


def test_no_reference_means_no_psi_and_no_alert() -> None:
    row = monitoring_row(np.array([0.2, 0.4]), np.array(["A", "B"]),
                         np.array(["APPROVE", "APPROVE"]), pd.DataFrame({"x": [1.0, 2.0]}),
                         None, 0.25)
    assert row["psi_score"] is None and row["psi_features"] == {} and row["psi_alert"] is False
    assert abs(row["mean_pd"] - 0.3) < 1e-12


def test_a_day_summed_from_its_chunks_equals_the_day_at_once() -> None:
    """Publish adds the chunks' counts (issue 15): PSI, shares and mean PD equal what the
    whole day in memory gives, for any chunking."""
    from creditrisk.scoring.monitoring import chunk_stats, combine

    rng = np.random.default_rng(2)
    n = 9_000
    ref = reference_distribution(pd.DataFrame({"x": rng.normal(0, 1, 5_000)}),
                                 rng.uniform(0, 1, 5_000))
    pd_ = rng.uniform(0, 1, n).round(8)
    bands = rng.choice(["A", "B", "C"], n)
    decisions = rng.choice(["APPROVE", "DECLINE"], n)
    feats = pd.DataFrame({"x": rng.normal(0.3, 1, n)})
    whole = monitoring_row(pd_, bands, decisions, feats, ref, 0.25)
    for parts in (1, 3, 7):
        cut = np.array_split(np.arange(n), parts)
        got = combine([chunk_stats(pd_[i], bands[i], decisions[i], feats.iloc[i], ref)
                       for i in cut], ref, 0.25)
        assert got == whole
    assert abs(whole["mean_pd"] - float(np.mean(pd_))) < 1e-12
    assert whole["psi_features"]["x"] == round(psi_against(ref["features"]["x"], feats["x"]), 6)
    assert combine([], ref, 0.25)["n_scored"] == 0
