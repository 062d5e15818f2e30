"""Model evaluation: metrics, stability, slices, fairness, plots and the model card.

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
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from creditrisk.errors import InputError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int_]

#: probabilities are clipped to [EPS_LOG_LOSS, 1 - EPS_LOG_LOSS] for the log loss
EPS_LOG_LOSS = 1e-15
#: and to [EPS_LOGIT, 1 - EPS_LOGIT] before the logit of the calibration fit
EPS_LOGIT = 1e-6
ECE_BINS = 10
#: share given to an empty PSI bin so that the log stays finite
PSI_EPSILON = 1e-4
THIN_FILE_MAX_TRANSACTIONS = 3
#: segments smaller than this are reported but left out of the four-fifths ratio
MIN_FAIRNESS_SEGMENT = 30
FOUR_FIFTHS = 0.8
TOP_FEATURES = 20
DPI = 100

CATEGORY_SHARES: dict[str, str] = {
    "share_airtime": "airtime",
    "share_financial_services": "financial_services",
    "share_utility_bill": "utility_bill",
    "share_other_categories": "other",
}

DEFAULT_PURPOSE = (
    "Scores Buy-Now-Pay-Later applicants at checkout on the Xente eCommerce platform: a "
    "probability of default (PD) per customer from their transaction history, turned by "
    "the credit policy into a credit score, a risk band, a decision and a recommended "
    "limit and term. The same model scores every customer nightly."
)
DEFAULT_INTENDED_USE = (
    "Decision support for a BNPL lender: clear APPROVE and DECLINE cases may be decided "
    "automatically within the limits set by the credit policy; every application in the "
    "REVIEW band goes to a credit analyst, who sees the PD and the reason codes. Limits "
    "and terms are recommendations, capped by policy. Declined customers can ask for a "
    "human review."
)
DEFAULT_NOT_INTENDED_FOR = (
    "Pricing (interest rates or fees), collections or legal action against a customer; "
    "lending products other than short-term BNPL at checkout; populations outside the "
    "platform's customers (other countries, merchants or currencies than the training "
    "data); fully automated adverse decisions without an appeal route; any non-credit "
    "use such as employment, insurance or marketing eligibility; inferring personal or "
    "protected characteristics."
)
DEFAULT_LABEL_LIMITS = (
    "The label is a behavioural proxy, not a repayment outcome: no customer in the data "
    "has borrowed or repaid. A 'bad' customer is one who goes silent, commits fraud or is "
    "among the least engaged in the outcome window. Disengagement is not default, so the "
    "PD is a probability of the proxy event and its level is not a loss rate; calibrate "
    "against real repayments, and replace the label with a repayment-outcome strategy, as "
    "soon as the first loans mature."
)


# --------------------------------------------------------------------------- inputs


def _labels(y_true: npt.ArrayLike) -> IntArray:
    try:
        y = np.asarray(y_true, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise InputError(f"labels must be 0/1 or boolean: {exc}") from exc
    if not np.isin(y, (0.0, 1.0)).all():
        raise InputError("labels must be 0/1 or boolean, without missing values")
    return y.astype(np.int_)


def _scores(values: npt.ArrayLike, name: str = "pd_") -> FloatArray:
    try:
        s = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be numeric: {exc}") from exc
    if not np.isfinite(s).all():
        raise InputError(f"{name} has missing or infinite values")
    return s


def _pair(y_true: npt.ArrayLike, pd_: npt.ArrayLike) -> tuple[IntArray, FloatArray]:
    y, p = _labels(y_true), _scores(pd_)
    if len(y) != len(p):
        raise InputError(f"{len(y)} labels but {len(p)} scores")
    return y, p


def _probabilities(y_true: npt.ArrayLike, pd_: npt.ArrayLike) -> tuple[IntArray, FloatArray]:
    y, p = _pair(y_true, pd_)
    if len(p) and (p.min() < 0.0 or p.max() > 1.0):
        raise InputError("pd_ must be probabilities in [0, 1]")
    return y, p


def _both_classes(y: IntArray) -> bool:
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

    y, p = _pair(y_true, pd_)
    if not _both_classes(y):
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

    y, p = _pair(y_true, pd_)
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
    y, p = _probabilities(y_true, pd_)
    if not len(y):
        return math.nan
    table = _reliability(y, p, bins)
    return float((table["n"] * (table["bad_rate"] - table["mean_pd"]).abs()).sum() / len(y))


def _reliability(y: IntArray, p: FloatArray, bins: int) -> pd.DataFrame:
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

    y, p = _probabilities(y_true, pd_)
    if not _both_classes(y):
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

    y, p = _probabilities(y_true, pd_)
    n = len(y)
    out: dict[str, float] = {"n": float(n)}
    if n == 0:
        keys = ("bad_rate", "roc_auc", "gini", "ks", "pr_auc", "precision", "recall", "f1",
                "brier", "log_loss", "ece", "calibration_slope", "calibration_intercept")
        out.update(dict.fromkeys(keys, math.nan))
        out["threshold"] = float(threshold)
        return out
    out["bad_rate"] = float(y.mean())
    if _both_classes(y):
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


def psi_table(expected: npt.ArrayLike, actual: npt.ArrayLike, bins: int = 10) -> pd.DataFrame:
    """Per-bin population stability table of ``actual`` against ``expected``.

    Bin edges are the quantiles of ``expected`` (duplicates merged, outer edges open,
    bins closed on the right), so each bin holds about ``1/bins`` of the reference.
    A constant reference gets three bins: below, at and above its value. Missing values
    are dropped from both samples.

    Args:
        expected: The reference sample (e.g. training scores or a feature at training).
        actual: The sample to compare (e.g. today's scores).
        bins: Number of quantile bins.

    Returns:
        One row per bin: ``lower``, ``upper``, ``expected_count``, ``actual_count``,
        ``expected_share``, ``actual_share`` (empty bins get :data:`PSI_EPSILON`) and
        ``psi``, that bin's ``(actual - expected) * ln(actual / expected)``.

    Raises:
        InputError: ``bins`` < 1 or an empty sample.
    """
    if bins < 1:
        raise InputError("psi needs at least one bin")
    e = np.asarray(expected, dtype=np.float64).ravel()
    a = np.asarray(actual, dtype=np.float64).ravel()
    e, a = e[~np.isnan(e)], a[~np.isnan(a)]
    if not len(e) or not len(a):
        raise InputError("psi needs non-empty expected and actual samples")
    inner = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1))[1:-1])
    if e.min() == e.max():
        inner = np.array([np.nextafter(e[0], -np.inf), e[0]])
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    e_count = np.bincount(np.searchsorted(inner, e, side="left"), minlength=len(edges) - 1)
    a_count = np.bincount(np.searchsorted(inner, a, side="left"), minlength=len(edges) - 1)
    e_share = np.maximum(e_count / len(e), PSI_EPSILON)
    a_share = np.maximum(a_count / len(a), PSI_EPSILON)
    return pd.DataFrame({
        "lower": edges[:-1],
        "upper": edges[1:],
        "expected_count": e_count,
        "actual_count": a_count,
        "expected_share": e_share,
        "actual_share": a_share,
        "psi": (a_share - e_share) * np.log(a_share / e_share),
    })


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected``.

    Read as: < 0.1 stable, 0.1-0.25 a moderate shift, > 0.25 a significant shift.
    See :func:`psi_table` for the binning; identical constant samples give 0.0.

    Args:
        expected: The reference sample.
        actual: The sample to compare.
        bins: Number of quantile bins of ``expected``.

    Returns:
        The PSI (>= 0).
    """
    return float(psi_table(expected, actual, bins)["psi"].sum())


# --------------------------------------------------------------------------- slices


def _require(features: pd.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise InputError(f"features lack the columns {missing}")


def thin_file_segment(
    features: pd.DataFrame, max_transactions: int = THIN_FILE_MAX_TRANSACTIONS
) -> pd.Series:
    """"thin" for customers with at most ``max_transactions`` transactions, else "thick"."""
    _require(features, ["frequency"])
    thin = features["frequency"].to_numpy() <= max_transactions
    return pd.Series(np.where(thin, "thin", "thick"), index=features.index, name="thin_file")


def dominant_category_segment(features: pd.DataFrame) -> pd.Series:
    """The product-category group with the largest share (ties go to the first listed)."""
    _require(features, CATEGORY_SHARES)
    shares = features[list(CATEGORY_SHARES)].to_numpy(dtype=np.float64)
    names = np.array(list(CATEGORY_SHARES.values()))
    return pd.Series(names[np.argmax(shares, axis=1)], index=features.index,
                     name="dominant_category")


def channel_segment(features: pd.DataFrame) -> pd.Series:
    """"pay_later" (>= half on ChannelId_5), "web" (>= half on ChannelId_3), "other/mobile"."""
    _require(features, ["share_channel_pay_later", "share_channel_web"])
    pay_later = features["share_channel_pay_later"].to_numpy() >= 0.5
    web = features["share_channel_web"].to_numpy() >= 0.5
    seg = np.where(pay_later, "pay_later", np.where(web, "web", "other/mobile"))
    return pd.Series(seg, index=features.index, name="channel")


def provider_segment(features: pd.DataFrame) -> pd.Series:
    """"platform_heavy" (>= half via ProviderId_4) or "merchant"."""
    _require(features, ["share_platform_provider"])
    heavy = features["share_platform_provider"].to_numpy() >= 0.5
    return pd.Series(np.where(heavy, "platform_heavy", "merchant"), index=features.index,
                     name="provider")


_SEGMENT_ORDER: dict[str, tuple[str, ...]] = {
    "thin_file": ("thin", "thick"),
    "dominant_category": tuple(CATEGORY_SHARES.values()),
    "channel": ("pay_later", "web", "other/mobile"),
    "provider": ("platform_heavy", "merchant"),
}


def slice_metrics(
    features: pd.DataFrame,
    y_true: npt.ArrayLike,
    pd_: npt.ArrayLike,
    *,
    thin_file_max: int = THIN_FILE_MAX_TRANSACTIONS,
) -> pd.DataFrame:
    """Bad rate, mean PD and ROC AUC per customer segment.

    Slices: ``thin_file`` (``frequency <= thin_file_max`` → "thin", else "thick"),
    ``dominant_category`` (largest of the airtime / financial services / utility bill /
    other shares) and ``channel`` ("pay_later", "web" or "other/mobile"). The first row
    is the whole sample (slice "overall", segment "all") for reference; empty segments
    are left out.

    Args:
        features: Feature rows (at least ``frequency``, the four category shares and the
            two channel shares), aligned by position with ``y_true`` and ``pd_``.
        y_true: 1/True for bad.
        pd_: Probabilities of default.
        thin_file_max: Most transactions a thin-file customer has.

    Returns:
        Columns ``slice``, ``segment``, ``n``, ``bad_rate``, ``mean_pd``, ``roc_auc``
        (NaN when the segment has one class).
    """
    from sklearn.metrics import roc_auc_score

    y, p = _pair(y_true, pd_)
    if len(features) != len(y):
        raise InputError(f"{len(features)} feature rows but {len(y)} labels")
    segmentations = {
        "overall": np.full(len(y), "all", dtype=object),
        "thin_file": thin_file_segment(features, thin_file_max).to_numpy(),
        "dominant_category": dominant_category_segment(features).to_numpy(),
        "channel": channel_segment(features).to_numpy(),
    }
    rows: list[dict[str, Any]] = []
    for name, seg in segmentations.items():
        for segment in _SEGMENT_ORDER.get(name, ("all",)):
            mask = seg == segment
            n = int(mask.sum())
            if not n:
                continue
            ys, ps = y[mask], p[mask]
            auc = float(roc_auc_score(ys, ps)) if _both_classes(ys) else math.nan
            rows.append({"slice": name, "segment": segment, "n": n,
                         "bad_rate": float(ys.mean()), "mean_pd": float(ps.mean()),
                         "roc_auc": auc})
    return pd.DataFrame(rows, columns=["slice", "segment", "n", "bad_rate", "mean_pd", "roc_auc"])


def fairness_report(
    features: pd.DataFrame, pd_: npt.ArrayLike, approve_below: float
) -> dict[str, Any]:
    """Approval rates per segment and the four-fifths (disparate impact) check.

    The data holds no protected attribute, so the check runs over the segments a
    lender could treat unequally by accident: ``channel`` (see :func:`channel_segment`)
    and ``provider`` (see :func:`provider_segment`). A customer is approved when
    ``pd_ < approve_below``. Per segmentation, ``ratio`` is the lowest approval rate
    over the highest, over segments with at least :data:`MIN_FAIRNESS_SEGMENT`
    customers (smaller ones are reported with ``included`` False). With fewer than two
    such segments nothing can be compared: ``assessed`` is False, ``ratio`` NaN and the
    check passes. When no segment approves anyone, the ratio is 1.0 (equal treatment).

    Args:
        features: Feature rows aligned by position with ``pd_``.
        pd_: Probabilities of default.
        approve_below: The approval cut-off on the PD.

    Returns:
        A JSON-ready dict::

            {"approve_below": 0.5, "min_segment_size": 30, "n": 1234,
             "overall_approval_rate": 0.8,
             "segmentations": {"channel": {
                 "segments": {"web": {"n": 600, "approved": 500, "approval_rate": 0.83,
                                      "included": True}, ...},
                 "ratio": 0.9, "lowest": "pay_later", "highest": "web",
                 "assessed": True, "passes_four_fifths": True}, "provider": {...}},
             "passes_four_fifths": True}
    """
    p = _scores(pd_)
    if len(features) != len(p):
        raise InputError(f"{len(features)} feature rows but {len(p)} scores")
    approved = p < approve_below
    report: dict[str, Any] = {
        "approve_below": float(approve_below),
        "min_segment_size": MIN_FAIRNESS_SEGMENT,
        "n": len(p),
        "overall_approval_rate": float(approved.mean()) if len(p) else math.nan,
        "segmentations": {},
    }
    for name, seg in (("channel", channel_segment(features).to_numpy()),
                      ("provider", provider_segment(features).to_numpy())):
        segments: dict[str, dict[str, Any]] = {}
        for segment in _SEGMENT_ORDER[name]:
            mask = seg == segment
            n = int(mask.sum())
            if not n:
                continue
            ok = int(approved[mask].sum())
            segments[segment] = {"n": n, "approved": ok, "approval_rate": ok / n,
                                 "included": n >= MIN_FAIRNESS_SEGMENT}
        rates = {k: v["approval_rate"] for k, v in segments.items() if v["included"]}
        entry: dict[str, Any] = {"segments": segments}
        if len(rates) >= 2:
            lowest, highest = min(rates, key=rates.__getitem__), max(rates, key=rates.__getitem__)
            top = rates[highest]
            ratio = rates[lowest] / top if top > 0 else 1.0
            entry.update(ratio=ratio, lowest=lowest, highest=highest, assessed=True,
                         passes_four_fifths=bool(ratio >= FOUR_FIFTHS))
        else:
            entry.update(ratio=math.nan, lowest=None, highest=None, assessed=False,
                         passes_four_fifths=True)
        report["segmentations"][name] = entry
    report["passes_four_fifths"] = all(
        e["passes_four_fifths"] for e in report["segmentations"].values()
    )
    return report


# --------------------------------------------------------------------------- plots


def _figure(width: float = 5.0, height: float = 4.0) -> Figure:
    # The object-oriented API renders through Agg on savefig and never touches pyplot's
    # global state or the process-wide backend, so it is safe in Airflow workers.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def _save(fig: Figure, path: Path, written: list[Path]) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    fig.clear()
    written.append(path)


def _one_class_note(ax: Axes) -> None:
    ax.text(0.5, 0.5, "undefined: the sample has one class", ha="center", va="center",
            transform=ax.transAxes)


def _plot_roc(ax: Axes, y: IntArray, p: FloatArray) -> None:
    from sklearn.metrics import roc_auc_score, roc_curve

    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    if _both_classes(y):
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, color="C0", label=f"AUC = {roc_auc_score(y, p):.3f}")
        ax.legend(loc="lower right")
    else:
        _one_class_note(ax)
    ax.set(xlabel="False positive rate (goods flagged)", ylabel="True positive rate (bads caught)",
           title="ROC curve", xlim=(0, 1), ylim=(0, 1.01))


def _plot_pr(ax: Axes, y: IntArray, p: FloatArray) -> None:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    if _both_classes(y):
        precision, recall, _ = precision_recall_curve(y, p)
        ax.step(recall, precision, where="post", color="C0",
                label=f"AP = {average_precision_score(y, p):.3f}")
        ax.axhline(y.mean(), ls="--", color="grey", lw=1, label=f"bad rate = {y.mean():.3f}")
        ax.legend(loc="upper right")
    else:
        _one_class_note(ax)
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall (bad = positive)",
           xlim=(0, 1), ylim=(0, 1.01))


