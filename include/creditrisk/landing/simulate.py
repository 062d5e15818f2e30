"""Deterministic synthetic Xente transactions, written as one landing CSV per UTC day.

Behaviour model. Customers differ in when they start (45% are active from the first day,
the rest join at a uniformly random moment of the period), how often they buy (a
heavy-tailed log-normal daily rate: many buy once or twice, a few hundreds of times), how
much they spend, which product categories they prefer, their channel and their pricing
strategy per provider. Each follows one hidden trajectory:

* steady (43.5%): buys at a constant rate until the end;
* fading (40%): buys at a constant rate until a random change point, usually early in its
  active life, then stops (half of them) or decays exponentially with a 1-10 day time
  constant;
* growing (15%): its buying rate and amounts rise exponentially, by 2-5x and 1.3-2.7x over
  the length of the period;
* fraud_prone (1.5%): buys steadily, plus large confirmed-fraud transactions
  (FraudResult = 1) whose likelihood grows with the square of its age in the period.

Around the purchases the platform adds its own ProviderId_4 rows, which carry all the
negative amounts: a 2-5% cashback seconds after most retail purchases, a one-off -1,000
loyalty credit after the second purchase of half the customers, -5,000 campaign credits
about monthly to customers active that day, large airtime-float credits of a few agent
customers, and pay-later (ChannelId_5) purchases. Rates are per day, so counts scale with
the number of days. The trajectory never appears in the output; it only shapes the rows.

Everything is drawn from ``numpy.random.Generator`` streams derived from the seed, in
vectorised form, so equal arguments give byte-identical files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from creditrisk import schema
from creditrisk.errors import InputError
from creditrisk.landing.files import (
    _DAY,
    _epoch_seconds,
    _refuse_existing,
    _write_frame,
)

__all__ = ["GenerateSummary", "generate_landing", "generate_transactions"]


_TRAJECTORIES: tuple[str, ...] = ("steady", "fading", "growing", "fraud_prone")
_STEADY, _FADING, _GROWING, _FRAUD_PRONE = range(4)
_TRAJECTORY_SHARES = (0.435, 0.40, 0.15, 0.015)

# Customer activity: purchases per day ~ LogNormal(log(_RATE_MEDIAN), _RATE_SIGMA), calibrated
# so that 90 days give the public file's rows per customer (median 7, mean ~25, 19% single).
_RATE_MEDIAN = 0.1
_RATE_SIGMA = 1.4
_PRE_EXISTING_SHARE = 0.45

# Row kinds, also the order in which simultaneous rows are written.
_PURCHASE, _CASHBACK, _BONUS, _PROMO, _FLOAT, _FRAUD = range(6)

# Platform counter-accounts on ProviderId_4 rows: (AccountId, SubscriptionId) numbers.
# Code 0 means "the customer's own account".
_PLATFORM_ACCOUNT = int(schema.PLATFORM_ACCOUNT_ID.removeprefix("AccountId_"))
_PLATFORM_ACCOUNTS = np.array(
    [[0, 0], [_PLATFORM_ACCOUNT, 3829], [4840, 3829], [4249, 4429], [10, 4346]]
)
_OWN, _ACC_CASHBACK, _ACC_BONUS, _ACC_FLOAT, _ACC_PAY_LATER = range(5)

_CATEGORIES = schema.PRODUCT_CATEGORIES
_CAT = {name: i for i, name in enumerate(_CATEGORIES)}
# Share of each category among customer purchases (not among all rows: platform rows add
# financial_services and airtime), derived from the public file's totals.
_PURCHASE_CATEGORY_SHARES = {
    "airtime": 0.698,
    "financial_services": 0.213,
    "utility_bill": 0.0327,
    "data_bundles": 0.0276,
    "tv": 0.0219,
    "ticket": 0.0037,
    "movies": 0.0030,
    "transport": 0.0004,
    "other": 0.00004,
}

# Provider mix of purchases outside financial_services (ProviderId_6 sells no fin. services).
_RETAIL_PROVIDERS = {6: 0.745, 5: 0.172, 1: 0.048, 3: 0.035}
# (category, ProductId, {ProviderId: weight}, weight of the product within its category)
_OFFERS: tuple[tuple[str, int, Mapping[int, float], float], ...] = (
    ("airtime", 3, _RETAIL_PROVIDERS, 0.51),
    ("airtime", 10, _RETAIL_PROVIDERS, 0.38),
    ("airtime", 1, _RETAIL_PROVIDERS, 0.06),
    ("airtime", 4, _RETAIL_PROVIDERS, 0.049),
    ("airtime", 16, {6: 1.0}, 0.001),
    ("financial_services", 15, {5: 0.58, 1: 0.29, 3: 0.13}, 0.955),
    ("financial_services", 14, {6: 0.65, 5: 0.35}, 0.043),
    ("financial_services", 9, {2: 1.0}, 0.0015),
    ("utility_bill", 21, _RETAIL_PROVIDERS, 0.79),
    ("utility_bill", 22, _RETAIL_PROVIDERS, 0.13),
    ("utility_bill", 13, _RETAIL_PROVIDERS, 0.08),
    ("data_bundles", 11, _RETAIL_PROVIDERS, 0.8),
    ("data_bundles", 2, _RETAIL_PROVIDERS, 0.2),
    ("tv", 19, _RETAIL_PROVIDERS, 0.75),
    ("tv", 8, {6: 1.0}, 0.15),
    ("tv", 7, {1: 0.6, 3: 0.4}, 0.10),
    ("ticket", 20, {3: 0.45, 5: 0.45, 1: 0.05, 6: 0.05}, 1.0),
    ("movies", 24, {5: 0.5, 6: 0.45, 1: 0.05}, 1.0),
    ("transport", 5, {1: 0.5, 5: 0.5}, 1.0),
    ("other", 23, {5: 1.0}, 1.0),
)

# Purchase amounts: LogNormal(median, sigma) around the customer's own scale, snapped to
# round "price list" values as real top-ups and bills are: (median, sigma, mantissas).
_ROUND = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
_TOPUP = (1.0, 1.5, 2.0, 2.5, 3.0, 5.0)
_AMOUNTS: Mapping[str, tuple[float, float, tuple[float, ...]]] = {
    "airtime": (1_300.0, 1.1, _TOPUP),
    "financial_services": (5_500.0, 1.5, _ROUND),
    "utility_bill": (10_000.0, 0.9, _ROUND),
    "data_bundles": (1_200.0, 1.0, _TOPUP),
    "tv": (9_000.0, 1.1, _ROUND),
    "ticket": (80_000.0, 0.35, _ROUND),
    "movies": (6_000.0, 0.3, (1.0, 5.0)),
    "transport": (50_000.0, 0.2, _ROUND),
    "other": (5_000.0, 1.0, _ROUND),
}
_CUSTOMER_SCALE_SIGMA = 0.5
_ODD_AMOUNT_SHARE = 0.04
_PROMO_REACH = 0.2
_HABIT_SHARE = 0.45

# Local time in Kampala is UTC+3; relative activity per local hour 00..23.
_LOCAL_HOUR_WEIGHTS = (
    2.0, 1.2, 0.8, 0.5, 0.5, 0.8, 1.5, 3.0, 4.5, 5.5, 6.5, 7.0,
    7.0, 7.0, 7.0, 6.5, 6.0, 6.0, 6.0, 5.5, 5.0, 4.5, 3.5, 2.5,
)  # fmt: skip
_UTC_HOUR_CDF = np.cumsum(np.roll(np.array(_LOCAL_HOUR_WEIGHTS), -3)) / sum(_LOCAL_HOUR_WEIGHTS)


@dataclass(frozen=True)
class GenerateSummary:
    """What :func:`generate_landing` wrote.

    Attributes:
        rows: Transactions written.
        customers: Distinct customers among them.
        fraud_rows: Rows with FraudResult = 1.
        files: The landing files, one per day, in day order.
        first_day: First UTC day of the period.
        last_day: Last UTC day of the period (the ``end_date``).
    """

    rows: int
    customers: int
    fraud_rows: int
    files: list[Path]
    first_day: dt.date
    last_day: dt.date


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def generate_transactions(
    *,
    customers: int | None,
    days: int,
    end_date: dt.date,
    seed: int = 42,
    world: str = "synthetic",
    sequence_path: str | Path | None = None,
) -> pd.DataFrame:
    """Simulate Xente transactions of ``customers`` customers over ``days`` UTC days.

    Args:
        customers: Number of customers; each makes at least one transaction.
        days: Length of the period in days; it ends on ``end_date`` inclusive.
        end_date: Last UTC day of the period.
        seed: Seed of the random streams; equal arguments give equal frames.
        world: ``synthetic`` (the hidden trajectories above, default), ``xente`` (the real
            per-customer activity of ``sequence_path``) or ``null`` (one shared constant
            rate: the future is independent of the past); see
            :mod:`creditrisk.landing.worlds`.
        sequence_path: The real customer-sequence CSV, for the ``xente`` world only.

    Returns:
        A frame with exactly the columns ``schema.XENTE_COLUMNS``, sorted by
        ``TransactionStartTime`` (``datetime64[ns, UTC]``). ``Amount`` is float, ``Value``,
        ``CountryCode``, ``PricingStrategy`` and ``FraudResult`` are integers, the rest text.

    Raises:
        InputError: If an argument is out of range.
    """
    return _world_frame(customers, days, end_date, seed, world, sequence_path)


def _world_frame(customers: int | None, days: int, end_date: dt.date, seed: int, world: str,
                 sequence_path: str | Path | None) -> pd.DataFrame:
    if world == "synthetic":
        if customers is None:
            raise InputError("the synthetic world needs a number of customers")
        df, _ = _simulate(customers=customers, days=days, end_date=end_date, seed=seed)
        return df
    # worlds.py renders with this module's row machinery, so it imports this module
    from creditrisk.landing.worlds import generate_world

    return generate_world(world, customers=customers, days=days, end_date=end_date, seed=seed,
                          sequence_path=sequence_path)


def generate_landing(
    *,
    customers: int | None,
    days: int,
    end_date: dt.date,
    out_dir: Path,
    seed: int = 42,
    overwrite: bool = False,
    world: str = "synthetic",
    sequence_path: str | Path | None = None,
) -> GenerateSummary:
    """Generate transactions and write them as daily landing files, one per day of the period.

    Args:
        customers: Number of customers; each makes at least one transaction.
        days: Length of the period in days; it ends on ``end_date`` inclusive.
        end_date: Last UTC day of the period.
        out_dir: Directory for the files; created if missing.
        seed: Seed of the random streams; equal arguments give byte-identical files.
        overwrite: Replace existing landing files instead of refusing.
        world: ``synthetic``, ``xente`` or ``null`` (see :func:`generate_transactions`).
        sequence_path: The real customer-sequence CSV, for the ``xente`` world only.

    Returns:
        A summary of what was written.

    Raises:
        InputError: If an argument is out of range or a target file exists and ``overwrite``
            is false (checked before anything is generated or written).
    """
    first_day, last_day = _period(customers or 1, days, end_date)
    all_days = [first_day + dt.timedelta(days=i) for i in range(days)]
    if not overwrite:
        _refuse_existing(out_dir, all_days)
    df = _world_frame(customers, days, end_date, seed, world, sequence_path)
    seconds = _epoch_seconds(df["TransactionStartTime"])
    files = _write_frame(df, seconds, all_days, out_dir, overwrite=overwrite)
    return GenerateSummary(
        rows=len(df),
        customers=int(df["CustomerId"].nunique()),
        fraud_rows=int(df["FraudResult"].sum()),
        files=files,
        first_day=first_day,
        last_day=last_day,
    )


# ---------------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------------


def _period(customers: Any, days: Any, end_date: Any) -> tuple[dt.date, dt.date]:
    for name, value in (("customers", customers), ("days", days)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise InputError(f"{name} must be an integer, got {value!r}")
        if value < 1:
            raise InputError(f"{name} must be at least 1, got {value}")
    if not isinstance(end_date, dt.date):
        raise InputError(f"end_date must be a date, got {end_date!r}")
    if isinstance(end_date, dt.datetime):
        end_date = end_date.date()
    try:
        first_day = end_date - dt.timedelta(days=int(days) - 1)
    except OverflowError as exc:
        raise InputError(f"{days} days before {end_date} is out of range") from exc
    return first_day, end_date


#: The per-row columns of a _Block (all but ``kind`` and the block-relative ``batch_of``).
_ROW_FIELDS = ("cust", "t", "cat", "product", "provider", "channel", "amount", "value",
               "pricing", "fraud", "account")


@dataclass
class _Block:
    """Columns of one kind of row, before ids are assigned."""

    kind: int
    cust: np.ndarray  # customer index
    t: np.ndarray  # seconds since the start of the period
    cat: np.ndarray
    product: np.ndarray
    provider: np.ndarray
    channel: np.ndarray
    amount: np.ndarray
    value: np.ndarray
    pricing: np.ndarray
    fraud: np.ndarray
    account: np.ndarray  # code into _PLATFORM_ACCOUNTS (0 = customer's own)
    batch_of: np.ndarray  # index (into this block) of the row whose BatchId it shares

    def __len__(self) -> int:
        return len(self.cust)

    def take(self, idx: np.ndarray) -> _Block:
        remap = np.full(len(self), -1, dtype=np.int64)
        remap[idx] = np.arange(len(idx))
        fields = {k: getattr(self, k)[idx] for k in (*_ROW_FIELDS, "batch_of")}
        # A row whose batch leader was dropped leads its own batch.
        leader = remap[fields["batch_of"]]
        fields["batch_of"] = np.where(leader >= 0, leader, np.arange(len(idx)))
        return _Block(kind=self.kind, **fields)


def _block(kind: int, cust: np.ndarray, t: np.ndarray, **cols: Any) -> _Block:
    n = len(cust)

    def col(name: str, default: float, dtype: Any) -> np.ndarray:
        value = cols.pop(name, default)
        return np.broadcast_to(np.asarray(value, dtype=dtype), (n,)).copy()

    block = _Block(
        kind=kind,
        cust=np.asarray(cust, dtype=np.int64),
        t=np.asarray(t, dtype=np.int64),
        cat=col("cat", 0, np.int8),
        product=col("product", 0, np.int16),
        provider=col("provider", 0, np.int8),
        channel=col("channel", 0, np.int8),
        amount=col("amount", 0.0, np.float64),
        value=col("value", 0, np.int64),
        pricing=col("pricing", 2, np.int8),
        fraud=col("fraud", 0, np.int8),
        account=col("account", _OWN, np.int8),
        batch_of=col("batch_of", -1, np.int64),
    )
    if cols:
        raise TypeError(f"unknown columns {sorted(cols)}")
    if (block.batch_of < 0).any():
        block.batch_of = np.where(block.batch_of < 0, np.arange(n), block.batch_of)
    return block


def _choose_rows(rng: np.random.Generator, weights: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """For each row, draw a column of ``weights[owner[row]]`` (rows of weights need not sum to 1).

    Vectorised categorical sampling with a different distribution per owner: owners'
    cumulative weights are laid end to end as ``owner + cdf`` and searched at once.
    """
    n_owners, k = weights.shape
    cdf = np.cumsum(weights, axis=1)
    cdf = cdf / cdf[:, -1:]
    keys = (np.arange(n_owners)[:, None] + cdf).ravel()
    keys[k - 1 :: k] = np.arange(1, n_owners + 1)  # exact ends despite rounding
    target = owner + rng.random(len(owner))
    pos = np.searchsorted(keys, target, side="right")
    return np.minimum(pos - owner * k, k - 1)


def _snap(values: np.ndarray, mantissas: tuple[float, ...]) -> np.ndarray:
    """Round positive values to the nearest (in log terms) mantissa x 10^k."""
    grid = np.array([m * 10.0**e for e in range(0, 9) for m in mantissas])
    log_grid = np.log(grid)
    mids = (log_grid[1:] + log_grid[:-1]) / 2
    return grid[np.searchsorted(mids, np.log(np.maximum(values, 1.0)))]


def _clock_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds into a UTC day, following Kampala's daily rhythm."""
    hour = np.searchsorted(_UTC_HOUR_CDF, rng.random(n), side="right")
    return np.minimum(hour, 23) * 3600 + rng.integers(0, 3600, n)


