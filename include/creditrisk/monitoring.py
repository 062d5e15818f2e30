"""Score monitoring: distributions against the champion's training reference (PSI).

Training logs ``reference.json`` with each feature's and the PD's decile edges and
training shares (binned counts, no customer rows); scoring compares a day's customers
with it bin by bin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

BINS = 10
EPS = 1e-4


def _bins(values: np.ndarray) -> dict[str, list[float]]:
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    edges = (np.unique(np.quantile(v, np.linspace(0, 1, BINS + 1)[1:-1])) if len(v)
             else np.array([], dtype=float))
    counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1)
    return {"edges": [float(e) for e in edges],
            "shares": [float(c) / max(len(v), 1) for c in counts]}


def reference_distribution(features: pd.DataFrame, pd_: np.ndarray) -> dict[str, Any]:
    """Decile edges and shares of the PD and of every feature on the training rows."""
    return {"pd": _bins(pd_), "features": {c: _bins(features[c].to_numpy()) for c in features}}


def psi_against(reference: dict[str, list[float]], actual: np.ndarray) -> float:
    """Population stability index of ``actual`` against a stored reference binning."""
    import numpy as np

    v = np.asarray(actual, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan")
    edges = np.asarray(reference["edges"], dtype=float)
    expected = np.maximum(np.asarray(reference["shares"], dtype=float), EPS)
    counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1)
    observed = np.maximum(counts / len(v), EPS)
    return float(np.sum((observed - expected) * np.log(observed / expected)))


def monitoring_row(
    pd_: np.ndarray, bands: np.ndarray, decisions: np.ndarray, features: pd.DataFrame,
    reference: dict[str, Any] | None, threshold: float,
) -> dict[str, Any]:
    """Counts, mean PD, band and decision shares, PSI of the PD and every feature."""
    import numpy as np
    import pandas as pd

    n = len(pd_)
    row: dict[str, Any] = {
        "n_scored": n,
        "mean_pd": float(np.mean(pd_)) if n else float("nan"),
        "band_shares": {str(k): round(float(v), 6)
                        for k, v in pd.Series(bands).value_counts(normalize=True).items()},
        "decision_shares": {str(k): round(float(v), 6)
                            for k, v in pd.Series(decisions).value_counts(normalize=True).items()},
        "psi_score": None,
        "psi_features": {},
    }
    if reference:
        row["psi_score"] = round(psi_against(reference["pd"], pd_), 6)
        row["psi_features"] = {
            c: round(psi_against(ref, features[c].to_numpy()), 6)
            for c, ref in reference["features"].items() if c in features
        }
    values = [row["psi_score"] or 0.0, *row["psi_features"].values()]
    row["psi_alert"] = bool(any(v > threshold for v in values if v == v))
    return row
