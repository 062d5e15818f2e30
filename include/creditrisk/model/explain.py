"""Why a model scored a customer as it did: importances and per-feature contributions.

Contributions are in (uncalibrated) log-odds units, one column per feature the model
reads: exact for the logistic rungs (coefficient × transformed input, whose baseline is
the training mean), TreeSHAP for XGBoost (``pred_contribs``). The calibrator on top is
monotone, so it keeps their ranking. Batch scoring and the API turn them into reasons.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from creditrisk.model.pipeline import base_estimator, model_columns

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline


def feature_importance(pipeline: Pipeline) -> tuple[pd.Series, str]:
    """Global importance per model feature: coefficients (logistic) or gain (XGBoost)."""
    import pandas as pd

    model = base_estimator(pipeline)
    cols = model_columns(pipeline)
    if hasattr(model, "coef_"):
        return pd.Series(model.coef_[0], index=cols), "coefficient"
    if model.__class__.__name__ == "XGBClassifier":
        gain = model.get_booster().get_score(importance_type="gain")
        return pd.Series({c: gain.get(f"f{i}", 0.0) for i, c in enumerate(cols)}), "gain"
    return pd.Series(getattr(model, "feature_importances_", [0.0] * len(cols)),
                     index=cols), "impurity"


def contributions(pipeline: Pipeline, X: pd.DataFrame) -> pd.DataFrame | None:
    """Per-row contributions to the log-odds of default, one column per model feature."""
    import numpy as np
    import pandas as pd

    model = base_estimator(pipeline)
    cols = model_columns(pipeline)
    z = np.asarray(pipeline[:-1].transform(X), dtype=float)
    if hasattr(model, "coef_"):
        return pd.DataFrame(z * model.coef_[0], index=X.index, columns=cols)
    if model.__class__.__name__ == "XGBClassifier":
        import xgboost as xgb

        contrib = model.get_booster().predict(xgb.DMatrix(z), pred_contribs=True)
        return pd.DataFrame(contrib[:, :-1], index=X.index, columns=cols)
    return None


def feature_baseline(pipeline: Any) -> dict[str, float]:
    """The training median of each model feature (what a reason's direction is read against)."""
    return dict(getattr(pipeline, "feature_baseline_", {}) or {})
