"""Evaluation metrics, stability, slices, fairness, plots and the model card."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditrisk.catalogue import CATALOGUE, FEATURE_NAMES
from creditrisk.errors import InputError
from creditrisk.evaluation.metrics import (
    best_f1_threshold,
    calibration_fit,
    classification_metrics,
    expected_calibration_error,
    ks_statistic,
)
from creditrisk.evaluation.model_card import model_card
from creditrisk.evaluation.plots import plot_artifacts
from creditrisk.evaluation.slices import fairness_report, slice_metrics
from creditrisk.evaluation.stability import psi, psi_table

METRIC_KEYS = {
    "n", "bad_rate", "roc_auc", "gini", "ks", "pr_auc", "precision", "recall", "f1",
    "brier", "log_loss", "ece", "calibration_slope", "calibration_intercept", "threshold",
}
BASE_PLOTS = ["roc.png", "precision_recall.png", "calibration.png", "ks.png",
              "score_distribution.png", "confusion_matrix.png"]


def calibrated_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """PDs uniform on [0, 1] and labels drawn from exactly those PDs."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n)
    return (rng.uniform(0, 1, n) < p).astype(int), p


def brute_force_ks(y: np.ndarray, p: np.ndarray) -> float:
    bad, good = p[y == 1], p[y == 0]
    return max(abs((bad >= t).mean() - (good >= t).mean()) for t in np.unique(p))


def feature_frame(rows: list[dict[str, float]]) -> pd.DataFrame:
    """Feature rows with every catalogue column: zeros unless given."""
    return pd.DataFrame([{name: r.get(name, 0.0) for name in FEATURE_NAMES} for r in rows])


# --------------------------------------------------------------------------- metrics


def test_perfect_separation() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    p = np.array([0.05, 0.1, 0.2, 0.3, 0.7, 0.8, 0.95])
    m = classification_metrics(y, p, threshold=0.5)
    assert set(m) == METRIC_KEYS
    assert m["roc_auc"] == 1.0 and m["gini"] == 1.0 and m["ks"] == 1.0
    assert m["pr_auc"] == 1.0
    assert m["precision"] == m["recall"] == m["f1"] == 1.0
    assert m["n"] == 7 and m["bad_rate"] == pytest.approx(3 / 7)
    # no maximum-likelihood calibration fit exists under perfect separation
    assert math.isnan(m["calibration_slope"])
    ks, at = ks_statistic(y, p)
    assert ks == 1.0 and 0.3 < at <= 0.7


def test_random_scores_have_auc_near_half() -> None:
    rng = np.random.default_rng(7)
    y = rng.uniform(size=20_000) < 0.2
    m = classification_metrics(y, rng.uniform(size=20_000), threshold=0.5)
    assert m["roc_auc"] == pytest.approx(0.5, abs=0.02)
    assert m["ks"] < 0.05
    assert m["pr_auc"] == pytest.approx(0.2, abs=0.02)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ks_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=400) < 0.3).astype(int)
    # ties included: scores rounded to two places
    p = np.round(np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1), 2)
    ks, at = ks_statistic(y, p)
    assert ks == pytest.approx(brute_force_ks(y, p))
    assert abs((p[y == 1] >= at).mean() - (p[y == 0] >= at).mean()) == pytest.approx(ks)
    assert classification_metrics(y, p, 0.5)["ks"] == pytest.approx(ks)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 1)), min_size=2, max_size=60))
def test_metric_invariants(rows: list[tuple[bool, float]]) -> None:
    y = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows])
    m = classification_metrics(y, p, threshold=0.5)
    if 0 < y.sum() < len(y):
        assert m["gini"] == pytest.approx(2 * m["roc_auc"] - 1)
        assert 0.0 <= m["ks"] <= 1.0
        assert m["ks"] == pytest.approx(brute_force_ks(y.astype(int), p))
    else:
        assert math.isnan(m["roc_auc"]) and math.isnan(m["ks"])
    assert 0.0 <= m["ece"] <= 1.0
    assert 0.0 <= m["brier"] <= 1.0
    assert psi(p, p) == pytest.approx(0.0, abs=1e-12)


def test_one_class_gives_nan_not_an_exception() -> None:
    p = np.array([0.1, 0.2, 0.6, 0.9])
    for y in (np.zeros(4, dtype=bool), np.ones(4, dtype=bool)):
        m = classification_metrics(y, p, threshold=0.5)
        for key in ("roc_auc", "gini", "ks", "pr_auc", "calibration_slope",
                    "calibration_intercept"):
            assert math.isnan(m[key]), key
        assert math.isfinite(m["brier"]) and math.isfinite(m["log_loss"])
        assert all(math.isnan(v) for v in ks_statistic(y, p))
    assert best_f1_threshold(np.zeros(4), p) == 0.5


