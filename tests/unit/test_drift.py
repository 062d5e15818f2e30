"""Nightly drift monitoring tells an operator something: quiet on a stable world, loud on
real drift, and the model's feature set is the stable one.

On the Xente-shaped world the cumulative features (tenure, totals) grow with the data's
length, so against a training reference they drift every day (tenure_days PSI ~1.7 on a
running stack before this change); the model reads fixed-window features instead.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from creditrisk.evaluation.stability import psi, reference_distribution
from creditrisk.features.compute import compute_features
from creditrisk.features.population import SCORED, segment
from creditrisk.landing.simulate import generate_transactions
from creditrisk.landing.worlds import to_warehouse
from creditrisk.model.train import load_config
from creditrisk.scoring.monitoring import monitoring_row
from tests.paths import CUSTOMER_SEQUENCE

MODEL_FEATURES = list(load_config()["features"])
EARLY, LATE = dt.date(2018, 12, 20), dt.date(2019, 1, 31)


@pytest.fixture(scope="module")
def snapshots() -> tuple[pd.DataFrame, pd.DataFrame]:
    tx = to_warehouse(generate_transactions(
        customers=None, days=90, end_date=dt.date(2019, 2, 13), seed=3, world="xente",
        sequence_path=CUSTOMER_SEQUENCE))
    out = []
    for day in (EARLY, LATE):
        f = compute_features(tx, day)
        out.append(f[segment(f, 30) == SCORED])
    return out[0], out[1]


def _pd(f: pd.DataFrame) -> np.ndarray:
    z = np.log1p(f["purchase_recency_days"]) - 0.5 * np.log1p(f["purchases_30d"])
    return (1 / (1 + np.exp(-z))).to_numpy()


def test_the_models_features_are_stable_and_the_cumulative_ones_are_not(
    snapshots: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    early, late = snapshots
    stable = {c: psi(early[c], late[c]) for c in MODEL_FEATURES}
    assert max(stable.values()) < 0.25, sorted(stable.items(), key=lambda kv: -kv[1])[:3]
    assert psi(early["tenure_days"], late["tenure_days"]) > 0.25  # why it is left out


def test_monitoring_is_quiet_on_a_stable_world_and_fires_on_injected_drift(
    snapshots: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    early, late = snapshots
    reference = reference_distribution(early[MODEL_FEATURES], _pd(early))
    bands = np.array(["C"] * len(late))
    decisions = np.array(["REVIEW"] * len(late))
    quiet = monitoring_row(_pd(late), bands, decisions, late, reference, threshold=0.25)
    assert not quiet["psi_alert"], (quiet["psi_score"], quiet["psi_features"])
    # drift: a third of the customers stop buying on the platform's main channel (their
    # recent purchase counts collapse) and the rest double their spend
    rng = np.random.default_rng(0)
    drifted = late.copy()
    stop = rng.random(len(late)) < 0.33
    for c in ("purchases_7d", "purchases_30d", "active_days_30d", "spend_7d"):
        drifted.loc[stop, c] = 0.0
    drifted.loc[~stop, "spend_last_30d"] *= 2
    loud = monitoring_row(_pd(drifted), bands, decisions, drifted, reference, threshold=0.25)
    assert loud["psi_alert"]
    assert {k for k, v in loud["psi_features"].items() if v > 0.25} & {
        "purchases_7d", "purchases_30d", "active_days_30d", "spend_last_30d"}


def test_a_day_with_nobody_in_the_population_is_monitored_not_an_error(
    snapshots: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    """Historical data scored today: every customer dormant, no PD to watch (it was a
    JSON NaN that PostgreSQL refused, failing publish)."""
    import json

    early, _ = snapshots
    reference = reference_distribution(early[MODEL_FEATURES], _pd(early))
    row = monitoring_row(np.array([]), np.array([]), np.array([]), early.iloc[:0], reference,
                         threshold=0.25)
    assert row["n_scored"] == 0 and row["psi_score"] is None and not row["psi_alert"]
    json.loads(json.dumps(row["psi_features"], allow_nan=False))
