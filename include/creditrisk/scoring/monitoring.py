"""Score monitoring: distributions against the champion's training reference (PSI).

Training logs ``reference.json`` with each feature's and the PD's decile edges and
training shares (binned counts, no customer rows); scoring compares a day's customers
with it bin by bin, with the one PSI of :mod:`creditrisk.evaluation.stability`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from creditrisk.evaluation.stability import psi_against, psi_by_column

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


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
        row["psi_score"] = _finite(psi_against(reference["pd"], pd_))
        row["psi_features"] = {
            c: _finite(v) for c, v in psi_by_column(reference["features"], features).items()
        }
    values = [row["psi_score"], *row["psi_features"].values()]
    row["psi_alert"] = bool(any(v > threshold for v in values if v is not None))
    return row


def _finite(value: float) -> float | None:
    """A PSI for JSON: rounded, or None when undefined (no customer in the population)."""
    import math

    return round(value, 6) if math.isfinite(value) else None
