"""The benchmark ladder: a more complex PD model must earn its place.

Rungs, simplest first (columns and parameters in the training config's ``ladder``):
``recency`` alone, a 3-feature RFM logistic regression, a weight-of-evidence scorecard,
then the logistic regression and XGBoost on the chosen feature set. Every rung is fitted
on the training snapshots, calibrated on the calibration customers
(:mod:`creditrisk.model.calibration`) and scored on the validation customers. Walking up
the ladder, a rung replaces the selected one only if the customer-clustered paired
bootstrap interval of its validation AUC gain lies above zero: a more complex model is
chosen only when it beats the simpler one by more than the noise.

A random forest is not a rung: the platform explains tree models with exact TreeSHAP,
which xgboost computes itself (``pred_contribs``) and sklearn's forests do not without
the ``shap`` package (numba and llvmlite, ~100 MB), and the old path-contribution
approximation is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from creditrisk.evaluation.bootstrap import Interval, auc, paired_bootstrap_diff
from creditrisk.model.calibration import choose_calibration
from creditrisk.model.pipeline import make_pipeline

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass
class RungResult:
    """One fitted, calibrated rung and its validation scores."""

    name: str
    columns: list[str]
    pipeline: Any
    method: str
    calibration_scores: pd.DataFrame = field(repr=False)
    val_pd: np.ndarray = field(repr=False)
    val_auc: float = float("nan")
    #: paired validation AUC gain over the rung selected before it (None for the first)
    gain: Interval | None = None
    selected: bool = False


def fit_rung(name: str, spec: dict[str, Any], parts: dict[str, pd.DataFrame],
             label: str = "is_high_risk") -> RungResult:
    """Fit on ``parts['train']``, calibrate on ``calibration``, score ``validation``."""
    cols = list(spec["columns"])
    tr, cal, val = parts["train"], parts["calibration"], parts["validation"]
    fitted = make_pipeline(name, cols, spec.get("params")).fit(tr, tr[label].to_numpy(int))
    fitted.feature_baseline_ = {c: float(tr[c].median()) for c in cols}
    choice = choose_calibration(fitted, cal, cal[label].to_numpy(int),
                                val, val[label].to_numpy(int))
    p = choice.pipeline.predict_proba(val)[:, 1]
    return RungResult(name, cols, choice.pipeline, choice.method, choice.scores, p,
                      auc(val[label].to_numpy(int), p))


def climb(rungs: dict[str, dict[str, Any]], parts: dict[str, pd.DataFrame], *,
          label: str = "is_high_risk", cluster: str = "customer_id", n_boot: int = 500,
          seed: int = 0) -> tuple[RungResult, list[RungResult]]:
    """Fit every rung (simplest first) and select by paired bootstrap on validation."""
    val = parts["validation"]
    y = val[label].to_numpy(int)
    results = [fit_rung(n, spec, parts, label) for n, spec in rungs.items()]
    selected = results[0]
    for r in results[1:]:
        r.gain = paired_bootstrap_diff(auc, y, r.val_pd, selected.val_pd,
                                       val[cluster].to_numpy(), n=n_boot, seed=seed)
        if r.gain.lo > 0:
            selected = r
    selected.selected = True
    return selected, results


def ladder_table(results: list[RungResult]) -> pd.DataFrame:
    """One row per rung: validation AUC, its gain over the rung before it, the choice."""
    import pandas as pd

    return pd.DataFrame([{
        "rung": r.name, "features": len(r.columns), "calibration": r.method,
        "val_auc": round(r.val_auc, 4),
        "gain_vs_selected": None if r.gain is None else round(r.gain.estimate, 4),
        "gain_lo": None if r.gain is None else round(r.gain.lo, 4),
        "gain_hi": None if r.gain is None else round(r.gain.hi, 4),
        "selected": r.selected,
    } for r in results])
