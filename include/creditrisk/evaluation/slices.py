"""Slices and fairness: the model's metrics per customer segment, approval-rate ratios."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from creditrisk.errors import InputError
from creditrisk.evaluation.metrics import as_scores, both_classes, label_score_pair

if TYPE_CHECKING:
    pass

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int_]

#: probabilities are clipped to [EPS_LOG_LOSS, 1 - EPS_LOG_LOSS] for the log loss


THIN_FILE_MAX_TRANSACTIONS = 3


#: segments smaller than this are reported but left out of the four-fifths ratio
MIN_FAIRNESS_SEGMENT = 30


FOUR_FIFTHS = 0.8


CATEGORY_SHARES: dict[str, str] = {
    "share_airtime": "airtime",
    "share_financial_services": "financial_services",
    "share_utility_bill": "utility_bill",
    "share_other_categories": "other",
}


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

    y, p = label_score_pair(y_true, pd_)
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
            auc = float(roc_auc_score(ys, ps)) if both_classes(ys) else math.nan
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
    p = as_scores(pd_)
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
