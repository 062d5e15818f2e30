"""Calibrate a fitted PD model on its own held-out, customer-disjoint snapshot.

The model is trained without class re-weighting, then frozen; a sigmoid (Platt) and an
isotonic map are fitted on the *calibration* customers and the one with the lower
log-loss on the *validation* customers is kept (ECE by PD decile breaks ties within
``tol``). The result is still one Pipeline whose ``predict_proba`` is the calibrated PD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from creditrisk.evaluation.bootstrap import ece_decile
from creditrisk.model.pipeline import CALIBRATION_METHODS, calibrate

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass
class CalibrationChoice:
    """The chosen calibrated pipeline and the validation scores of every method."""

    pipeline: Any
    method: str
    scores: pd.DataFrame


def choose_calibration(
    fitted: Any,
    X_cal: pd.DataFrame,
    y_cal: np.ndarray,
    X_val: pd.DataFrame,
    y_val: np.ndarray,
    methods: tuple[str, ...] = CALIBRATION_METHODS,
    tol: float = 1e-3,
) -> CalibrationChoice:
    """Fit each method on the calibration set; keep the best by validation log-loss."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import log_loss

    fitted_by_method, rows = {}, []
    for m in methods:
        pipe = calibrate(fitted, X_cal, y_cal, m)
        p = pipe.predict_proba(X_val)[:, 1]
        fitted_by_method[m] = pipe
        rows.append({"method": m,
                     "log_loss": float(log_loss(y_val, np.clip(p, 1e-6, 1 - 1e-6),
                                                labels=[0, 1])),
                     "ece_decile": ece_decile(y_val, p), "mean_pd": float(p.mean()),
                     "bad_rate": float(np.mean(y_val))})
    scores = pd.DataFrame(rows)
    near = scores[scores["log_loss"] <= scores["log_loss"].min() + tol]
    method = str(near.sort_values("ece_decile").iloc[0]["method"])
    return CalibrationChoice(fitted_by_method[method], method, scores)
