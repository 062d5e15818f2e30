"""The credible-PD machinery: worlds, population, label report, out-of-time design,
calibration, bootstrap, scorecard binning and the benchmark ladder. In memory, no
database; a few seconds."""

from __future__ import annotations

import datetime as dt
import pickle

import numpy as np
import pandas as pd
import pytest

from creditrisk.errors import InputError
from creditrisk.evaluation import bootstrap as bs
from creditrisk.features.compute import compute_features
from creditrisk.features.label_report import cohen_kappa, label_sensitivity, purchase_labels
from creditrisk.features.population import (
    eligible,
    policy_segments,
    purchase_mask,
    segment,
)
from creditrisk.landing.simulate import generate_transactions
from creditrisk.landing.worlds import read_customer_sequence, to_warehouse
from creditrisk.model import design as oot
from creditrisk.model.calibration import choose_calibration
from creditrisk.model.ladder import climb
from creditrisk.model.pipeline import make_pipeline
from creditrisk.model.scorecard import WoEBinner
from creditrisk.schema import XENTE_COLUMNS
from tests.paths import CUSTOMER_SEQUENCE

END = dt.date(2019, 2, 13)


@pytest.fixture(scope="module")
def xente_small() -> pd.DataFrame:
    return generate_transactions(customers=300, days=90, end_date=END, seed=5, world="xente",
                                 sequence_path=CUSTOMER_SEQUENCE)


def test_xente_world_keeps_real_counts_and_order(xente_small: pd.DataFrame) -> None:
    assert tuple(xente_small.columns) == XENTE_COLUMNS
    seq = pd.Series(read_customer_sequence(CUSTOMER_SEQUENCE))
    real = seq.value_counts()
    tx = to_warehouse(xente_small)
    bought = tx[purchase_mask(tx) | (tx["channel_id"] == "ChannelId_5")]
    # each real row is one purchase (pay-later rows included): the real count per customer
    got = bought.groupby("customer_id").size()
    assert len(got) == 300
    assert (got == real.reindex(got.index)).all()
    again = generate_transactions(customers=300, days=90, end_date=END, seed=5,
                                  world="xente", sequence_path=CUSTOMER_SEQUENCE)
    pd.testing.assert_frame_equal(xente_small, again)


def test_xente_world_needs_the_sequence() -> None:
    with pytest.raises(InputError):
        generate_transactions(customers=10, days=90, end_date=END, world="xente")
    with pytest.raises(InputError):
        generate_transactions(customers=10, days=90, end_date=END, world="nope")


def test_null_world_has_one_rate_and_no_fraud() -> None:
    df = generate_transactions(customers=2000, days=90, end_date=END, seed=1, world="null")
    tx = to_warehouse(df)
    assert df["FraudResult"].sum() == 0
    counts = tx[purchase_mask(tx)].groupby("customer_id").size()
    # Poisson(0.05 x 90 = 4.5), thinned by pay-later, conditioned on >= 1: mean ~4-5
    assert 3.5 < counts.mean() < 5.5


def test_eligible_and_segments(xente_small: pd.DataFrame) -> None:
    tx = to_warehouse(xente_small)
    as_of = dt.date(2019, 1, 20)
    ok = eligible(tx, as_of, 30)
    feats = compute_features(tx, as_of)
    assert list(ok) == list(eligible(feats, as_of, 30))
    seg = policy_segments(tx, feats.index, as_of, 30)
    assert set(seg.unique()) <= {"scored", "dormant", "thin_file"}
    assert (seg == "scored").sum() == len(ok)
    # the platform's segment (feature rows in) agrees with the transaction-level one
    assert (pd.Series(segment(feats, 30), index=feats.index)[seg.index] == "scored").sum() \
        == len(ok)


def test_window_features_mean_the_same_at_any_history_length(xente_small: pd.DataFrame) -> None:
    tx = to_warehouse(xente_small)
    feats = compute_features(tx, dt.date(2019, 1, 20))
    assert (feats["purchases_7d"] <= feats["purchases_30d"]).all()
    assert (feats["active_days_30d"] <= 31).all() and (feats["n_products_30d"] >= 0).all()
    assert (feats["purchase_recency_days"] >= feats["recency_days"] - 1e-9).all()
    # dropping history older than 31 days changes no windowed feature
    cut = pd.Timestamp("2018-12-19", tz="UTC")
    recent = compute_features(tx[pd.to_datetime(tx["transaction_start_time"]) >= cut],
                              dt.date(2019, 1, 20))
    cols = ["purchases_7d", "purchases_30d", "spend_7d", "active_days_30d", "n_products_30d"]
    both = feats.index.intersection(recent.index)
    pd.testing.assert_frame_equal(feats.loc[both, cols], recent.loc[both, cols])


def test_label_sensitivity_table(xente_small: pd.DataFrame) -> None:
    tx = to_warehouse(xente_small)
    table = label_sensitivity(tx, dt.date(2018, 12, 31), horizons=(14, 30), variants=("silence",))
    assert set(table["population"]) == {"all", "eligible"}
    ref = table[(table["horizon"] == 30) & (table["variant"] == "silence")]
    assert np.allclose(ref["kappa_vs_ref"], 1.0)
    longer = purchase_labels(tx, pd.Index(tx["customer_id"].unique()), dt.date(2018, 12, 31), 30)
    shorter = purchase_labels(tx, longer.index, dt.date(2018, 12, 31), 14)
    assert (longer <= shorter).all()  # silent for 30 days implies silent for 14