def _offers_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rows = [
        (_CAT[cat], product, provider, product_weight * provider_weight)
        for cat, product, providers, product_weight in _OFFERS
        for provider, provider_weight in providers.items()
    ]
    cat, product, provider, weight = (np.array(x) for x in zip(*rows, strict=True))
    # One row of weights per category over all offers, zero outside the category.
    per_cat = np.zeros((len(_CATEGORIES), len(rows)))
    per_cat[cat, np.arange(len(rows))] = weight
    return per_cat, cat, product, provider


def _pricing(provider: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Pricing strategy of a customer (uniform ``u``) at a provider: stable per pair."""
    out = np.full(len(provider), 2, dtype=np.int8)
    out[(provider == 3) & (u < 0.61)] = 1
    out[(provider == 5) & (u < 0.45)] = 4
    out[(provider == 5) & (u >= 0.45) & (u < 0.475)] = 0
    out[(provider == 1) & (u < 0.34)] = 4
    return out


def _simulate(
    *, customers: int, days: int, end_date: dt.date, seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate the period and also return each customer's hidden behaviour.

    Long because the customers' hidden state and every row kind are drawn in one pass from
    random streams spawned in a fixed order: moving a draw changes every file the seed
    gives, which the byte-identity tests would (rightly) catch.

    Returns:
        ``(transactions, customers)``: the frame of :func:`generate_transactions` and one row
        per customer with ``CustomerId``, ``trajectory`` (one of ``_TRAJECTORIES``),
        ``start_day`` (days after the period's start when the customer became active),
        ``change_day`` (fading: when activity starts to fade), ``decay_days`` (fading: time
        constant, 0 = stops), ``growth`` (growing: log-factor of the rate rise over the
        period), ``base_rate`` (purchases per day), ``agent``, ``fraud_rate``,
        ``pay_later_p`` (share of retail purchases made with pay-later) and
        ``airtime_weight`` (the customer's preference weight for airtime among its
        purchase categories).
    """
    first_day, _ = _period(customers, days, end_date)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    n, w = int(customers), float(days)
    streams = np.random.SeedSequence(int(seed)).spawn(9)
    (r_cust, r_buy, r_cash, r_bonus, r_promo, r_float, r_fraud, r_ids, r_time) = (
        np.random.default_rng(s) for s in streams
    )

    # --- customers -----------------------------------------------------------------------
    counts = np.floor(np.array(_TRAJECTORY_SHARES) * n).astype(int)
    counts[0] += n - counts.sum()
    traj = r_cust.permutation(np.repeat(np.arange(4, dtype=np.int8), counts))
    pre_existing = r_cust.random(n) < _PRE_EXISTING_SHARE
    start = np.where(pre_existing, 0.0, r_cust.random(n) * w)
    life = w - start
    rate = np.exp(np.log(_RATE_MEDIAN) + _RATE_SIGMA * r_cust.standard_normal(n))
    change = start + life * (0.02 + 0.98 * r_cust.random(n) ** 2)
    decay = np.where(r_cust.random(n) < 0.5, 0.0, 1.0 + 9.0 * r_cust.random(n))
    growth = np.log(2.0) + (np.log(5.0) - np.log(2.0)) * r_cust.random(n)
    amount_growth = np.log(1.3) + (np.log(2.7) - np.log(1.3)) * r_cust.random(n)
    fading, growing = traj == _FADING, traj == _GROWING
    change[~fading], decay[~fading] = np.nan, np.nan
    growth[~growing], amount_growth[~growing] = 0.0, 0.0
    k = growth / w  # growth per day

    # Airtime-float agents: a handful of pre-existing steady customers.
    n_agents = int(round(n * 0.001))
    steady_pre = np.flatnonzero((traj == _STEADY) & pre_existing)
    agent = np.zeros(n, dtype=bool)
    agent[r_cust.choice(steady_pre, min(n_agents, len(steady_pre)), replace=False)] = True

    fraud_rate = np.where(
        traj == _FRAUD_PRONE, np.exp(np.log(0.035) + 0.9 * r_cust.standard_normal(n)), 0.0
    )

    # Preferences: a blend of the overall mix and a personal Dirichlet draw.
    base_mix = np.array([_PURCHASE_CATEGORY_SHARES[c] for c in _CATEGORIES])
    personal = r_cust.dirichlet(base_mix * 1.5 + 1e-4, size=n)
    cat_weights = 0.25 * base_mix + 0.75 * personal
    scale = _CUSTOMER_SCALE_SIGMA * r_cust.standard_normal(n)
    web_channel = r_cust.random(n) < 0.01
    cashback_p = r_cust.beta(1.3, 0.6, n)
    pay_later_p = np.where(r_cust.random(n) < 0.15, r_cust.uniform(0.05, 0.25, n), 0.0)
    pricing_u = r_cust.random(n)

    # Expected purchases = rate x integral of the trajectory's relative intensity over life.
    fade_tail = np.where(
        decay > 0, decay * -np.expm1(-(w - change) / np.where(decay > 0, decay, 1.0)), 0.0
    )
    mass = np.where(
        fading,
        (change - start) + fade_tail,
        np.where(growing, np.expm1(k * life) / np.where(growing, k, 1.0), life),
    )
    n_buy = np.maximum(1, r_buy.poisson(rate * mass))

    # --- purchases -----------------------------------------------------------------------
    cust = np.repeat(np.arange(n), n_buy)
    t_day = _intensity_times(r_buy, cust, start, change, decay, k, fading, growing, mass)
    day_index = np.minimum(np.floor(t_day), w - 1).astype(np.int64)
    t = day_index * _DAY + _clock_seconds(r_time, len(cust))

    per_cat, offer_cat, offer_product, offer_provider = _offers_table()
    cat = _choose_rows(r_buy, cat_weights, cust)
    offer = _choose_rows(r_buy, per_cat, cat)
    product, provider = offer_product[offer], offer_provider[offer]
    amount, value = _purchase_amounts(
        r_buy, cat, scale[cust], amount_growth[cust] / w, t / _DAY - start[cust]
    )
    channel = np.where(web_channel[cust], 1, 3)
    purchases = _block(
        _PURCHASE,
        cust,
        t,
        cat=cat,
        product=product,
        provider=provider,
        channel=channel,
        amount=amount,
        value=value,
        pricing=_pricing(provider, pricing_u[cust]),
    )

    # A few purchases are repeated within minutes in the same batch.
    rep = np.flatnonzero(r_buy.random(len(purchases)) < 0.02)
    rep = np.repeat(rep, r_buy.integers(1, 4, len(rep)))
    if len(rep):
        repeats = purchases.take(rep)
        repeats.t = repeats.t + 30 + r_buy.exponential(90.0, len(rep)).astype(np.int64)
        repeats.batch_of = rep
        purchases = _concat([purchases, repeats], renumber_batches=False)

    # Pay-later: the purchase is settled on credit, appearing as a ProviderId_4 credit row.
    retail = purchases.cat != _CAT["financial_services"]
    pl = retail & (r_buy.random(len(purchases)) < pay_later_p[purchases.cust])
    purchases.provider[pl] = 4
    purchases.channel[pl] = 5
    purchases.account[pl] = _ACC_PAY_LATER
    purchases.amount[pl] = -purchases.amount[pl]
    purchases.value[pl] = np.abs(purchases.amount[pl]).astype(np.int64)
    purchases.pricing[pl] = np.where(pricing_u[purchases.cust[pl]] < 0.77, 4, 2)

    # Half the new customers' first purchases earn no cashback (not yet enrolled), and
    # campaigns only reach customers who have bought before (those active before the period
    # always have).
    first_t = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_t, purchases.cust, purchases.t)
    debut = (purchases.t == first_t[purchases.cust]) & ~pre_existing[purchases.cust]
    debut &= r_cash.random(len(purchases)) < 0.5
    first_t[pre_existing] = np.iinfo(np.int64).min

    blocks = [purchases]
    blocks.append(_cashback(r_cash, purchases, retail & ~pl & ~debut, cashback_p))
    blocks.append(_bonus(r_bonus, purchases, n))
    blocks.append(_promotions(r_promo, n, w, first_t, start, change, decay, k, fading, growing))
    blocks.append(_floats(r_float, agent, start, w))
    blocks.append(_frauds(r_fraud, fraud_rate, start, w))

    rows = _concat(blocks, renumber_batches=True)
    rows = rows.take(np.flatnonzero((rows.t >= 0) & (rows.t < days * _DAY)))
    order = np.argsort(rows.t, kind="stable")
    rows = rows.take(order)

    ids = _customer_ids(r_ids, n)
    df = _frame(r_ids, rows, ids, first_day)
    meta = pd.DataFrame(
        {
            "CustomerId": pd.Series([f"CustomerId_{c}" for c in ids["customer"]], dtype="str"),
            "trajectory": pd.Series(np.array(_TRAJECTORIES)[traj], dtype="str"),
            "start_day": start,
            "change_day": change,
            "decay_days": decay,
            "growth": growth,
            "base_rate": rate,
            "agent": agent,
            "fraud_rate": fraud_rate,
            "pay_later_p": pay_later_p,
            "airtime_weight": cat_weights[:, _CAT["airtime"]],
        }
    )
    return df, meta