def _plot_calibration(fig: Figure, y: IntArray, p: FloatArray) -> None:
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    table = _reliability(y, p, ECE_BINS)
    top.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    top.plot(table["mean_pd"], table["bad_rate"], marker="o", color="C0",
             label=f"model (ECE = {expected_calibration_error(y, p):.3f})")
    top.set(ylabel="Observed bad rate", title="Reliability diagram", ylim=(0, 1.01))
    top.legend(loc="upper left")
    bottom.hist(p, bins=np.linspace(0, 1, ECE_BINS + 1).tolist(), color="C0", alpha=0.7)
    bottom.set(xlabel="Predicted PD", ylabel="Rows", xlim=(0, 1))


def _plot_ks(ax: Axes, y: IntArray, p: FloatArray) -> None:
    if not _both_classes(y):
        _one_class_note(ax)
        ax.set(title="KS")
        return
    grid = np.unique(p)
    bad, good = np.sort(p[y == 1]), np.sort(p[y == 0])
    cdf_bad = np.searchsorted(bad, grid, side="right") / len(bad)
    cdf_good = np.searchsorted(good, grid, side="right") / len(good)
    i = int(np.argmax(np.abs(cdf_bad - cdf_good)))
    ax.step(grid, cdf_bad, where="post", color="C3", label="bads")
    ax.step(grid, cdf_good, where="post", color="C2", label="goods")
    ax.vlines(grid[i], min(cdf_bad[i], cdf_good[i]), max(cdf_bad[i], cdf_good[i]),
              color="black", lw=2, label=f"KS = {abs(cdf_bad[i] - cdf_good[i]):.3f}")
    ax.set(xlabel="Predicted PD", ylabel="Cumulative share", ylim=(0, 1.01),
           title=f"KS: cumulative distributions (max gap at PD {grid[i]:.3f})")
    ax.legend(loc="lower right")