def test_cohen_kappa() -> None:
    a = np.array([1, 1, 0, 0], dtype=bool)
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa(a, ~a) == -1.0


def test_oot_design_is_honest() -> None:
    first, last = dt.date(2018, 11, 16), dt.date(2019, 2, 13)
    d = oot.design(first, last, 14)
    assert d.eval_date == dt.date(2019, 1, 31)
    assert all(t + dt.timedelta(days=14) <= d.eval_date for t in d.train_dates)
    with pytest.raises(InputError):
        oot.design(first, last, 45)
    table = oot.feasible_horizons(90)
    assert table.set_index("horizon").loc[30, "n_train_snapshots"] == 2
    parts = oot.customer_part(pd.Index([f"C{i}" for i in range(3000)]), d.shares)
    assert set(parts) == set(oot.EVAL_PARTS)
    assert abs(np.mean(parts == "test") - d.shares["test"]) < 0.05


def test_bootstrap_intervals_cluster_by_customer() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(600)
    y = (rng.random(600) < p).astype(int)
    clusters = np.repeat(np.arange(200), 3)
    ci = bs.bootstrap_ci(bs.auc, y, p, clusters, n=200, seed=1)
    assert ci.lo < ci.estimate < ci.hi and ci.n_boot == 200
    same = bs.paired_bootstrap_diff(bs.auc, y, p, p, clusters, n=50)
    assert same.estimate == same.lo == same.hi == 0.0
    noise = bs.bootstrap_ci(bs.auc, y, rng.random(600), clusters, n=200, seed=1)
    assert noise.lo < 0.5 < noise.hi
    assert 0 < bs.ece_noise_floor(p, n_sim=50)[0] < 0.1


def _toy_parts(n: int, seed: int) -> dict[str, pd.DataFrame]:
    """Catalogue-named columns: a real signal in purchase_recency_days, noise elsewhere."""
    from creditrisk.catalogue import FEATURE_NAMES

    rng = np.random.default_rng(seed)
    out = {}
    for k, m in {"train": n, "calibration": n // 2, "validation": n // 2}.items():
        x = pd.DataFrame(rng.gamma(2.0, 3.0, size=(m, len(FEATURE_NAMES))),
                         columns=list(FEATURE_NAMES))
        logit = 0.4 * x["purchase_recency_days"] - 2.0
        x["is_high_risk"] = (rng.random(m) < 1 / (1 + np.exp(-logit))).astype(int)
        out[k] = x.assign(customer_id=[f"{k}{i}" for i in range(m)])
    return out


def test_calibration_corrects_balanced_weights_and_stays_one_pipeline() -> None:
    parts = _toy_parts(3000, 3)
    tr, cal, val = parts["train"], parts["calibration"], parts["validation"]
    cols = ["purchase_recency_days", "purchases_30d"]
    fitted = make_pipeline("logistic_regression", cols, {"class_weight": "balanced"}).fit(
        tr, tr["is_high_risk"])
    choice = choose_calibration(fitted, cal, cal["is_high_risk"].to_numpy(),
                                val, val["is_high_risk"].to_numpy())
    assert choice.method in {"sigmoid", "isotonic"}
    est = pickle.loads(pickle.dumps(choice.pipeline))
    assert type(est).__name__ == "Pipeline" and list(est.named_steps)[0] == "select"
    p = est.predict_proba(val)[:, 1]
    y = val["is_high_risk"].mean()
    assert abs(p.mean() - y) < 0.03  # balanced weights corrected
    raw = fitted.predict_proba(val)[:, 1]
    assert abs(raw.mean() - y) > abs(p.mean() - y)


def test_woe_binner_is_monotone_with_a_minimum_bin_size() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3000, 1))
    y = (rng.random(3000) < 1 / (1 + np.exp(-2 * x[:, 0]))).astype(int)
    woe = WoEBinner(min_bin_share=0.1).fit(x, y)
    assert np.all(np.diff(woe.woe_[0]) >= 0)
    b = np.searchsorted(woe.edges_[0], x[:, 0], side="right")
    assert np.bincount(b).min() >= 0.1 * len(x)
    assert np.isfinite(woe.transform(np.array([[-10.0], [10.0]]))).all()


def test_ladder_keeps_the_simple_rung_without_evidence() -> None:
    parts = _toy_parts(1500, 6)
    rungs = {"recency": {"columns": ["purchase_recency_days"]},
             "logistic_regression": {"columns": ["purchase_recency_days", "purchases_7d",
                                                 "spend_7d", "monetary_mean"]}}
    selected, results = climb(rungs, parts, n_boot=100)
    assert [r.name for r in results] == ["recency", "logistic_regression"]
    assert selected.name == "recency"  # the other columns are noise: no significant gain
    assert results[1].gain is not None and results[1].gain.lo <= 0
