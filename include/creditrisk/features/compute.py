"""Point-in-time customer features: one function for batch scoring, training and the API.

:func:`compute_features` takes transactions (warehouse column names) and an as-of date
and uses only transactions strictly before that date's midnight UTC. Every feature is
described once in :data:`creditrisk.catalogue.CATALOGUE`.

Computed in pandas: ``benchmarks/features.py`` measures this against the same
aggregation in PostgreSQL and records the result in the README.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from creditrisk.catalogue import FEATURE_NAMES
from creditrisk.schema import TRANSACTION_COLUMNS, purchase_mask

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Uganda is UTC+3 all year (no DST); hour-of-day and weekday patterns use local time.
LOCAL_UTC_OFFSET_HOURS = 3
TREND_WINDOW_DAYS = 30
MAIN_CATEGORIES = ("airtime", "financial_services", "utility_bill")


def as_of_timestamp(as_of: dt.date) -> pd.Timestamp:
    """Midnight UTC of the as-of date: features use transactions strictly before it."""
    import pandas as pd

    return pd.Timestamp(as_of.isoformat(), tz="UTC")


def compute_features(transactions: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Compute every catalogue feature for every customer active before ``as_of``.

    Args:
        transactions: Rows with at least :data:`TRANSACTION_COLUMNS`;
            ``transaction_start_time`` tz-aware (UTC) and ``amount`` numeric. Rows on or
            after the as-of date are ignored, so callers may pass more.
        as_of: The feature date.

    Long because every feature reuses the same factorised customer codes, ages and masks
    in one vectorised pass (1M transactions in about a second, ``benchmarks/features.py``);
    the windowed purchase features are their own function.

    Returns:
        One row per customer, indexed by ``customer_id`` (sorted), columns in
        :data:`FEATURE_NAMES` order, all float64. Customers with no transaction before
        ``as_of`` are absent.
    """
    import numpy as np
    import pandas as pd

    cutoff = as_of_timestamp(as_of)
    ts_all = pd.to_datetime(transactions["transaction_start_time"], utc=True)
    keep = (ts_all < cutoff).to_numpy()
    tx = transactions.loc[keep, list(TRANSACTION_COLUMNS)]
    if tx.empty:
        return pd.DataFrame(
            columns=list(FEATURE_NAMES), index=pd.Index([], name="customer_id"), dtype="float64"
        )
    ts = ts_all[keep]
    # Integer customer codes make every groupby a bincount-speed operation.
    codes, customers = pd.factorize(tx["customer_id"].astype("str"), sort=True)
    n = len(customers)
    age_days = ((cutoff - ts).dt.total_seconds() / 86_400.0).to_numpy()
    amount = pd.to_numeric(tx["amount"]).to_numpy(dtype="float64")
    debit = amount > 0
    credit = amount < 0

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(codes[mask], minlength=n).astype("float64")

    def total(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.bincount(codes[mask], weights=values[mask], minlength=n)

    all_rows = np.ones(len(tx), dtype=bool)
    frequency = count(all_rows)
    out: dict[str, np.ndarray] = {}
    recency = np.full(n, np.inf)
    np.minimum.at(recency, codes, age_days)
    tenure = np.zeros(n)
    np.maximum.at(tenure, codes, age_days)
    out["recency_days"] = recency
    out["frequency"] = frequency

    debit_count = count(debit)
    debit_sum = total(amount, debit)
    debit_sq = total(amount * amount, debit)
    out["debit_count"] = debit_count
    out["monetary_total"] = debit_sum
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(debit_count > 0, debit_sum / debit_count, 0.0)
        var = np.where(
            debit_count > 1,
            (debit_sq - debit_count * mean * mean) / np.maximum(debit_count - 1, 1),
            0.0,
        )
    out["monetary_mean"] = mean
    out["monetary_std"] = np.sqrt(np.clip(var, 0.0, None))
    dmax = np.zeros(n)
    np.maximum.at(dmax, codes[debit], amount[debit])
    out["monetary_max"] = dmax
    out["credit_count"] = count(credit)
    out["credit_total"] = 0.0 - total(amount, credit)  # credits are negative amounts
    out["tenure_days"] = tenure

    day_number = np.floor(
        (ts.dt.tz_convert("UTC") - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
        / 86_400.0
    ).astype("int64")
    d0 = day_number.min()
    out["active_days"] = _distinct_codes(
        codes, day_number - d0, int(day_number.max() - d0 + 1), n
    )

    # Gaps between consecutive purchases, per customer, in time order.
    dcodes = codes[debit]
    dage = age_days[debit]
    order = np.lexsort((-dage, dcodes))  # by customer, then oldest first
    sc, sa = dcodes[order], dage[order]
    same = np.zeros(len(sc), dtype=bool)
    same[1:] = sc[1:] == sc[:-1]
    gaps = np.zeros(len(sc))
    gaps[1:] = sa[:-1] - sa[1:]
    gcodes = sc[same]
    gvals = gaps[same]
    gap_count = np.bincount(gcodes, minlength=n)
    gap_sum = np.bincount(gcodes, weights=gvals, minlength=n)
    gap_max = np.zeros(n)
    np.maximum.at(gap_max, gcodes, gvals)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["mean_gap_days"] = np.where(gap_count > 0, gap_sum / np.maximum(gap_count, 1), tenure)
    out["max_gap_days"] = np.where(gap_count > 0, gap_max, tenure)

    recent = age_days <= TREND_WINDOW_DAYS
    recent_count = count(recent)
    out["txn_last_30d"] = recent_count
    out["spend_last_30d"] = total(amount, recent & debit)
    before_count = frequency - recent_count
    before_span = np.maximum(tenure - TREND_WINDOW_DAYS, 1.0)
    recent_span = np.minimum(np.maximum(tenure, 1.0), TREND_WINDOW_DAYS)
    out["activity_trend_30d"] = np.log1p(recent_count / recent_span) - np.log1p(
        np.where(tenure > TREND_WINDOW_DAYS, before_count / before_span, recent_count / recent_span)
    )

    def factor(col: str) -> tuple[np.ndarray, np.ndarray]:
        vcodes, uniques = pd.factorize(tx[col].astype("str"))
        return vcodes, np.asarray(uniques, dtype=object)

    def is_in(vcodes: np.ndarray, uniques: np.ndarray, values: tuple[str, ...]) -> np.ndarray:
        return np.isin(uniques, values)[vcodes]

    cat_codes, cat_uniques = factor("product_category")
    for cat in MAIN_CATEGORIES:
        out[f"share_{cat}"] = count(is_in(cat_codes, cat_uniques, (cat,))) / frequency
    out["share_other_categories"] = (
        count(~is_in(cat_codes, cat_uniques, MAIN_CATEGORIES)) / frequency
    )
    out["n_categories"] = _distinct_codes(codes, cat_codes, len(cat_uniques), n)
    prod_codes, prod_uniques = factor("product_id")
    out["n_products"] = _distinct_codes(codes, prod_codes, len(prod_uniques), n)
    ch_codes, ch_uniques = factor("channel_id")
    out["share_channel_web"] = count(is_in(ch_codes, ch_uniques, ("ChannelId_3",))) / frequency
    out["share_channel_pay_later"] = (
        count(is_in(ch_codes, ch_uniques, ("ChannelId_5",))) / frequency
    )
    pr_codes, pr_uniques = factor("provider_id")
    out["n_providers"] = _distinct_codes(codes, pr_codes, len(pr_uniques), n)
    out["share_platform_provider"] = (
        count(is_in(pr_codes, pr_uniques, ("ProviderId_4",))) / frequency
    )

    local = ts + pd.Timedelta(hours=LOCAL_UTC_OFFSET_HOURS)
    hour = local.dt.hour.to_numpy()
    weekday = local.dt.day_of_week.to_numpy()
    out["share_night"] = count(hour < 6) / frequency
    out["share_weekend"] = count(weekday >= 5) / frequency
    fraud = pd.to_numeric(tx["fraud_result"]).to_numpy()
    out["fraud_count"] = count(fraud == 1)
    pricing = pd.to_numeric(tx["pricing_strategy"]).to_numpy()
    out["share_pricing_2"] = count(pricing == 2) / frequency
    out["share_pricing_4"] = count(pricing == 4) / frequency

    out.update(_purchase_windows(tx, codes, n, age_days, day_number, tenure))
    frame = pd.DataFrame(
        {name: out[name] for name in FEATURE_NAMES},
        index=pd.Index(np.asarray(customers, dtype=object), name="customer_id"),
    )
    return frame.astype("float64")


def _purchase_windows(
    tx: pd.DataFrame, codes: np.ndarray, n: int, age_days: np.ndarray, day_number: np.ndarray,
    tenure: np.ndarray,
) -> dict[str, np.ndarray]:
    """The fixed-lookback features over customer-initiated purchases only.

    They mean the same whether a customer has 30 days of history or 300, unlike the
    cumulative counts and totals above.
    """
    import numpy as np
    import pandas as pd

    amount = pd.to_numeric(tx["amount"]).to_numpy(dtype="float64")
    buy = purchase_mask(amount, tx["provider_id"].astype("str").to_numpy(),
                        tx["channel_id"].astype("str").to_numpy())
    last = np.full(n, np.inf)
    np.minimum.at(last, codes[buy], age_days[buy])
    out = {"purchase_recency_days": np.where(np.isfinite(last), last, tenure)}
    for days in (7, 30):
        inside = buy & (age_days <= days)
        out[f"purchases_{days}d"] = np.bincount(codes[inside], minlength=n).astype("float64")
        if days == 7:
            out["spend_7d"] = np.bincount(codes[inside], weights=np.abs(amount[inside]),
                                          minlength=n)
    month = buy & (age_days <= 30)
    d0 = int(day_number.min())
    out["active_days_30d"] = _distinct_codes(
        codes[month], day_number[month] - d0, int(day_number.max() - d0 + 1), n)
    pcodes, puniques = pd.factorize(tx["product_id"].astype("str"))
    out["n_products_30d"] = _distinct_codes(codes[month], pcodes[month], len(puniques), n)
    return out


def _distinct_codes(codes: np.ndarray, vcodes: np.ndarray, k: int, n: int) -> np.ndarray:
    """Distinct value codes per customer code (values coded 0..k-1)."""
    import numpy as np

    k = max(k, 1)
    pair = codes.astype("int64") * k + vcodes
    if n * k <= 50_000_000:  # a dense seen-table: O(rows), no hashing or sorting
        seen = np.zeros(n * k, dtype=bool)
        seen[pair] = True
        return seen.reshape(n, k).sum(axis=1).astype("float64")
    return np.bincount(np.unique(pair) // k, minlength=n).astype("float64")
