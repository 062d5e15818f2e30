"""Point-in-time features: properties that must hold for any transactions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditrisk.catalogue import CATALOGUE, FEATURE_NAMES
from creditrisk.features.compute import compute_features
from creditrisk.schema import CHANNELS, PRODUCT_CATEGORIES, PROVIDERS

AS_OF = dt.date(2019, 1, 15)
BASE = pd.Timestamp("2018-11-15T00:00:00Z")
CUTOFF = pd.Timestamp("2019-01-15T00:00:00Z")


@st.composite
def transactions(draw: st.DrawFn, min_rows: int = 1, max_rows: int = 40) -> pd.DataFrame:
    n = draw(st.integers(min_rows, max_rows))
    seconds = draw(
        st.lists(st.integers(0, 90 * 86_400), min_size=n, max_size=n)
    )
    return pd.DataFrame(
        {
            "customer_id": draw(st.lists(st.sampled_from(["C1", "C2", "C3"]), min_size=n,
                                         max_size=n)),
            "transaction_start_time": BASE + pd.to_timedelta(seconds, unit="s"),
            "amount": draw(st.lists(
                st.integers(-100_000, 1_000_000).map(float), min_size=n, max_size=n)),
            "product_category": draw(st.lists(st.sampled_from(PRODUCT_CATEGORIES), min_size=n,
                                              max_size=n)),
            "channel_id": draw(st.lists(st.sampled_from(CHANNELS), min_size=n, max_size=n)),
            "provider_id": draw(st.lists(st.sampled_from(PROVIDERS), min_size=n, max_size=n)),
            "product_id": draw(st.lists(st.sampled_from(["ProductId_1", "ProductId_3",
                                                         "ProductId_10"]), min_size=n,
                                        max_size=n)),
            "pricing_strategy": draw(st.lists(st.sampled_from([0, 1, 2, 4]), min_size=n,
                                              max_size=n)),
            "fraud_result": draw(st.lists(st.sampled_from([0, 0, 0, 1]), min_size=n,
                                          max_size=n)),
        }
    )


PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(tx=transactions(), later=transactions())
def test_transactions_on_or_after_as_of_never_change_a_feature(
    tx: pd.DataFrame, later: pd.DataFrame
) -> None:
    shift = CUTOFF - later["transaction_start_time"].min()
    later = later.assign(transaction_start_time=later["transaction_start_time"] + shift)
    assert (later["transaction_start_time"] >= CUTOFF).all()
    before = compute_features(tx, AS_OF)
    after = compute_features(pd.concat([tx, later], ignore_index=True), AS_OF)
    pd.testing.assert_frame_equal(before, after)


@PROPS
@given(tx=transactions(), seed=st.integers(0, 2**32 - 1))
def test_shuffling_rows_never_changes_a_feature(tx: pd.DataFrame, seed: int) -> None:
    shuffled = tx.sample(frac=1.0, random_state=np.random.RandomState(seed)).reset_index(drop=True)
    pd.testing.assert_frame_equal(compute_features(tx, AS_OF), compute_features(shuffled, AS_OF))


@PROPS
@given(tx=transactions())
def test_frequency_and_monetary_are_plain_counts_and_sums(tx: pd.DataFrame) -> None:
    feats = compute_features(tx, AS_OF)
    seen = tx[tx["transaction_start_time"] < CUTOFF]
    assert set(feats.index) == set(seen["customer_id"])
    for cid, rows in seen.groupby("customer_id"):
        assert feats.at[cid, "frequency"] == len(rows)
        debits = rows["amount"][rows["amount"] > 0]
        assert feats.at[cid, "debit_count"] == len(debits)
        assert feats.at[cid, "monetary_total"] == pytest.approx(debits.sum())
        credits = rows["amount"][rows["amount"] < 0]
        assert feats.at[cid, "credit_total"] == pytest.approx(-credits.sum())
        assert feats.at[cid, "fraud_count"] == rows["fraud_result"].sum()
        if len(debits) > 1:
            assert feats.at[cid, "monetary_std"] == pytest.approx(debits.std(), rel=1e-6, abs=1e-6)


@PROPS
@given(tx=transactions())
def test_recency_and_durations_are_non_negative_and_shares_are_fractions(
    tx: pd.DataFrame,
) -> None:
    feats = compute_features(tx, AS_OF)
    if feats.empty:
        return
    assert (feats["recency_days"] >= 0).all()
    assert (feats["recency_days"] <= feats["tenure_days"]).all()
    assert (feats["max_gap_days"] >= 0).all()
    shares = [c for c in FEATURE_NAMES if c.startswith("share_")]
    assert ((feats[shares] >= 0) & (feats[shares] <= 1 + 1e-12)).all().all()
    assert np.isfinite(feats.to_numpy()).all()


def test_known_customer_by_hand() -> None:
    tx = pd.DataFrame(
        {
            "customer_id": ["A", "A", "A", "A"],
            "transaction_start_time": pd.to_datetime(
                ["2019-01-01T10:00:00Z", "2019-01-05T10:00:00Z", "2019-01-05T10:00:05Z",
                 "2019-01-15T00:00:00Z"], utc=True),
            "amount": [1000.0, 3000.0, -50.0, 99999.0],
            "product_category": ["airtime", "utility_bill", "financial_services", "airtime"],
            "channel_id": ["ChannelId_3", "ChannelId_3", "ChannelId_2", "ChannelId_3"],
            "provider_id": ["ProviderId_6", "ProviderId_5", "ProviderId_4", "ProviderId_6"],
            "product_id": ["ProductId_10", "ProductId_3", "ProductId_6", "ProductId_10"],
            "pricing_strategy": [2, 2, 4, 2],
            "fraud_result": [0, 0, 0, 1],
        }
    )
    f = compute_features(tx, AS_OF).loc["A"]
    assert f["frequency"] == 3  # the row at midnight of the as-of date is excluded
    assert f["fraud_count"] == 0
    assert f["monetary_total"] == 4000
    assert f["monetary_mean"] == 2000
    assert f["credit_total"] == 50
    assert f["recency_days"] == pytest.approx(9 + 14 / 24 - 5 / 86400)
    assert f["tenure_days"] == pytest.approx(13 + 14 / 24)
    assert f["mean_gap_days"] == pytest.approx(4.0)
    assert f["active_days"] == 2
    assert f["share_airtime"] == pytest.approx(1 / 3)
    assert f["n_providers"] == 3
    assert f["share_pricing_4"] == pytest.approx(1 / 3)


def test_catalogue_describes_every_feature_once() -> None:
    names = [f.name for f in CATALOGUE]
    assert len(names) == len(set(names)) >= 20
    for f in CATALOGUE:
        assert f.meaning and f.unit and f.reason


def test_no_history_gives_no_rows() -> None:
    tx = pd.DataFrame(
        {"customer_id": ["A"], "transaction_start_time": [CUTOFF], "amount": [1.0],
         "product_category": ["airtime"], "channel_id": ["ChannelId_3"],
         "provider_id": ["ProviderId_6"], "product_id": ["ProductId_1"],
         "pricing_strategy": [2], "fraud_result": [0]}
    )
    assert compute_features(tx, AS_OF).empty


def test_docs_render_the_catalogue() -> None:
    from pathlib import Path

    from creditrisk.catalogue import catalogue_markdown

    data_doc = (Path(__file__).resolve().parents[2] / "docs" / "data.md").read_text()
    start = data_doc.index("<!-- catalogue:start -->") + len("<!-- catalogue:start -->")
    end = data_doc.index("<!-- catalogue:end -->")
    assert data_doc[start:end].strip() == catalogue_markdown(), (
        "docs/data.md's feature table is stale: paste `creditrisk catalogue` between the markers"
    )