def test_log_loss_clips_hard_mistakes() -> None:
    m = classification_metrics([1, 0], [0.0, 1.0], threshold=0.5)
    assert math.isfinite(m["log_loss"]) and m["log_loss"] > 30
    assert m["brier"] == 1.0 and m["f1"] == 0.0 and m["precision"] == 0.0


def test_bad_input_is_refused() -> None:
    with pytest.raises(InputError):
        classification_metrics([0, 1, 1], [0.1, 0.2], threshold=0.5)
    with pytest.raises(InputError):
        classification_metrics([0, 2], [0.1, 0.2], threshold=0.5)
    with pytest.raises(InputError):
        classification_metrics([0, 1], [0.1, 1.2], threshold=0.5)
    with pytest.raises(InputError):
        classification_metrics([0, 1], [0.1, float("nan")], threshold=0.5)


def test_ece_small_when_calibrated_large_when_not() -> None:
    y, p = calibrated_sample(20_000, seed=3)
    assert expected_calibration_error(y, p) < 0.02
    # the same PDs against labels drawn from half of them: over-predicting by p/2
    rng = np.random.default_rng(4)
    y_half = (rng.uniform(size=len(p)) < p / 2).astype(int)
    assert expected_calibration_error(y_half, p) == pytest.approx(0.25, abs=0.02)
    assert classification_metrics(y, p, 0.5)["ece"] == expected_calibration_error(y, p)


def test_calibration_slope_and_intercept() -> None:
    y, p = calibrated_sample(20_000, seed=5)
    slope, intercept = calibration_fit(y, p)
    assert slope == pytest.approx(1.0, abs=0.08)
    assert intercept == pytest.approx(0.0, abs=0.08)
    # over-confident PDs: logit doubled → slope about 1/2
    logit = np.log(p / (1 - p))
    p_sharp = 1 / (1 + np.exp(-2 * logit))
    slope_sharp, _ = calibration_fit(y, p_sharp)
    assert slope_sharp == pytest.approx(0.5, abs=0.05)
    assert all(math.isnan(v) for v in calibration_fit(y, np.full(len(y), 0.3)))


def test_best_f1_threshold_beats_half_on_a_skewed_sample() -> None:
    rng = np.random.default_rng(11)
    n = 10_000
    y = (rng.uniform(size=n) < 0.05).astype(int)
    # weakly informative, calibrated-ish scores: PDs rarely reach 0.5
    p = np.clip(rng.beta(2, 30, n) + 0.12 * y * rng.uniform(size=n), 0, 1)
    t = best_f1_threshold(y, p)
    assert t < 0.5
    f1_best = classification_metrics(y, p, t)["f1"]
    assert f1_best > classification_metrics(y, p, 0.5)["f1"] + 0.1
    # no other observed threshold does better
    grid = np.quantile(p, np.linspace(0.5, 0.999, 60))
    assert all(classification_metrics(y, p, g)["f1"] <= f1_best + 1e-12 for g in grid)


# --------------------------------------------------------------------------- stability


def test_psi_identical_and_shifted() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(0, 1, 5_000)
    assert psi(base, base) == pytest.approx(0.0, abs=1e-12)
    assert psi(base, rng.normal(0, 1, 5_000)) < 0.02
    assert psi(base, rng.normal(1, 1, 5_000)) > 0.25


def test_psi_table_bins_and_constant_inputs() -> None:
    rng = np.random.default_rng(3)
    base = rng.uniform(size=1_000)
    table = psi_table(base, base, bins=10)
    assert len(table) == 10
    assert table["expected_count"].sum() == 1_000
    assert table["expected_share"].to_numpy() == pytest.approx(np.full(10, 0.1), abs=0.002)
    assert table["lower"].iloc[0] == -np.inf and table["upper"].iloc[-1] == np.inf
    assert psi(base, base + 10) == pytest.approx(float(psi_table(base, base + 10)["psi"].sum()))
    # constant reference: identical gives 0, a move away is caught
    assert psi(np.full(50, 3.0), np.full(80, 3.0)) == 0.0
    assert psi(np.full(50, 3.0), np.full(80, 4.0)) > 1.0
    # an empty bin is smoothed, not infinite
    assert math.isfinite(psi(base, np.full(100, 0.5)))
    with pytest.raises(InputError):
        psi([], [1.0])


# --------------------------------------------------------------------------- slices


