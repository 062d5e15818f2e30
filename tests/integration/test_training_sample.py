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
