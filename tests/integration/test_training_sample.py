"""Bounded training sets: ``max_training_rows`` reads whole customers, the same on every
snapshot, so memory stays bounded however many customers the warehouse holds."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from creditrisk.catalogue import FEATURE_NAMES
from creditrisk.model.dataset import sample_share
from creditrisk.storage import features as store
from creditrisk.storage.db import make_engine

DATES = [dt.date(2019, 1, 10), dt.date(2019, 1, 13)]
N = 2_000


def _store_snapshots(url: str) -> None:
    engine = make_engine(url)
    rng = np.random.default_rng(3)
    ids = pd.Index([f"CustomerId_{i}" for i in range(N)], name="customer_id")
    try:
        for t in DATES:
            feats = pd.DataFrame(rng.random((N, len(FEATURE_NAMES))), index=ids,
                                 columns=list(FEATURE_NAMES))
            store.replace_features(engine, t, feats, "sample-test")
            labels = pd.DataFrame({"is_high_risk": rng.random(N) < 0.3,
                                   "window_start": t, "window_end": t + dt.timedelta(days=14)},
                                  index=ids)
            store.replace_labels(engine, t, "forward_window", labels, {"test": True},
                                 "sample-test")
    finally:
        engine.dispose()


def test_a_capped_training_set_keeps_whole_customers_on_every_snapshot(db_url: str) -> None:
    _store_snapshots(db_url)
    engine = make_engine(db_url)
    try:
        assert store.count_training_rows(engine, DATES, "forward_window") == 2 * N
        assert sample_share(engine, DATES, "forward_window", {}) == 1.0
        assert sample_share(engine, DATES, "forward_window",
                            {"max_training_rows": 10 * N}) == 1.0
        share = sample_share(engine, DATES, "forward_window", {"max_training_rows": N})
        full = store.read_training_rows(engine, DATES, "forward_window")
        part = store.read_training_rows(engine, DATES, "forward_window", share)
        again = store.read_training_rows(engine, DATES, "forward_window", share)
    finally:
        engine.dispose()
    assert share == 0.5
    assert len(full) == 2 * N
    # about half the rows, within a few standard deviations of a fair hash
    assert abs(len(part) - N) < 4 * np.sqrt(2 * N * 0.25) * 2
    by_date = part.groupby("as_of_date")["customer_id"].apply(frozenset)
    assert by_date.iloc[0] == by_date.iloc[1]  # the same customers on both snapshots
    pd.testing.assert_frame_equal(part, again)  # deterministic
    merged = part.merge(full, on=["customer_id", "as_of_date"], suffixes=("", "_full"))
    assert len(merged) == len(part)  # rows are read unchanged, only fewer of them
    assert (merged["is_high_risk"] == merged["is_high_risk_full"]).all()


def test_the_label_report_from_bounded_reads_equals_the_whole_history_one(
    db_url: str, tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    """Training's label-sensitivity report reads the customers' last purchase ages
    (aggregated in PostgreSQL) and the outcome windows only, never the history; on the
    whole history the report is the same, and a sample reads only its customers."""
    from creditrisk.features.label_report import label_sensitivity, sensitivity_table
    from creditrisk.features.population import last_purchase_age
    from tests.warehouse import load_generated

    end = dt.date(2019, 2, 13)
    load_generated(db_url, tmp_path, customers=400, days=75, end_date=end, seed=8)
    at, last = end - dt.timedelta(days=40), end
    engine = make_engine(db_url)
    try:
        history = store.load_transactions(engine, before=last + dt.timedelta(days=1))
        ages = store.last_purchase_ages(engine, at)
        window = store.load_transactions(engine, since=at, before=last + dt.timedelta(days=1))
        half_ages = store.last_purchase_ages(engine, at, 0.5)
        half_window = store.load_transactions(engine, since=at,
                                              before=last + dt.timedelta(days=1),
                                              sample_share=0.5)
    finally:
        engine.dispose()
    want = last_purchase_age(history, at)
    assert len(ages) > 150 and ages.notna().sum() == len(want)
    np.testing.assert_allclose(ages.dropna().sort_index().to_numpy(),
                               want.sort_index().to_numpy(), rtol=0, atol=1e-9)
    report = dict(horizons=(14, 30), lookback_days=30, reference=(14, "silence"))
    pd.testing.assert_frame_equal(sensitivity_table(window, at, ages, **report),
                                  label_sensitivity(history, at, **report))
    assert len(window) < len(history)  # no row before the report's date is read
    assert window["transaction_start_time"].min() >= pd.Timestamp(at.isoformat(), tz="UTC")
    sampled = set(half_window["customer_id"])
    assert sampled < set(window["customer_id"]) and set(half_ages.index) < set(ages.index)
    assert sampled & set(ages.index) <= set(half_ages.index)  # the same customers in both
    assert 0.3 < len(half_ages) / len(ages) < 0.7