def test_slice_metrics_segments_and_counts() -> None:
    features = feature_frame([
        # thin, airtime, pay later
        {"frequency": 2, "share_airtime": 0.8, "share_channel_pay_later": 0.6},
        {"frequency": 3, "share_airtime": 0.5, "share_other_categories": 0.5,
         "share_channel_pay_later": 0.5},
        # thick, financial services, web
        {"frequency": 10, "share_financial_services": 0.7, "share_channel_web": 0.9},
        {"frequency": 4, "share_financial_services": 0.6, "share_channel_web": 0.5},
        # thick, utility bill, other/mobile
        {"frequency": 20, "share_utility_bill": 0.9, "share_channel_web": 0.4},
        # thick, other, other/mobile
        {"frequency": 5, "share_other_categories": 0.9},
    ])
    y = np.array([1, 0, 0, 1, 0, 1])
    p = np.array([0.9, 0.2, 0.1, 0.8, 0.3, 0.6])
    table = slice_metrics(features, y, p)
    assert list(table.columns) == ["slice", "segment", "n", "bad_rate", "mean_pd", "roc_auc"]
    got = {(r.slice, r.segment): r for r in table.itertuples()}
    assert {k: int(r.n) for k, r in got.items()} == {
        ("overall", "all"): 6,
        ("thin_file", "thin"): 2, ("thin_file", "thick"): 4,
        ("dominant_category", "airtime"): 2, ("dominant_category", "financial_services"): 2,
        ("dominant_category", "utility_bill"): 1, ("dominant_category", "other"): 1,
        ("channel", "pay_later"): 2, ("channel", "web"): 2, ("channel", "other/mobile"): 2,
    }
    assert got[("thin_file", "thin")].bad_rate == 0.5
    assert got[("thin_file", "thin")].mean_pd == pytest.approx(0.55)
    assert got[("thin_file", "thin")].roc_auc == 1.0
    assert got[("overall", "all")].roc_auc == 1.0
    assert math.isnan(got[("dominant_category", "utility_bill")].roc_auc)
    with pytest.raises(InputError):
        slice_metrics(features.drop(columns=["frequency"]), y, p)


# --------------------------------------------------------------------------- fairness


def test_fairness_four_fifths_fails_at_point_nine_versus_point_six() -> None:
    # 100 web customers approved at 0.9, 100 pay-later at 0.6, 10 others all declined
    rows = ([{"share_channel_web": 1.0}] * 100 + [{"share_channel_pay_later": 1.0}] * 100
            + [{"share_platform_provider": 1.0}] * 10)
    features = feature_frame(rows)
    p = np.concatenate([np.r_[np.full(90, 0.1), np.full(10, 0.9)],
                        np.r_[np.full(60, 0.1), np.full(40, 0.9)],
                        np.full(10, 0.9)])
    report = fairness_report(features, p, approve_below=0.5)
    channel = report["segmentations"]["channel"]
    assert channel["segments"]["web"] == {"n": 100, "approved": 90, "approval_rate": 0.9,
                                          "included": True}
    assert channel["segments"]["pay_later"]["approval_rate"] == 0.6
    # the 10 other/mobile customers (approval 0) are shown but not compared
    assert channel["segments"]["other/mobile"] == {"n": 10, "approved": 0,
                                                   "approval_rate": 0.0, "included": False}
    assert channel["ratio"] == pytest.approx(0.6667, abs=1e-4)
    assert (channel["lowest"], channel["highest"]) == ("pay_later", "web")
    assert channel["passes_four_fifths"] is False
    # provider: 200 merchant vs 10 platform-heavy: one comparable segment only
    provider = report["segmentations"]["provider"]
    assert provider["assessed"] is False and provider["passes_four_fifths"] is True
    assert report["passes_four_fifths"] is False
    assert report["overall_approval_rate"] == pytest.approx(150 / 210)


def test_fairness_passes_when_rates_are_close() -> None:
    features = feature_frame([{"share_platform_provider": 1.0}] * 50 + [{}] * 50)
    p = np.r_[np.full(40, 0.1), np.full(10, 0.9), np.full(45, 0.1), np.full(5, 0.9)]
    report = fairness_report(features, p, approve_below=0.5)
    provider = report["segmentations"]["provider"]
    assert provider["ratio"] == pytest.approx(0.8 / 0.9)
    assert provider["passes_four_fifths"] is True and report["passes_four_fifths"] is True


# --------------------------------------------------------------------------- plots


def test_plot_artifacts_writes_every_png(tmp_path: Path) -> None:
    y, p = calibrated_sample(500, seed=8)
    rng = np.random.default_rng(8)
    names = list(FEATURE_NAMES[:25])
    importance = pd.Series(rng.normal(size=25), index=names)
    shap_values = pd.DataFrame(rng.normal(size=(500, 25)), columns=names)
    feature_values = pd.DataFrame(rng.uniform(size=(500, 25)), columns=names)
    written = plot_artifacts(y, p, tmp_path / "plots", threshold=0.4, importance=importance,
                             importance_kind="coefficient", shap_values=shap_values,
                             feature_values=feature_values)
    expected = [*BASE_PLOTS, "feature_importance.png", "shap_summary.png"]
    assert [w.name for w in written] == expected
    for path in written:
        assert path.parent == tmp_path / "plots"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1_000


