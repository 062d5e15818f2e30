"""The model pipelines the platform trains, calibrates and registers, and their fast path.

Every registered model is one sklearn ``Pipeline``:

``select`` (the model's own feature columns, by name, out of the whole catalogue) →
the rung's transforms (``squash`` + ``scale``, or ``woe``) → ``model``: the estimator,
frozen and wrapped in a ``CalibratedClassifierCV`` fitted on a held-out, customer-disjoint
snapshot (:func:`calibrate`). Batch scoring, the API and ``mlflow models serve`` call the
same ``predict_proba`` and so all return the calibrated PD.

The rungs (:data:`RUNGS`, simplest first) are what the benchmark ladder of
:mod:`creditrisk.model.ladder` climbs. No class re-weighting anywhere: ``balanced``
weights push every PD towards 0.5, and calibration on an unweighted sample is what makes
the PD a probability.

:class:`LogisticFastPath` computes a calibrated logistic pipeline's PD and its exact
per-feature log-odds contributions with the same arithmetic in numpy: microseconds per
row instead of sklearn's input checking, for the API's request path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from creditrisk.catalogue import FEATURE_NAMES
from creditrisk.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

#: rung name -> estimator family; the columns each rung reads come from the training config
RUNGS: dict[str, str] = {
    "recency": "logistic",
    "rfm_logistic": "logistic",
    "woe_scorecard": "scorecard",
    "logistic_regression": "logistic",
    "xgboost": "xgboost",
}
CALIBRATION_METHODS = ("sigmoid", "isotonic")


def _select(columns: list[str]) -> Any:
    from sklearn.compose import ColumnTransformer

    return ColumnTransformer([("features", "passthrough", columns)], remainder="drop",
                             verbose_feature_names_out=False)


def make_pipeline(rung: str, columns: list[str], params: dict[str, Any] | None = None) -> Pipeline:
    """An unfitted, uncalibrated Pipeline for ``rung`` reading ``columns`` of a feature frame."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    unknown = [c for c in columns if c not in FEATURE_NAMES]
    if unknown:
        raise InputError(f"rung {rung!r} names features outside the catalogue: {unknown}")
    p = dict(params or {})
    family = RUNGS.get(rung)
    if family == "logistic":
        # arcsinh: a log-like, sign-preserving squash of the heavy-tailed amounts and counts
        return Pipeline([
            ("select", _select(columns)),
            ("squash", FunctionTransformer(np.arcsinh)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(**p)),
        ])
    if family == "scorecard":
        # scorecard.py imports sklearn at its top: only the scorecard rung pays for it here
        from creditrisk.model.scorecard import WoEBinner

        binning = {k: p.pop(k) for k in ("n_bins", "min_bin_share") if k in p}
        return Pipeline([("select", _select(columns)), ("woe", WoEBinner(**binning)),
                         ("model", LogisticRegression(**p))])
    if family == "xgboost":
        from xgboost import XGBClassifier

        up = set(p.pop("monotone_increasing", []))
        down = set(p.pop("monotone_decreasing", []))
        constraints = tuple(1 if f in up else -1 if f in down else 0 for f in columns)
        return Pipeline([("select", _select(columns)), ("model", XGBClassifier(
            **p, monotone_constraints=constraints, eval_metric="logloss", tree_method="hist",
        ))])
    raise InputError(f"unknown rung {rung!r}; choose from {list(RUNGS)}")


def calibrate(fitted: Pipeline, X_cal: pd.DataFrame, y_cal: np.ndarray, method: str) -> Pipeline:
    """The same fitted pipeline with its estimator frozen and calibrated on ``X_cal``.

    The calibrator is fitted on the calibration rows only (one map, no ensembling), so
    the training rows never shape it; the result is still one Pipeline.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline

    if method not in CALIBRATION_METHODS:
        raise InputError(f"unknown calibration {method!r}; choose from {CALIBRATION_METHODS}")
    z = fitted[:-1].transform(X_cal)
    calibrated = CalibratedClassifierCV(FrozenEstimator(fitted[-1]), method=method,
                                        ensemble=False).fit(z, y_cal)
    out = Pipeline([*fitted.steps[:-1], ("model", calibrated)])
    for attr in ("feature_baseline_",):
        if hasattr(fitted, attr):
            setattr(out, attr, getattr(fitted, attr))
    return out


def model_columns(pipeline: Any) -> list[str]:
    """The feature columns a registered pipeline reads (the whole catalogue for old ones)."""
    select = getattr(pipeline, "named_steps", {}).get("select")
    if select is None:
        return list(FEATURE_NAMES)
    return list(select.transformers_[0][2])


def base_estimator(pipeline: Any) -> Any:
    """The fitted estimator under the calibrator (or the last step of an uncalibrated one)."""
    model = pipeline.named_steps["model"]
    if hasattr(model, "calibrated_classifiers_"):
        frozen = model.calibrated_classifiers_[0].estimator
        return getattr(frozen, "estimator", frozen)
    return model


def calibration_method(pipeline: Any) -> str | None:
    model = pipeline.named_steps["model"]
    return str(model.method) if hasattr(model, "calibrated_classifiers_") else None


@dataclass(frozen=True)
class LogisticFastPath:
    """``select -> arcsinh -> standardise -> logistic -> calibrator``, in numpy."""

    index: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    sigmoid: tuple[float, float] | None
    isotonic: tuple[np.ndarray, np.ndarray] | None

    @classmethod
    def of(cls, pipeline: Any) -> LogisticFastPath | None:
        """The fast path of ``pipeline`` when it is exactly that shape, else None."""
        import numpy as np

        steps = getattr(pipeline, "named_steps", {})
        if list(steps) != ["select", "squash", "scale", "model"]:
            return None
        if getattr(steps["squash"], "func", None) is not np.arcsinh:
            return None
        base = base_estimator(pipeline)
        if not hasattr(base, "coef_"):
            return None
        sigmoid = isotonic = None
        model = steps["model"]
        if hasattr(model, "calibrated_classifiers_"):
            cal = model.calibrated_classifiers_[0].calibrators[0]
            if hasattr(cal, "a_"):
                sigmoid = (float(cal.a_), float(cal.b_))
            else:
                isotonic = (np.asarray(cal.X_thresholds_), np.asarray(cal.y_thresholds_))
        index = np.array([FEATURE_NAMES.index(c) for c in model_columns(pipeline)])
        scale = steps["scale"]
        return cls(index, scale.mean_, scale.scale_, base.coef_[0], float(base.intercept_[0]),
                   sigmoid, isotonic)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated PDs and per-feature log-odds contributions (rows in catalogue order).

        Contributions are returned for every catalogue feature (0 for the ones the model
        does not read), on the uncalibrated log-odds scale, whose ranking the monotone
        calibrator keeps.
        """
        import numpy as np

        contrib = (np.arcsinh(X[:, self.index]) - self.mean) / self.scale * self.coef
        logit = contrib.sum(axis=1) + self.intercept
        if self.sigmoid is not None:
            a, b = self.sigmoid
            pd_ = 1.0 / (1.0 + np.exp(a * logit + b))
        elif self.isotonic is not None:
            pd_ = np.interp(logit, *self.isotonic)
        else:
            pd_ = 1.0 / (1.0 + np.exp(-logit))
        full = np.zeros((X.shape[0], len(FEATURE_NAMES)))
        full[:, self.index] = contrib
        return pd_, full
