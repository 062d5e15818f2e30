"""Who gets a model PD: the scoring population, and a policy answer for everyone else.

A PD is only credible for customers who behave like the ones the model learnt from:
those with a *customer-initiated purchase* in the last ``lookback_days`` before the
as-of date. Everyone else gets a policy answer instead of a PD:

* ``thin_file``: fewer than ``thin_file_min`` purchases ever (default 1: only platform rows);
* ``dormant``: no purchase in the lookback (known customer, gone quiet).

Customer-initiated purchases are positive-amount rows not on the platform's
ProviderId_4 (whose rows are cashback, loyalty and campaign credits, airtime float
and fees, all negative amounts, see :mod:`creditrisk.landing.simulate`), plus pay-later
purchases (ChannelId_5 rows: the customer bought, the platform settled it on credit).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from creditrisk import schema

DEFAULT_LOOKBACK_DAYS = 30
DEFAULT_THIN_FILE_MIN = 1


def purchase_mask(tx: pd.DataFrame) -> np.ndarray:
    """True for customer-initiated purchases (warehouse column names)."""
    return np.asarray(schema.purchase_mask(
        pd.to_numeric(tx["amount"]).to_numpy(), tx["provider_id"].astype("str").to_numpy(),
        tx["channel_id"].astype("str").to_numpy()))


SCORED, DORMANT = "scored", "dormant"
#: The one feature column :func:`segment` reads.
SEGMENT_COLUMN = "purchase_recency_days"


def segment(features: Mapping[str, Any], lookback_days: float) -> np.ndarray:
    """``scored`` for customers in the population (a purchase within the lookback), else
    ``dormant``: what batch scoring, the API and training all use (feature rows in).

    ``features``: a feature frame, or any mapping of feature name to a column of values
    (the API passes its rows' ``purchase_recency_days`` column without building a frame).
    """
    recent = np.asarray(features[SEGMENT_COLUMN], dtype=float) <= float(lookback_days)
    return np.where(recent, SCORED, DORMANT)


def purchases(tx: pd.DataFrame) -> pd.DataFrame:
    """Only the customer-initiated purchases of ``tx``."""
    return tx.loc[purchase_mask(tx)]


def _midnight(day: dt.date) -> pd.Timestamp:
    return pd.Timestamp(day.isoformat(), tz="UTC")


def last_purchase_age(tx: pd.DataFrame, as_of: dt.date) -> pd.Series:
    """Days from each customer's last purchase before ``as_of`` to ``as_of`` midnight."""
    p = purchases(tx)
    ts = pd.to_datetime(p["transaction_start_time"], utc=True)
    before = (ts < _midnight(as_of)).to_numpy()
    age = (_midnight(as_of) - ts[before]).dt.total_seconds() / 86_400.0
    return age.groupby(p.loc[before, "customer_id"].astype("str").to_numpy()).min()


def eligible(
    features_or_tx: pd.DataFrame, as_of: dt.date, lookback_days: int = DEFAULT_LOOKBACK_DAYS
) -> pd.Index:
    """Customers with a customer-initiated purchase in the ``lookback_days`` before ``as_of``.

    Args:
        features_or_tx: Transactions (warehouse columns, with ``amount``), or a feature
            frame indexed by customer with ``purchase_recency_days`` (from
            :func:`creditrisk.features.compute.compute_features`) or, failing that,
            ``recency_days`` (any transaction, platform rows included: an approximation).
        as_of: The scoring date (features use days before it).
        lookback_days: Length of the lookback.

    Returns:
        The eligible customer ids, sorted.
    """
    if "amount" in features_or_tx.columns:
        age = last_purchase_age(features_or_tx, as_of)
    else:
        col = ("purchase_recency_days" if "purchase_recency_days" in features_or_tx.columns
               else "recency_days")
        age = features_or_tx[col]
    return pd.Index(sorted(age.index[(age <= lookback_days).to_numpy()]), name="customer_id")


def policy_segments(
    tx: pd.DataFrame,
    customers: pd.Index,
    as_of: dt.date,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    thin_file_min: int = DEFAULT_THIN_FILE_MIN,
) -> pd.Series:
    """``scored``, ``dormant`` or ``thin_file`` for each of ``customers`` at ``as_of``."""
    p = purchases(tx)
    ts = pd.to_datetime(p["transaction_start_time"], utc=True)
    before = p.loc[(ts < _midnight(as_of)).to_numpy()]
    counts = before.groupby(before["customer_id"].astype("str")).size()
    counts = counts.reindex(customers, fill_value=0)
    scored = customers.isin(eligible(tx, as_of, lookback_days))
    seg = np.where(counts.to_numpy() < thin_file_min, "thin_file",
                   np.where(scored, "scored", "dormant"))
    return pd.Series(seg, index=customers, name="segment")
