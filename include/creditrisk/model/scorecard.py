"""A weight-of-evidence scorecard's binning, as an sklearn transformer.

Each feature is cut at its training quantiles; bins are merged until the bad rate is
monotone in the feature (the direction of its overall trend) and until every bin holds at
least ``min_bin_share`` of the rows; each bin is then replaced by its weight of evidence,
``ln(share of bads / share of goods)``, smoothed. A logistic regression on the WoE values
is the classic credit scorecard. It stands in for optbinning's ``BinningProcess``
(monotonic trends, minimum bin sizes), whose ``ortools`` dependency needs
``protobuf<6.34`` while the platform pins ``protobuf==7.36.2``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class WoEBinner(BaseEstimator, TransformerMixin):
    """Quantile bins, merged to a monotone bad rate, replaced by weight of evidence."""

    def __init__(self, n_bins: int = 10, min_bin_share: float = 0.05,
                 smoothing: float = 0.5) -> None:
        self.n_bins = n_bins
        self.min_bin_share = min_bin_share
        self.smoothing = smoothing

    def fit(self, X: Any, y: Any) -> WoEBinner:
        x, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
        self.edges_, self.woe_ = [], []
        for j in range(x.shape[1]):
            edges, woe = self._fit_column(x[:, j], y)
            self.edges_.append(edges)
            self.woe_.append(woe)
        self.n_features_in_ = x.shape[1]
        return self

    def _fit_column(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        edges = list(np.unique(np.quantile(x, np.linspace(0, 1, self.n_bins + 1))[1:-1]))
        b = np.searchsorted(np.asarray(edges), x, side="right")
        n = list(np.bincount(b, minlength=len(edges) + 1).astype(float))
        bad = list(np.bincount(b, weights=y, minlength=len(edges) + 1))
        i = 0
        while i < len(n) and len(n) > 1:  # fold empty bins into a neighbour
            if n[i] == 0:
                j = i + 1 if i + 1 < len(n) else i - 1
                n_i, bad_i = n.pop(i), bad.pop(i)
                n[min(i, j)] += n_i  # after the pop, the neighbour sits at min(i, j)
                bad[min(i, j)] += bad_i
                edges.pop(min(i, j))
            else:
                i += 1
        rate = np.asarray(bad) / np.asarray(n)
        trend = np.corrcoef(np.arange(len(rate)), rate)[0, 1] if len(rate) > 2 else 1.0
        sign = -1.0 if trend < 0 else 1.0
        edges, n, bad = _monotone_merge(edges, n, bad, sign)
        edges, n, bad = _small_merge(edges, n, bad, self.min_bin_share * len(x))
        good = np.asarray(n) - np.asarray(bad)
        s = self.smoothing
        woe = np.log(((np.asarray(bad) + s) / (y.sum() + s)) / ((good + s) / ((1 - y).sum() + s)))
        return np.asarray(edges, dtype=float), woe

    def transform(self, X: Any) -> np.ndarray:
        x = np.asarray(X, dtype=float)
        out = np.empty_like(x)
        for j in range(x.shape[1]):
            out[:, j] = self.woe_[j][np.searchsorted(self.edges_[j], x[:, j], side="right")]
        return out


def _monotone_merge(edges: list[float], n: list[float], bad: list[float],
                    sign: float) -> tuple[list[float], list[float], list[float]]:
    """Merge adjacent bins until ``sign * bad rate`` is non-decreasing."""
    i = 0
    while i < len(n) - 1:
        if sign * (bad[i + 1] / n[i + 1] - bad[i] / n[i]) < 0:
            n[i] += n.pop(i + 1)
            bad[i] += bad.pop(i + 1)
            edges.pop(i)
            i = max(i - 1, 0)
        else:
            i += 1
    return edges, n, bad


def _small_merge(edges: list[float], n: list[float], bad: list[float],
                 minimum: float) -> tuple[list[float], list[float], list[float]]:
    """Merge each bin smaller than ``minimum`` rows into its smaller neighbour.

    Merging two adjacent bins of a monotone sequence keeps it monotone.
    """
    while len(n) > 1 and min(n) < minimum:
        i = int(np.argmin(n))
        j = i + 1 if i == 0 else i - 1 if i == len(n) - 1 else (i - 1 if n[i - 1] <= n[i + 1]
                                                                else i + 1)
        lo = min(i, j)
        n[lo] += n.pop(lo + 1)
        bad[lo] += bad.pop(lo + 1)
        edges.pop(lo)
    return edges, n, bad