def _plot_distribution(ax: Axes, y: IntArray, p: FloatArray, threshold: float) -> None:
    edges = np.linspace(0, 1, 31).tolist()
    for label, colour, mask in (("goods", "C2", y == 0), ("bads", "C3", y == 1)):
        if mask.any():
            ax.hist(p[mask], bins=edges, density=True, alpha=0.5, color=colour,
                    label=f"{label} (n={int(mask.sum())})")
    ax.axvline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.3f}")
    ax.set(xlabel="Predicted PD", ylabel="Density", title="PD distribution by class", xlim=(0, 1))
    ax.legend(loc="upper right")


def _plot_confusion(ax: Axes, y: IntArray, p: FloatArray, threshold: float) -> None:
    flagged = (p >= threshold).astype(np.int_)
    matrix = np.zeros((2, 2), dtype=np.int_)
    np.add.at(matrix, (y, flagged), 1)
    ax.imshow(matrix, cmap="Blues")
    peak = matrix.max() or 1
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center",
                color="white" if count > peak / 2 else "black")
    ax.set_xticks([0, 1], ["predicted good", "predicted bad"])
    ax.set_yticks([0, 1], ["actual good", "actual bad"])
    ax.set_title(f"Confusion matrix at PD >= {threshold:.3f}")


def _plot_importance(ax: Axes, importance: pd.Series, kind: str) -> None:
    values = importance.astype(float).dropna()
    top = values.reindex(values.abs().sort_values(ascending=False).index[:TOP_FEATURES])[::-1]
    colours = ["C3" if v > 0 else "C0" for v in top.to_numpy()]
    ax.barh([str(i) for i in top.index], top.to_numpy(), color=colours)
    ax.axvline(0, color="grey", lw=1)
    ax.set(xlabel=kind, title=f"Feature importance ({kind}), top {len(top)}")


