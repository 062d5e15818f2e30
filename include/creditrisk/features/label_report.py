"""How much the proxy default label depends on its arbitrary choices.

For one as-of date ``T`` the report labels the same customers with every combination of

* horizon ``H`` (14 / 30 / 45 days: the outcome window is UTC days ``T .. T+H-1``);
* variant: ``silence`` (bad = no customer-initiated purchase in the window, or fraud),
  ``rfm`` (silence, or the least engaged K-Means RFM segment of the window's purchases),
  and ``legacy`` (the platform's label until 2026-12: every row counts as activity,
  platform credits included, and the least engaged K-Means segment is bad);
* population: everyone with a transaction before ``T`` (``all``) or only those
  :func:`creditrisk.population.eligible` (a purchase in the lookback);

and reports each label's bad rate, how well purchase recency alone ranks it (AUC) and its
agreement with the reference label (silence, 30 days, same population): share of equal
labels and Cohen's kappa (chance-corrected agreement). A label that moves a lot between
reasonable choices is a weak foundation for an absolute PD level.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from creditrisk.features.labels import ForwardWindow
from creditrisk.features.population import last_purchase_age

VARIANTS = ("silence", "rfm", "legacy")
HORIZONS = (14, 30, 45)


def purchase_labels(
    tx: pd.DataFrame, customers: pd.Index, as_of: dt.date, horizon_days: int,
    variant: str = "silence",
) -> pd.Series:
    """Bad (True) per customer from the window ``as_of .. as_of + horizon_days - 1``.

    Args:
        tx: Transactions, warehouse column names; must cover the window.
        customers: Who to label.
        as_of: Start of the outcome window (features use days before it).
        horizon_days: Window length ``H``.
        variant: ``silence``, ``rfm`` or ``legacy`` (see the module docstring).
    """
    strategies = {
        "silence": ForwardWindow(),  # the platform's label
        "rfm": ForwardWindow(kmeans_segment=True),
        "legacy": ForwardWindow(activity="all", kmeans_segment=True),
    }
    if variant not in strategies:
        raise ValueError(f"unknown label variant {variant!r}; choose one of {VARIANTS}")
    frame = strategies[variant].label(tx, customers, as_of, horizon_days).frame
    return frame["is_high_risk"].astype(bool).rename("is_high_risk")


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two boolean labelings (NaN when chance agreement is 1)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    po = float(np.mean(a == b))
    pa, pb = a.mean(), b.mean()
    pe = float(pa * pb + (1 - pa) * (1 - pb))
    return float("nan") if pe >= 1.0 else (po - pe) / (1.0 - pe)


def _recency_auc(y: np.ndarray, recency: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, recency)) if 0 < y.sum() < len(y) else float("nan")


def label_sensitivity(
    tx: pd.DataFrame,
    as_of: dt.date,
    horizons: Sequence[int] = HORIZONS,
    variants: Sequence[str] = VARIANTS,
    lookback_days: int = 30,
    reference: tuple[int, str] = (30, "silence"),
) -> pd.DataFrame:
    """One row per (population, horizon, variant): n, bad rate, recency AUC, agreement.

    ``window_complete`` is False when the data end before ``as_of + H``: such a label
    counts unobserved days as silence and is shown only to make that visible.
    """
    ts = pd.to_datetime(tx["transaction_start_time"], utc=True)
    cutoff = pd.Timestamp(as_of.isoformat(), tz="UTC")
    seen = pd.Index(sorted(tx.loc[(ts < cutoff).to_numpy(), "customer_id"].astype("str").unique()))
    age = last_purchase_age(tx, as_of).reindex(seen)
    return sensitivity_table(tx, as_of, age, horizons, variants, lookback_days, reference)


def sensitivity_table(
    window_tx: pd.DataFrame,
    as_of: dt.date,
    age: pd.Series,
    horizons: Sequence[int] = HORIZONS,
    variants: Sequence[str] = VARIANTS,
    lookback_days: int = 30,
    reference: tuple[int, str] = (30, "silence"),
) -> pd.DataFrame:
    """:func:`label_sensitivity` from its two bounded inputs: the transactions from
    ``as_of`` on (the outcome windows; earlier rows are ignored) and ``age``, the days
    since each customer's last purchase before ``as_of`` for every customer seen before
    it (NaN: no purchase; :func:`creditrisk.storage.features.last_purchase_ages`)."""
    ts = pd.to_datetime(window_tx["transaction_start_time"], utc=True)
    cutoff = pd.Timestamp(as_of.isoformat(), tz="UTC")
    last_day = ts.max().normalize() if len(ts) else cutoff - pd.Timedelta(days=1)
    seen = pd.Index(sorted(age.index.astype("str")), name="customer_id")
    age = age.reindex(seen).fillna(1e6)
    pops = {"all": seen,
            "eligible": pd.Index(sorted(seen[(age <= lookback_days).to_numpy()]),
                                 name="customer_id")}
    # each label selects its own window (from as_of on) of these rows
    labels = {(h, v): purchase_labels(window_tx, seen, as_of, h, v)
              for h in horizons for v in variants}
    if reference not in labels:
        labels[reference] = purchase_labels(window_tx, seen, as_of, *reference)
    rows = []
    for pop, who in pops.items():
        ref = labels[reference].reindex(who).to_numpy()
        for (h, v), lab in labels.items():
            y = lab.reindex(who).to_numpy()
            rows.append({
                "population": pop, "horizon": h, "variant": v, "n": len(y),
                "bad_rate": float(y.mean()) if len(y) else float("nan"),
                "window_complete": bool(cutoff + pd.Timedelta(days=h - 1) <= last_day),
                "recency_auc": _recency_auc(y.astype(int), age.reindex(who).to_numpy()),
                "agree_vs_ref": float(np.mean(y == ref)) if len(y) else float("nan"),
                "kappa_vs_ref": cohen_kappa(y, ref),
            })
    out = pd.DataFrame(rows).sort_values(["population", "variant", "horizon"])
    return out.reset_index(drop=True)