def _intensity_times(
    rng: np.random.Generator,
    cust: np.ndarray,
    start: np.ndarray,
    change: np.ndarray,
    decay: np.ndarray,
    k: np.ndarray,
    fading: np.ndarray,
    growing: np.ndarray,
    mass: np.ndarray,
) -> np.ndarray:
    """Event times (days) by inverting each customer's cumulative intensity."""
    u = rng.random(len(cust)) * mass[cust]
    s = start[cust]
    t = s + u  # steady and fraud-prone: uniform over the life
    f = fading[cust]
    if f.any():
        uf, sf, cf, hf = u[f], s[f], change[cust[f]], decay[cust[f]]
        before = uf < cf - sf
        tail = uf - (cf - sf)
        with np.errstate(divide="ignore", invalid="ignore"):
            after = cf - hf * np.log1p(-tail / hf)
        t[f] = np.where(before, sf + uf, after)
    g = growing[cust]
    if g.any():
        kg = k[cust[g]]
        t[g] = s[g] + np.log1p(kg * u[g]) / kg
    return t


def _relative_intensity(
    t_day: float,
    start: np.ndarray,
    change: np.ndarray,
    decay: np.ndarray,
    k: np.ndarray,
    fading: np.ndarray,
    growing: np.ndarray,
) -> np.ndarray:
    """Each customer's activity at ``t_day`` relative to its base rate."""
    out = np.where(t_day >= start, 1.0, 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        faded = np.where(decay > 0, np.exp(-(t_day - change) / decay), 0.0)
        out = np.where(fading & (t_day > change), out * faded, out)
        out = np.where(growing, out * np.exp(k * np.maximum(t_day - start, 0.0)), out)
    return np.nan_to_num(out)


def _purchase_amounts(
    rng: np.random.Generator,
    cat: np.ndarray,
    scale: np.ndarray,
    amount_k: np.ndarray,
    age_days: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    median = np.array([_AMOUNTS[c][0] for c in _CATEGORIES])[cat]
    sigma = np.array([_AMOUNTS[c][1] for c in _CATEGORIES])[cat]
    # Half the time a customer pays its habitual amount (its scale, no noise).
    noise = np.where(rng.random(len(cat)) < _HABIT_SHARE, 0.0, rng.standard_normal(len(cat)))
    raw = median * np.exp(scale + sigma * noise + amount_k * age_days)
    amount = np.empty(len(cat))
    for c, name in enumerate(_CATEGORIES):
        m = cat == c
        if m.any():
            amount[m] = _snap(raw[m], _AMOUNTS[name][2])
    # Top-ups are at least 500 UGX; a few amounts are odd ones typed in by hand.
    amount = np.where(cat == _CAT["airtime"], np.maximum(amount, 500.0), amount)
    odd = rng.random(len(cat)) < _ODD_AMOUNT_SHARE
    amount = np.where(odd, np.maximum(np.round(raw, -1), 100.0), amount)
    amount = np.minimum(amount, 5_000_000.0)
    value = amount.copy()
    # Bills, cinema and some TV carry fees the customer pays on top of the amount.
    bill = cat == _CAT["utility_bill"]
    value[bill] = np.round(amount[bill] * rng.uniform(1.04, 1.08, bill.sum()))
    value[bill] += rng.integers(300, 900, bill.sum())
    value[cat == _CAT["movies"]] *= 1.4
    tv = (cat == _CAT["tv"]) & (rng.random(len(cat)) < 0.05)
    value[tv] = np.round(value[tv] * 1.03)
    return amount, np.round(value).astype(np.int64)


def _concat(blocks: Sequence[_Block], *, renumber_batches: bool) -> _Block:
    merged = {f: np.concatenate([getattr(b, f) for b in blocks]) for f in _ROW_FIELDS}
    offsets = np.cumsum([0] + [len(b) for b in blocks[:-1]])
    if renumber_batches:
        batch = np.concatenate([b.batch_of + o for b, o in zip(blocks, offsets, strict=True)])
    else:
        # Blocks of the same kind whose batch_of already index the concatenation.
        batch = np.concatenate([b.batch_of for b in blocks])
    return _Block(kind=blocks[0].kind, batch_of=batch, **merged)


def _cashback(
    rng: np.random.Generator, purchases: _Block, eligible: np.ndarray, propensity: np.ndarray
) -> _Block:
    """Negative 2-5% cashback rows a few seconds after retail purchases."""
    src = np.flatnonzero(eligible & (rng.random(len(purchases)) < propensity[purchases.cust]))
    base = purchases.amount[src]
    cat = purchases.cat[src]
    rate = np.where(rng.random(len(src)) < 0.4, 0.02, 0.05)
    bills = cat == _CAT["utility_bill"]
    rate[bills] = rng.uniform(0.03, 0.10, bills.sum())
    fee = np.maximum(np.round(base * rate), 1.0)
    # About one in a hundred is computed to the shilling's twentieth, as in the real log.
    fine = rng.random(len(src)) < 0.012
    fee[fine] = np.maximum(
        np.round(base[fine] * rng.uniform(0.015, 0.06, fine.sum()) * 20) / 20, 1.0
    )
    delay = 5 + rng.gamma(2.0, 12.0, len(src)).astype(np.int64)
    return _block(
        _CASHBACK,
        purchases.cust[src],
        purchases.t[src] + delay,
        cat=_CAT["financial_services"],
        product=6,
        provider=4,
        channel=2,
        amount=-fee,
        value=np.ceil(fee),
        account=_ACC_CASHBACK,
    )


def _bonus(rng: np.random.Generator, purchases: _Block, n: int) -> _Block:
    """A one-off -1,000 loyalty credit after half of the customers' second purchase."""
    own = np.flatnonzero(purchases.account == _OWN)
    order = own[np.lexsort((purchases.t[own], purchases.cust[own]))]
    cust = purchases.cust[order]
    first = np.searchsorted(cust, np.arange(n))
    has_two = (np.searchsorted(cust, np.arange(n), side="right") - first) >= 2
    chosen = np.flatnonzero(has_two & (rng.random(n) < 0.5))
    second = order[first[chosen] + 1]
    delay = 20 + rng.exponential(60.0, len(chosen)).astype(np.int64)
    return _block(
        _BONUS,
        chosen,
        purchases.t[second] + delay,
        cat=_CAT["financial_services"],
        product=6,
        provider=4,
        channel=2,
        amount=-1000.0,
        value=1000,
        account=_ACC_BONUS,
    )


def _promotions(
    rng: np.random.Generator,
    n: int,
    w: float,
    first_t: np.ndarray,
    start: np.ndarray,
    change: np.ndarray,
    decay: np.ndarray,
    k: np.ndarray,
    fading: np.ndarray,
    growing: np.ndarray,
) -> _Block:
    """About monthly campaigns crediting -5,000 to known customers active that day."""
    n_campaigns = int(round(w / 30.0))
    custs, times = [], []
    for day in np.sort(rng.choice(int(w), min(n_campaigns, int(w)), replace=False)):
        at = float(day) + 0.5
        begin = int(day) * _DAY + int(rng.integers(9 * 3600, 12 * 3600))
        activity = _relative_intensity(at, start, change, decay, k, fading, growing)
        p = np.where(first_t < begin, np.minimum(0.9, _PROMO_REACH * activity), 0.0)
        chosen = np.flatnonzero(rng.random(n) < p)
        custs.append(chosen)
        times.append(begin + rng.integers(0, 5400, len(chosen)))
    cust = np.concatenate(custs) if custs else np.zeros(0, dtype=np.int64)
    t = np.concatenate(times) if times else np.zeros(0, dtype=np.int64)
    return _block(
        _PROMO,
        cust,
        t,
        cat=_CAT["financial_services"],
        product=6,
        provider=4,
        channel=2,
        amount=-5000.0,
        value=5000,
        account=_ACC_CASHBACK,
    )


def _floats(rng: np.random.Generator, agent: np.ndarray, start: np.ndarray, w: float) -> _Block:
    """Airtime-float agents: many large airtime credits through a shared platform account."""
    agents = np.flatnonzero(agent)
    per_day = np.exp(np.log(13.0) + 0.25 * rng.standard_normal(len(agents)))
    count = rng.poisson(per_day * (w - start[agents]))
    cust = np.repeat(agents, count)
    t_day = start[cust] + rng.random(len(cust)) * (w - start[cust])
    t = np.floor(t_day).astype(np.int64) * _DAY + _clock_seconds(rng, len(cust))
    menu = np.array([5_000, 10_000, 20_000, 25_000, 30_000, 40_000, 50_000, 100_000])
    weights = np.array([0.10, 0.15, 0.12, 0.28, 0.22, 0.06, 0.04, 0.03])
    amount = menu[np.searchsorted(np.cumsum(weights), rng.random(len(cust)) * weights.sum())]
    return _block(
        _FLOAT,
        cust,
        t,
        cat=_CAT["airtime"],
        product=np.where(rng.random(len(cust)) < 0.5, 3, 10),
        provider=4,
        channel=2,
        amount=-amount.astype(float),
        value=amount,
        pricing=4,
        account=_ACC_FLOAT,
    )


def _frauds(
    rng: np.random.Generator, fraud_rate: np.ndarray, start: np.ndarray, w: float
) -> _Block:
    """Large fraudulent transactions of fraud-prone customers, likelier later in their life."""
    life = w - start
    count = rng.poisson(fraud_rate * life)
    cust = np.repeat(np.arange(len(fraud_rate)), count)
    # Density proportional to age^2 on the life: invert the CDF (age/life)^3.
    t_day = start[cust] + life[cust] * np.cbrt(rng.random(len(cust)))
    t = np.minimum(np.floor(t_day), w - 1).astype(np.int64) * _DAY
    t += _clock_seconds(rng, len(cust))
    m = len(cust)
    kind = rng.choice(4, m, p=[0.84, 0.08, 0.065, 0.015])  # fin, airtime, bill, transport
    cat = np.array(
        [_CAT["financial_services"], _CAT["airtime"], _CAT["utility_bill"], _CAT["transport"]]
    )[kind]
    product = np.array([15, 3, 13, 5])[kind]
    provider = rng.choice(np.array([1, 3, 5]), m)
    amount = _snap(np.exp(np.log(700_000.0) + 1.0 * rng.standard_normal(m)), _ROUND)
    amount = np.clip(amount, 100_000.0, 9_880_000.0)
    channel = np.where(rng.random(m) < 0.03, 1, 3)
    pricing = rng.choice(np.array([0, 2, 4, 1]), m, p=[0.19, 0.72, 0.06, 0.03])
    block = _block(
        _FRAUD,
        cust,
        t,
        cat=cat,
        product=product,
        provider=provider,
        channel=channel,
        amount=amount,
        value=amount.astype(np.int64),
        pricing=pricing,
        fraud=1,
    )
    # A few are fraudulent airtime-float credits.
    neg = rng.random(m) < 0.025
    block.cat[neg], block.product[neg], block.provider[neg] = _CAT["airtime"], 3, 4
    block.channel[neg], block.account[neg], block.pricing[neg] = 2, _ACC_FLOAT, 4
    block.amount[neg] = -np.minimum(block.amount[neg], 1_000_000.0)
    block.value[neg] = -block.amount[neg]
    return block


def _distinct_ints(
    rng: np.random.Generator, n: int, upper: int, reserved: Iterable[int] = ()
) -> np.ndarray:
    keep = np.ones(upper + 1, dtype=bool)
    keep[0] = False
    keep[[r for r in reserved if r <= upper]] = False
    return rng.choice(np.flatnonzero(keep), n, replace=False)


def _customer_ids(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    upper = max(int(n * 1.3), 100) + 10
    return {
        "customer": _distinct_ints(rng, n, 2 * n + 10),
        "account": _distinct_ints(rng, n, upper, _PLATFORM_ACCOUNTS[1:, 0]),
        "subscription": _distinct_ints(rng, n, upper, _PLATFORM_ACCOUNTS[1:, 1]),
    }


def _prefixed(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pa.array(numbers).cast(pa.string()), "")


def _frame(
    rng: np.random.Generator, rows: _Block, ids: Mapping[str, np.ndarray], first_day: dt.date
) -> pd.DataFrame:
    m = len(rows)
    transaction = _distinct_ints(rng, m, int(m * 1.47) + 10)
    batch_numbers = _distinct_ints(rng, m, int(m * 1.46) + 10)
    batch = batch_numbers[rows.batch_of]
    own = rows.account == _OWN
    account = np.where(own, ids["account"][rows.cust], _PLATFORM_ACCOUNTS[rows.account, 0])
    subscription = np.where(
        own, ids["subscription"][rows.cust], _PLATFORM_ACCOUNTS[rows.account, 1]
    )
    start = np.datetime64(first_day.isoformat(), "s").astype(np.int64)
    timestamps = pd.to_datetime(start + rows.t, unit="s", utc=True).astype("datetime64[ns, UTC]")
    category_names = pa.array(list(_CATEGORIES))
    text = {
        "TransactionId": _prefixed("TransactionId_", transaction),
        "BatchId": _prefixed("BatchId_", batch),
        "AccountId": _prefixed("AccountId_", account),
        "SubscriptionId": _prefixed("SubscriptionId_", subscription),
        "CustomerId": _prefixed("CustomerId_", ids["customer"]).take(pa.array(rows.cust)),
        "CurrencyCode": pa.repeat(pa.scalar(schema.CURRENCY_CODE), m),
        "ProviderId": _prefixed("ProviderId_", rows.provider),
        "ProductId": _prefixed("ProductId_", rows.product),
        "ProductCategory": category_names.take(pa.array(rows.cat)),
        "ChannelId": _prefixed("ChannelId_", rows.channel),
    }
    data: dict[str, Any] = {}
    for name in schema.XENTE_COLUMNS:
        if name in text:
            data[name] = pd.Series(text[name].to_pandas(), dtype="str")
    data["CountryCode"] = np.full(m, schema.COUNTRY_CODE, dtype=np.int64)
    data["Amount"] = rows.amount.astype(np.float64)
    data["Value"] = rows.value.astype(np.int64)
    data["TransactionStartTime"] = timestamps
    data["PricingStrategy"] = rows.pricing.astype(np.int64)
    data["FraudResult"] = rows.fraud.astype(np.int64)
    return pd.DataFrame({name: data[name] for name in schema.XENTE_COLUMNS})