def _plot_shap(fig: Figure, shap_values: pd.DataFrame,
               feature_values: pd.DataFrame | None) -> None:
    contrib = shap_values.astype(float)
    mean_abs = contrib.abs().mean().sort_values(ascending=False).iloc[:TOP_FEATURES][::-1]
    names = list(mean_abs.index)
    bar_ax, strip_ax = fig.subplots(1, 2, sharey=True)
    bar_ax.barh([str(n) for n in names], mean_abs.to_numpy(), color="C0")
    bar_ax.set(xlabel="mean |contribution|", title="Mean absolute contribution")
    rng = np.random.default_rng(0)
    rows = np.arange(len(contrib))
    if len(rows) > 2000:
        rows = np.sort(rng.choice(len(rows), size=2000, replace=False))
    values = feature_values if feature_values is not None and len(feature_values) == len(
        contrib) else None
    scatter = None
    for k, name in enumerate(names):
        x = contrib[name].to_numpy()[rows]
        jitter = k + rng.uniform(-0.3, 0.3, size=len(x))
        if values is not None and name in values.columns:
            raw = pd.Series(values[name].to_numpy(dtype=np.float64)[rows])
            colour = raw.rank(pct=True).fillna(0.5).to_numpy()
            scatter = strip_ax.scatter(x, jitter, c=colour, cmap="coolwarm", vmin=0, vmax=1,
                                       s=4, alpha=0.6, linewidths=0)
        else:
            strip_ax.scatter(x, jitter, color="C0", s=4, alpha=0.4, linewidths=0)
    strip_ax.axvline(0, color="grey", lw=1)
    strip_ax.set(xlabel="contribution (model output units)", title="Per-row contributions")
    if scatter is not None:
        fig.colorbar(scatter, ax=strip_ax, label="feature value (percentile)")


