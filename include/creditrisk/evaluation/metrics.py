"""Model evaluation metrics: ranking, calibration and classification (stability, slices,
plots and the model card are the sibling modules of :mod:`creditrisk.evaluation`).

Pure functions over a label ``y_true`` (1 or True = bad, the positive class) and a
probability of default ``pd_`` per row, aligned by position. Training calls them on
the validation and test splits and logs what they return to MLflow; scoring reuses
:func:`psi` for monitoring. Nothing here touches the database or MLflow.

Conventions:

* A row is *predicted bad* when ``pd_ >= threshold`` (the same ``>=`` as scikit-learn's
  curves, so :func:`best_f1_threshold` and :func:`ks_statistic` return thresholds that
  mean the same thing in :func:`classification_metrics`).
* Ranking metrics (ROC AUC, Gini, KS, PR AUC) and the calibration fit need both
  classes; with one class they are NaN, never an exception.
* ECE uses 10 equal-width PD bins on [0, 1]: the count-weighted mean of
  ``|observed bad rate - mean PD|`` over non-empty bins.
* The calibration slope and intercept are the maximum-likelihood logistic regression of
  ``y`` on ``logit(pd)`` (intercept and slope fitted jointly, no penalty; PD clipped to
  [1e-6, 1 - 1e-6] before the logit). Perfect calibration gives slope 1, intercept 0;
  a slope below 1 means over-confident PDs. NaN when the fit does not exist (one
  class, constant PD, or perfect separation).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from creditrisk.errors import InputError

if TYPE_CHECKING:
    pass

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int_]

#: probabilities are clipped to [EPS_LOG_LOSS, 1 - EPS_LOG_LOSS] for the log loss
EPS_LOG_LOSS = 1e-15
#: and to [EPS_LOGIT, 1 - EPS_LOGIT] before the logit of the calibration fit
EPS_LOGIT = 1e-6
ECE_BINS = 10


# --------------------------------------------------------------------------- inputs


def as_labels(y_true: npt.ArrayLike) -> IntArray:
    try:
        y = np.asarray(y_true, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise InputError(f"labels must be 0/1 or boolean: {exc}") from exc
    if not np.isin(y, (0.0, 1.0)).all():
        raise InputError("labels must be 0/1 or boolean, without missing values")
    return y.astype(np.int_)


def as_scores(values: npt.ArrayLike, name: str = "pd_") -> FloatArray:
    try:
        s = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be numeric: {exc}") from exc
    if not np.isfinite(s).all():
        raise InputError(f"{name} has missing or infinite values")
    return s


def label_score_pair(y_true: npt.ArrayLike, pd_: npt.ArrayLike) -> tuple[IntArray, FloatArray]:
    y, p = as_labels(y_true), as_scores(pd_)
    if len(y) != len(p):
        raise InputError(f"{len(y)} labels but {len(p)} scores")
    return y, p


def label_probability_pair(
    y_true: npt.ArrayLike, pd_: npt.ArrayLike
) -> tuple[IntArray, FloatArray]:
    y, p = label_score_pair(y_true, pd_)
    if len(p) and (p.min() < 0.0 or p.max() > 1.0):
        raise InputError("pd_ must be probabilities in [0, 1]")
    return y, p


def both_classes(y: IntArray) -> bool:
    return bool(len(y)) and 0 < int(y.sum()) < len(y)


# --------------------------------------------------------------------------- metrics


def ks_statistic(y_true: npt.ArrayLike, pd_: npt.ArrayLike) -> tuple[float, float]:
    """Kolmogorov-Smirnov statistic between the score distributions of bads and goods.

    Args:
        y_true: 1/True for bad, 0/False for good.
        pd_: Scores, higher = riskier (any real values).

    Returns:
        ``(ks, threshold)``: the largest ``|TPR - FPR|`` over all thresholds ``t``
        (a row flagged when ``pd_ >= t``), and the threshold where it is reached.
        ``(nan, nan)`` when ``y_true`` has one class.
    """
    from sklearn.metrics import roc_curve

    y, p = label_score_pair(y_true, pd_)
    if not both_classes(y):
        return math.nan, math.nan
    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    gap = np.abs(tpr - fpr)
    i = int(np.argmax(gap))
    return float(gap[i]), float(min(thresholds[i], p.max()))


def best_f1_threshold(y_true: npt.ArrayLike, pd_: npt.ArrayLike) -> float:
    """The threshold that maximises F1 (bad = positive, flagged when ``pd_ >= t``).

    Meant for the validation split; the test split then reports metrics at it.

    Args:
        y_true: 1/True for bad.
        pd_: Probabilities of default.

    Returns:
        The lowest threshold among those reaching the best F1; 0.5 when F1 is
        undefined (no bad in ``y_true``).
    """
    from sklearn.metrics import precision_recall_curve

    y, p = label_score_pair(y_true, pd_)
    if not len(y) or int(y.sum()) == 0:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(thresholds[int(np.argmax(f1))])


def expected_calibration_error(
    y_true: npt.ArrayLike, pd_: npt.ArrayLike, bins: int = ECE_BINS
) -> float:
    """ECE: count-weighted mean ``|bad rate - mean PD|`` over equal-width PD bins.

    Args:
        y_true: 1/True for bad.
        pd_: Probabilities of default in [0, 1].
        bins: Number of equal-width bins on [0, 1] (the last one includes 1).

    Returns:
        The ECE in [0, 1]; NaN for empty input.
    """
    y, p = label_probability_pair(y_true, pd_)
    if not len(y):
        return math.nan
    table = reliability_table(y, p, bins)
    return float((table["n"] * (table["bad_rate"] - table["mean_pd"]).abs()).sum() / len(y))


def reliability_table(y: IntArray, p: FloatArray, bins: int) -> pd.DataFrame:
    """Per non-empty equal-width bin: n, mean PD, observed bad rate."""
    idx = np.clip((p * bins).astype(np.int_), 0, bins - 1)
    frame = pd.DataFrame({"bin": idx, "y": y, "p": p})
    out = frame.groupby("bin").agg(n=("y", "size"), bad_rate=("y", "mean"), mean_pd=("p", "mean"))
    return out.reset_index()


def calibration_fit(y_true: npt.ArrayLike, pd_: npt.ArrayLike) -> tuple[float, float]:
    """Calibration slope and intercept: logistic regression of ``y`` on ``logit(pd)``.

    Fitted by Newton-Raphson (unpenalised maximum likelihood).

    Args:
        y_true: 1/True for bad.
        pd_: Probabilities of default in [0, 1].

    Returns:
        ``(slope, intercept)``; ``(nan, nan)`` with one class, a constant PD or when the
        maximum-likelihood fit does not exist (perfect separation).
    """
    from scipy.special import expit

    y, p = label_probability_pair(y_true, pd_)
    if not both_classes(y):
        return math.nan, math.nan
    q = np.clip(p, EPS_LOGIT, 1 - EPS_LOGIT)
    x = np.log(q / (1 - q))
    if np.ptp(x) == 0:
        return math.nan, math.nan
    design = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    for _ in range(100):
        mu = expit(design @ beta)
        w = mu * (1 - mu)
        hessian = design.T @ (design * w[:, None])
        gradient = design.T @ (y - mu)
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            return math.nan, math.nan
        beta = beta + step
        if not np.isfinite(beta).all() or np.abs(beta).max() > 1e3:
            return math.nan, math.nan
        if np.abs(step).max() < 1e-10:
            return float(beta[1]), float(beta[0])
    return math.nan, math.nan


def classification_metrics(
    y_true: npt.ArrayLike, pd_: npt.ArrayLike, threshold: float
) -> dict[str, float]:
    """Discrimination, classification and calibration metrics of a PD.

    Args:
        y_true: 1/True for bad (the positive class).
        pd_: Probabilities of default in [0, 1], aligned with ``y_true``.
        threshold: Rows with ``pd_ >= threshold`` are predicted bad.

    Returns:
        ``n``, ``bad_rate``, ``roc_auc``, ``gini`` (2·AUC − 1), ``ks``, ``pr_auc``
        (average precision), ``precision``, ``recall``, ``f1`` (0 when undefined),
        ``brier``, ``log_loss`` (probabilities clipped to [1e-15, 1 − 1e-15]), ``ece``,
        ``calibration_slope``, ``calibration_intercept`` and ``threshold``, all floats.
        Ranking and calibration-fit metrics are NaN when ``y_true`` has one class.

    Raises:
        InputError: Labels not 0/1, lengths that differ, or PDs outside [0, 1].
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, p = label_probability_pair(y_true, pd_)
    n = len(y)
    out: dict[str, float] = {"n": float(n)}
    if n == 0:
        keys = ("bad_rate", "roc_auc", "gini", "ks", "pr_auc", "precision", "recall", "f1",
                "brier", "log_loss", "ece", "calibration_slope", "calibration_intercept")
        out.update(dict.fromkeys(keys, math.nan))
        out["threshold"] = float(threshold)
        return out
    out["bad_rate"] = float(y.mean())
    if both_classes(y):
        auc = float(roc_auc_score(y, p))
        out["roc_auc"] = auc
        out["gini"] = 2 * auc - 1
        out["ks"] = ks_statistic(y, p)[0]
        out["pr_auc"] = float(average_precision_score(y, p))
    else:
        out.update(dict.fromkeys(("roc_auc", "gini", "ks", "pr_auc"), math.nan))
    flagged = p >= threshold
    tp = int((flagged & (y == 1)).sum())
    precision = tp / int(flagged.sum()) if flagged.any() else 0.0
    recall = tp / int(y.sum()) if y.any() else 0.0
    out["precision"] = precision
    out["recall"] = recall
    out["f1"] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out["brier"] = float(np.mean((p - y) ** 2))
    c = np.clip(p, EPS_LOG_LOSS, 1 - EPS_LOG_LOSS)
    out["log_loss"] = float(-np.mean(y * np.log(c) + (1 - y) * np.log(1 - c)))
    out["ece"] = expected_calibration_error(y, p)
    slope, intercept = calibration_fit(y, p)
    out["calibration_slope"] = slope
    out["calibration_intercept"] = intercept
    out["threshold"] = float(threshold)
    return out


# --------------------------------------------------------------------------- stability


# --------------------------------------------------------------------------- slices


# --------------------------------------------------------------------------- plots


# --------------------------------------------------------------------------- model card
