"""Label strategies, the leakage guard and the IV table."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from creditrisk.errors import InputError
from creditrisk.features.compute import compute_features
from creditrisk.features.labels import (
    ForwardWindow,
    LeakageError,
    check_no_leakage,
    get_strategy,
    least_engaged_cluster,
)
from creditrisk.features.quality import iv_table, strength, woe_table
from creditrisk.landing.simulate import generate_transactions
from creditrisk.schema import WAREHOUSE_COLUMNS, XENTE_COLUMNS, purchase_mask

AS_OF = dt.date(2019, 1, 10)
H = 30


@pytest.fixture(scope="module")
def tx() -> pd.DataFrame:
    df = generate_transactions(customers=800, days=90, end_date=dt.date(2019, 2, 13), seed=11)
    df = df.rename(columns=dict(zip(XENTE_COLUMNS, WAREHOUSE_COLUMNS, strict=True)))
    df["transaction_start_time"] = pd.to_datetime(df["transaction_start_time"], utc=True)
    df["amount"] = pd.to_numeric(df["amount"])
    return df


def test_forward_window_label_definition(tx: pd.DataFrame) -> None:
    customers = compute_features(tx, AS_OF).index
    result = get_strategy("forward_window").label(tx, customers, AS_OF, H)
    frame = result.frame
    assert list(frame.index) == list(customers)
    start = pd.Timestamp("2019-01-10T00:00:00Z")
    window = tx[(tx["transaction_start_time"] >= start)
                & (tx["transaction_start_time"] < start + pd.Timedelta(days=H))]
    bought = window[purchase_mask(window["amount"], window["provider_id"],
                                  window["channel_id"])]
    active = set(bought["customer_id"])  # platform credits and fees are not the customer's
    fraudsters = set(window.loc[window["fraud_result"] == 1, "customer_id"])
    for cid, row in frame.iterrows():
        assert row["silent"] == (cid not in active)
        assert row["fraud"] == (cid in fraudsters)
        assert row["is_high_risk"] == (row["silent"] or row["fraud"])
    # a customer with only a platform credit in the window is silent (the old label: active)
    credited_only = set(window["customer_id"]) - active
    assert credited_only and frame.loc[sorted(credited_only & set(frame.index)), "silent"].all()
    old = ForwardWindow(activity="all", kmeans_segment=True).label(tx, customers, AS_OF, H)
    assert old.bad_rate != result.bad_rate and result.params["rules"] == ["no_purchase", "fraud"]
    assert 0.05 < result.bad_rate < 0.95
    assert result.source_start == AS_OF
    assert result.source_end == dt.date(2019, 2, 8)
    assert (frame["window_start"] == "2019-01-10").all()


def test_forward_window_ignores_history_and_features_ignore_the_window(
    tx: pd.DataFrame,
) -> None:
    """The leakage guard, by experiment: each side is blind to the other's data."""
    cutoff = pd.Timestamp("2019-01-10T00:00:00Z")
    customers = compute_features(tx, AS_OF).index
    strategy = get_strategy("forward_window")
    before = tx[tx["transaction_start_time"] < cutoff]
    window = tx[tx["transaction_start_time"] >= cutoff]
    # Scramble the window: features as of T must not move.
    scrambled = window.assign(amount=window["amount"] * 7 + 1, fraud_result=1)
    pd.testing.assert_frame_equal(
        compute_features(tx, AS_OF), compute_features(pd.concat([before, scrambled]), AS_OF)
    )
    # Scramble the history: forward-window labels must not move.
    hist = before.assign(amount=before["amount"] * 3, fraud_result=1)
    a = strategy.label(tx, customers, AS_OF, H).frame
    b = strategy.label(pd.concat([hist, window]), customers, AS_OF, H).frame
    pd.testing.assert_frame_equal(a, b)
    check_no_leakage(AS_OF, strategy.label(tx, customers, AS_OF, H))


def test_rfm_kmeans_same_date_is_rejected_as_leakage(tx: pd.DataFrame) -> None:
    customers = compute_features(tx, AS_OF).index
    result = get_strategy("rfm_kmeans").label(tx, customers, AS_OF, H)
    assert result.frame["is_high_risk"].any()
    with pytest.raises(LeakageError, match="rfm_kmeans"):
        check_no_leakage(AS_OF, result)


def test_least_engaged_cluster_picks_the_quiet_customers() -> None:
    rng = np.random.default_rng(0)
    engaged = pd.DataFrame({"recency": rng.uniform(0, 2, 50), "frequency": rng.uniform(50, 80, 50),
                            "monetary": rng.uniform(1e5, 2e5, 50)})
    middle = pd.DataFrame({"recency": rng.uniform(5, 10, 50), "frequency": rng.uniform(8, 15, 50),
                           "monetary": rng.uniform(1e4, 2e4, 50)})
    quiet = pd.DataFrame({"recency": rng.uniform(40, 60, 50), "frequency": rng.uniform(1, 2, 50),
                          "monetary": rng.uniform(0, 500, 50)})
    mask = least_engaged_cluster(pd.concat([engaged, middle, quiet], ignore_index=True))
    assert mask[100:].all() and not mask[:100].any()


def test_unknown_strategy_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="forward_window"):
        get_strategy("nope")


def test_iv_table_ranks_an_informative_feature_first() -> None:
    rng = np.random.default_rng(1)
    bad = pd.Series(rng.random(4000) < 0.3)
    feats = pd.DataFrame({
        "signal": np.where(bad, rng.normal(2, 1, 4000), rng.normal(0, 1, 4000)),
        "noise": rng.normal(0, 1, 4000),
    })
    table = iv_table(feats, bad)
    assert list(table["feature"]) == ["signal", "noise"]
    assert table.iloc[0]["iv"] > 0.5 and table.iloc[1]["iv"] < 0.02
    woe = woe_table(feats["signal"], bad)
    assert woe["count"].sum() == 4000 and len(woe) == 10
    assert woe["woe"].iloc[0] > 0 > woe["woe"].iloc[-1]  # low values: more goods
    assert strength(0.01) == "useless" and strength(0.2) == "medium"