def plot_artifacts(
    y_true: npt.ArrayLike,
    pd_: npt.ArrayLike,
    out_dir: Path,
    *,
    threshold: float,
    importance: pd.Series | None = None,
    importance_kind: str = "importance",
    shap_values: pd.DataFrame | None = None,
    feature_values: pd.DataFrame | None = None,
) -> list[Path]:
    """Write the evaluation plots a reviewer wants as PNGs (dpi 100) into ``out_dir``.

    Always: ``roc.png``, ``precision_recall.png``, ``calibration.png`` (reliability
    diagram over 10 equal-width bins, with the PD histogram), ``ks.png`` (cumulative PD
    distributions of bads and goods, the KS gap marked), ``score_distribution.png``
    (PD histograms by class) and ``confusion_matrix.png`` (at ``threshold``). With
    ``importance``: ``feature_importance.png`` (top 20 by absolute value, signed).
    With ``shap_values``: ``shap_summary.png`` (mean |contribution| of the top 20
    features and a strip of per-row contributions, coloured by the feature's value
    percentile when ``feature_values`` is given). Curves that need both classes show
    a note instead when ``y_true`` has one.

    Args:
        y_true: 1/True for bad.
        pd_: Probabilities of default in [0, 1].
        out_dir: Directory to write into (created if missing).
        threshold: The decision threshold (predicted bad when ``pd_ >= threshold``).
        importance: Importance per feature (index = feature name), e.g. coefficients.
        importance_kind: What the importance is ("coefficient", "gain", "impurity"),
            used in the title and axis label.
        shap_values: Per-row contributions, rows × features (e.g. XGBoost
            ``pred_contribs`` or coefficient × standardised value), without the bias.
        feature_values: The feature values of the same rows, aligned by position with
            ``shap_values``; used only to colour the strip (ignored if lengths differ).

    Returns:
        The paths written, in the order above.
    """
    y, p = _probabilities(y_true, pd_)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    fig = _figure()
    _plot_roc(fig.subplots(), y, p)
    _save(fig, out_dir / "roc.png", written)

    fig = _figure()
    _plot_pr(fig.subplots(), y, p)
    _save(fig, out_dir / "precision_recall.png", written)

    fig = _figure(5.0, 5.0)
    _plot_calibration(fig, y, p)
    _save(fig, out_dir / "calibration.png", written)

    fig = _figure(6.0, 4.0)
    _plot_ks(fig.subplots(), y, p)
    _save(fig, out_dir / "ks.png", written)

    fig = _figure(6.0, 4.0)
    _plot_distribution(fig.subplots(), y, p, threshold)
    _save(fig, out_dir / "score_distribution.png", written)

    fig = _figure(4.5, 4.0)
    _plot_confusion(fig.subplots(), y, p, threshold)
    _save(fig, out_dir / "confusion_matrix.png", written)

    if importance is not None and len(importance.dropna()):
        fig = _figure(6.0, 6.0)
        _plot_importance(fig.subplots(), importance, importance_kind)
        _save(fig, out_dir / "feature_importance.png", written)

    if shap_values is not None and shap_values.shape[0] and shap_values.shape[1]:
        fig = _figure(11.0, 6.0)
        _plot_shap(fig, shap_values, feature_values)
        _save(fig, out_dir / "shap_summary.png", written)
    return written


