"""Customer-clustered bootstrap intervals for PD metrics.

A customer scored at several snapshots gives correlated rows, so the bootstrap resamples
*customers* with replacement and takes all their rows. Percentile intervals. Replicates
where the metric is undefined (one class drawn) are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from creditrisk.evaluation import metrics as ev

Metric = Callable[[np.ndarray, np.ndarray], float]


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC (NaN with one class)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def ks(y: np.ndarray, p: np.ndarray) -> float:
    """Kolmogorov-Smirnov statistic."""
    return ev.ks_statistic(y, p)[0]


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of the PD."""
    return float(np.mean((np.asarray(p, float) - np.asarray(y, float)) ** 2))


def ece(y: np.ndarray, p: np.ndarray) -> float:
    """ECE over 10 equal-width PD bins (``evaluation.expected_calibration_error``)."""
    return ev.expected_calibration_error(y, p)


def ece_decile(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE over PD deciles: equal-count bins of the sorted PDs, count-weighted
    ``|bad rate - mean PD|``."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    if not len(y):
        return float("nan")
    order = np.argsort(p, kind="stable")
    parts = np.array_split(order, min(bins, len(y)))
    return float(sum(abs(y[i].mean() - p[i].mean()) * len(i) for i in parts) / len(y))


def mean_gap(y: np.ndarray, p: np.ndarray) -> float:
    """Mean PD minus bad rate."""
    return float(np.mean(p) - np.mean(y))


def ece_noise_floor(p: npt.ArrayLike, n_sim: int = 500, seed: int = 0,
                    metric: Metric = ece_decile) -> tuple[float, float]:
    """Mean and 95th percentile of ``metric`` when the PDs ``p`` are exactly right.

    Outcomes are drawn as ``Bernoulli(p)``: the ECE a perfectly calibrated model still
    shows on this many rows. An ECE target below it cannot be verified at this size.
    """
    p = np.asarray(p, dtype=float)
    rng = np.random.default_rng(seed)
    sims = np.array([metric((rng.random(len(p)) < p).astype(float), p) for _ in range(n_sim)])
    return float(sims.mean()), float(np.quantile(sims, 0.95))


METRICS: dict[str, Metric] = {"auc": auc, "ks": ks, "brier": brier, "ece": ece,
                              "ece_decile": ece_decile, "mean_gap": mean_gap}


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval."""

    estimate: float
    lo: float
    hi: float
    n_boot: int


def _cluster_index(clusters: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    codes, _ = pd.factorize(pd.Series(np.asarray(clusters)), sort=False)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return order, starts, sizes


def _replicate_rows(rng: np.random.Generator, order: np.ndarray, starts: np.ndarray,
                    sizes: np.ndarray) -> np.ndarray:
    pick = rng.integers(0, len(sizes), len(sizes))
    lens = sizes[pick]
    offsets = np.repeat(starts[pick] - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    return order[np.arange(lens.sum()) + offsets]


def bootstrap_ci(
    metric_fn: Metric, y: npt.ArrayLike, p: npt.ArrayLike, clusters: npt.ArrayLike,
    n: int = 1000, seed: int = 0, level: float = 0.95,
) -> Interval:
    """Percentile interval of ``metric_fn(y, p)`` resampling whole clusters (customers)."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    order, starts, sizes = _cluster_index(clusters)
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n):
        rows = _replicate_rows(rng, order, starts, sizes)
        stats.append(metric_fn(y[rows], p[rows]))
    arr = np.asarray(stats, dtype=float)
    arr = arr[np.isfinite(arr)]
    a = (1 - level) / 2
    lo, hi = (np.quantile(arr, [a, 1 - a]) if len(arr) else (np.nan, np.nan))
    return Interval(metric_fn(y, p), float(lo), float(hi), len(arr))


def paired_bootstrap_diff(
    metric_fn: Metric, y: npt.ArrayLike, p_a: npt.ArrayLike, p_b: npt.ArrayLike,
    clusters: npt.ArrayLike, n: int = 1000, seed: int = 0, level: float = 0.95,
) -> Interval:
    """``metric(y, p_a) - metric(y, p_b)`` and its interval, both scored on the same
    resampled customers in every replicate."""
    y = np.asarray(y, dtype=float)
    pa, pb = np.asarray(p_a, dtype=float), np.asarray(p_b, dtype=float)
    order, starts, sizes = _cluster_index(clusters)
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n):
        rows = _replicate_rows(rng, order, starts, sizes)
        stats.append(metric_fn(y[rows], pa[rows]) - metric_fn(y[rows], pb[rows]))
    arr = np.asarray(stats, dtype=float)
    arr = arr[np.isfinite(arr)]
    a = (1 - level) / 2
    lo, hi = (np.quantile(arr, [a, 1 - a]) if len(arr) else (np.nan, np.nan))
    return Interval(metric_fn(y, pa) - metric_fn(y, pb), float(lo), float(hi), len(arr))
