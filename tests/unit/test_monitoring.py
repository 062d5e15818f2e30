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