# --------------------------------------------------------------------------- model card


def _fmt(value: Any) -> str:
    """A cell: floats rounded to 4 places, NaN/None as "n/a", pipes escaped."""
    if value is None:
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return str(round(v, 4))
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _records(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, pd.DataFrame):
        return [{str(k): v for k, v in r.items()} for r in value.to_dict(orient="records")]
    return [dict(r) for r in value]


def _feature_rows(features: Any) -> list[tuple[Any, Any, Any]]:
    rows: list[tuple[Any, Any, Any]] = []
    for f in features or ():
        if isinstance(f, Mapping):
            rows.append((f.get("name"), f.get("meaning", ""), f.get("unit", "")))
        elif hasattr(f, "name"):
            rows.append((f.name, getattr(f, "meaning", ""), getattr(f, "unit", "")))
        elif isinstance(f, str):
            rows.append((f, "", ""))
        else:
            t = tuple(f) + ("", "")
            rows.append((t[0], t[1], t[2]))
    return rows


def _floor_rows(floors: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[list[Any]]:
    """Promotion floors as rows: rule, required, observed (on ``metrics``), met."""
    rows: list[list[Any]] = []
    for key, floor in floors.items():
        metric, rule = key, "="
        if key.startswith("min_"):
            metric, rule = key[4:], ">="
        elif key.startswith("max_"):
            metric, rule = key[4:], "<="
        observed = metrics.get(metric)
        met: bool | None = None
        if isinstance(observed, int | float) and not math.isnan(float(observed)):
            obs = float(observed)
            if isinstance(floor, list | tuple) and len(floor) == 2:
                rule = "in"
                met = float(floor[0]) <= obs <= float(floor[1])
            elif isinstance(floor, int | float) and rule in (">=", "<="):
                met = obs >= float(floor) if rule == ">=" else obs <= float(floor)
        elif isinstance(floor, list | tuple) and len(floor) == 2:
            rule = "in"
        rows.append([metric if observed is not None else key, rule, floor, observed, met])
    return rows


def model_card(info: Mapping[str, Any]) -> str:
    """Render a markdown model card.

    Args:
        info: What to render; every key is optional:

            * ``model_name``: registered model name.
            * ``version``: registered version (None before registration).
            * ``candidate``: the estimator family, e.g. "logistic_regression".
            * ``run_id``, ``trained_at``, ``as_of``: the MLflow run, when it trained and
              the as-of date of the training data.
            * ``purpose``: text; defaults to :data:`DEFAULT_PURPOSE`.
            * ``intended_use``, ``not_intended_for``: texts; default to
              :data:`DEFAULT_INTENDED_USE` and :data:`DEFAULT_NOT_INTENDED_FOR`.
            * ``data``: the training-set fingerprint (rows, customers, snapshot dates,
              split ranges, label_strategy, horizon_days, bad_rate, hash, ...).
            * ``label_definition``: text; ``label_limits``: text, defaults to
              :data:`DEFAULT_LABEL_LIMITS`.
            * ``metrics``: split name → :func:`classification_metrics` dict.
            * ``promotion_floors``: e.g. ``{"min_roc_auc": 0.7, "max_ece": 0.1,
              "calibration_slope": [0.7, 1.3]}``, checked against the "test" metrics
              (else the last split given).
            * ``slices``: :func:`slice_metrics` frame, or a list of dicts.
            * ``fairness``: :func:`fairness_report` dict.
            * ``stability``: name → value, e.g. ``{"score_psi_train_vs_test": 0.03}``.
            * ``features``: the catalogue (objects with name/meaning/unit), dicts, or
              ``(name, meaning, unit)`` tuples.
            * ``caveats``: extra caveat lines (list of str).

    Returns:
        The card, markdown; numbers rounded to 4 places.
    """
    name = info.get("model_name") or "credit-risk model"
    version = info.get("version")
    out: list[str] = [f"# Model card: {name}" + (f" v{version}" if version is not None else "")]
    out.append("")
    out.append(_table(["item", "value"], [
        ["registered version", version if version is not None else "not registered yet"],
        ["candidate", info.get("candidate")],
        ["MLflow run", info.get("run_id")],
        ["trained at", info.get("trained_at")],
        ["data as of", info.get("as_of")],
    ]))

    out += ["", "## Purpose", "", str(info.get("purpose") or DEFAULT_PURPOSE)]
    out += ["", "## Intended use", "", str(info.get("intended_use") or DEFAULT_INTENDED_USE),
            "", "**Not intended for:** " + str(info.get("not_intended_for")
                                               or DEFAULT_NOT_INTENDED_FOR)]

    out += ["", "## Data", ""]
    data = info.get("data") or {}
    out.append(_table(["item", "value"], data.items()) if data else "_No fingerprint given._")

    out += ["", "## Label and its limits", ""]
    if info.get("label_definition"):
        out += [str(info["label_definition"]), ""]
    out.append("**Limits:** " + str(info.get("label_limits") or DEFAULT_LABEL_LIMITS))

    out += ["", "## Metrics", ""]
    metrics: Mapping[str, Mapping[str, Any]] = info.get("metrics") or {}
    if not metrics:
        out.append("_No metrics given._")
    for split, values in metrics.items():
        out += [f"### {split}", "", _table(["metric", "value"], values.items()), ""]
    floors = info.get("promotion_floors") or {}
    if floors:
        checked = "test" if "test" in metrics else (list(metrics)[-1] if metrics else None)
        observed = metrics.get(checked, {}) if checked else {}
        out += [f"### Promotion floors (checked on {checked or 'no split'})", "",
                _table(["metric", "rule", "required", "observed", "met"],
                       _floor_rows(floors, observed)), ""]

    out += ["", "## Slices", ""]
    slices = _records(info.get("slices"))
    if slices:
        headers = list(slices[0])
        out.append(_table(headers, ([r.get(h) for h in headers] for r in slices)))
    else:
        out.append("_No slice metrics given._")

    out += ["", "## Fairness", ""]
    fairness = info.get("fairness") or {}
    if fairness:
        out.append(
            f"Approval = PD < {_fmt(fairness.get('approve_below'))}; overall approval rate "
            f"{_fmt(fairness.get('overall_approval_rate'))}. Four-fifths rule: the lowest "
            "segment approval rate must be at least 0.8 of the highest (segments under "
            f"{_fmt(fairness.get('min_segment_size', MIN_FAIRNESS_SEGMENT))} customers are "
            "shown but not compared). The data holds no protected attribute; these are "
            "proxies for unequal treatment by channel and provider. Overall: "
            f"**{'passes' if fairness.get('passes_four_fifths') else 'fails'}**."
        )
        for seg_name, entry in (fairness.get("segmentations") or {}).items():
            out += ["", f"### {seg_name}", ""]
            out.append(_table(["segment", "n", "approval rate", "in ratio"], (
                [s, v.get("n"), v.get("approval_rate"), v.get("included")]
                for s, v in (entry.get("segments") or {}).items())))
            verdict = ("passes" if entry.get("passes_four_fifths") else "fails") if entry.get(
                "assessed", True) else "not assessed (fewer than two comparable segments)"
            out += ["", f"Ratio {_fmt(entry.get('ratio'))}: {verdict}."]
    else:
        out.append("_No fairness report given._")

    out += ["", "## Stability", ""]
    stability = info.get("stability") or {}
    if stability:
        out.append(_table(["measure", "value", "reading"], (
            [k, v, _psi_reading(v) if "psi" in k.lower() else ""] for k, v in stability.items())))
    else:
        out.append("_No stability measures given._")

    out += ["", "## Features", ""]
    feature_rows = _feature_rows(info.get("features"))
    out.append(_table(["feature", "meaning", "unit"], feature_rows) if feature_rows
               else "_No feature list given._")

    out += ["", "## Caveats", ""]
    caveats = [
        "The label is a proxy for default (see above); PD levels describe the proxy event.",
        "Trained on one platform's customers in one country and currency (UGX); "
        "performance elsewhere is unknown.",
        "Thin-file customers (few transactions) get less reliable scores; see Slices.",
        "Fairness is checked on channel and provider segments only: the data holds no "
        "protected attribute, so indirect discrimination cannot be ruled out.",
        "Metrics come from out-of-time snapshots; behaviour can drift. Monitor the score "
        "PSI and re-train when it exceeds 0.25.",
        *[str(c) for c in info.get("caveats") or ()],
    ]
    out += [f"- {c}" for c in caveats]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)) + "\n"


def _psi_reading(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    if math.isnan(v):
        return ""
    return "stable" if v < 0.1 else "moderate shift" if v <= 0.25 else "significant shift"