def test_plot_artifacts_skips_missing_inputs_and_survives_one_class(tmp_path: Path) -> None:
    written = plot_artifacts(np.zeros(20), np.linspace(0, 1, 20), tmp_path, threshold=0.5)
    assert [w.name for w in written] == BASE_PLOTS
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(BASE_PLOTS)


# --------------------------------------------------------------------------- model card


def test_model_card_has_every_section_and_the_numbers() -> None:
    y, p = calibrated_sample(400, seed=9)
    rng = np.random.default_rng(9)
    features = pd.DataFrame(rng.uniform(size=(400, len(FEATURE_NAMES))), columns=FEATURE_NAMES)
    features["frequency"] = rng.integers(1, 20, 400)
    test_metrics = classification_metrics(y, p, 0.5)
    card = model_card({
        "model_name": "credit-risk-pd",
        "version": None,
        "candidate": "logistic_regression",
        "run_id": "abc123",
        "as_of": "2019-02-13",
        "data": {"rows": 400, "customers": 350, "label_strategy": "forward_window",
                 "horizon_days": 30, "test_dates": "2019-01-07..2019-01-07"},
        "label_definition": "Bad when silent, fraudulent or least engaged in 30 days.",
        "metrics": {"validation": classification_metrics(y[:200], p[:200], 0.5),
                    "test": test_metrics},
        "promotion_floors": {"min_roc_auc": 0.7, "max_ece": 0.1,
                             "calibration_slope": [0.7, 1.3]},
        "slices": slice_metrics(features, y, p),
        "fairness": fairness_report(features, p, approve_below=0.5),
        "stability": {"score_psi_train_vs_test": 0.0312},
        "features": CATALOGUE,
    })
    for header in ("# Model card: credit-risk-pd", "## Purpose", "## Intended use", "## Data",
                   "## Label and its limits", "## Metrics", "### validation", "### test",
                   "## Slices", "## Fairness", "## Stability", "## Features", "## Caveats"):
        assert header in card, header
    assert f"| roc_auc | {round(test_metrics['roc_auc'], 4)} |" in card
    assert "not registered yet" in card
    assert "| score_psi_train_vs_test | 0.0312 | stable |" in card
    assert "| recency_days | Days from the last transaction to the as-of date | days |" in card
    assert "behavioural proxy, not a repayment outcome" in card
    assert "REVIEW band" in card
    assert "| thin_file |" in card and "### channel" in card


def test_model_card_tolerates_an_almost_empty_info() -> None:
    card = model_card({"model_name": "m", "version": 3,
                       "metrics": {"test": {"roc_auc": float("nan"), "n": 10.0}},
                       "features": [("frequency", "Transactions | all", "count")]})
    assert card.startswith("# Model card: m v3")
    assert "| roc_auc | n/a |" in card and "| n | 10 |" in card
    assert "Transactions \\| all" in card
    for header in ("## Slices", "## Fairness", "## Stability", "## Caveats"):
        assert header in card


def test_one_psi_sees_a_mostly_zero_feature_change_in_training_and_monitoring() -> None:
    """0.5% -> 20% non-zero is a big shift for the stored-reference path too (it was 0.00)."""
    from creditrisk.evaluation.stability import psi_against, reference_bins
    from creditrisk.scoring.monitoring import monitoring_row

    rng = np.random.default_rng(7)
    n = 20_000
    before = np.where(rng.random(n) < 0.005, rng.exponential(3.0, n), 0.0)
    after = np.where(rng.random(n) < 0.20, rng.exponential(3.0, n), 0.0)
    assert psi(before, after) > 0.25
    assert psi_against(reference_bins(before), after) == pytest.approx(psi(before, after))
    assert psi_against(reference_bins(before), before) == pytest.approx(0.0, abs=1e-12)
    # ties on every edge (integer counts) and identical samples: exactly zero
    counts = rng.poisson(2.0, n).astype(float)
    assert psi(counts, counts) == pytest.approx(0.0, abs=1e-12)
    ref = {"pd": reference_bins(before), "features": {"x": reference_bins(before)}}
    row = monitoring_row(before, np.array(["A"] * n), np.array(["APPROVE"] * n),
                         pd.DataFrame({"x": after}), ref, threshold=0.25)
    assert row["psi_features"]["x"] > 0.25 and row["psi_alert"]
