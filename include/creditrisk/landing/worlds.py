"""Worlds for PD research: who buys when, rendered into Xente rows by the generator.

The default ``synthetic`` world of :mod:`creditrisk.landing.simulate` hides four trajectories
(steady, fading, growing, fraud-prone) that make the future partly predictable by
construction. Two more worlds test whether the PD pipeline is honest:

* ``xente``: the *timing* is real. Each real customer of the public file keeps its
  number of rows and their order in the file; real row ``i`` of ``N`` is placed on day
  ``floor(i * days / N)`` of the period, at a time of day drawn from the generator's
  Kampala hour profile (sorted within the day so the file order is kept). Each real row
  becomes one customer purchase; amounts, categories, providers, pay-later, cashback and
  loyalty credits come from the generator's machinery. Only the real ``CustomerId``
  sequence is read (a path the caller passes).
* ``null``: every customer buys as a homogeneous Poisson process with the SAME rate from
  the first day to the last: no trajectories, no fraud. The future is independent of the
  past, so no feature can predict a forward-window label (AUC 0.5 in expectation).

Both return a frame with exactly ``schema.XENTE_COLUMNS``, like
:func:`creditrisk.landing.simulate.generate_transactions`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from creditrisk import schema
from creditrisk.errors import InputError
from creditrisk.landing import simulate as g

WORLDS = ("synthetic", "xente", "null")
#: The public file spans 2018-11-15 .. 2019-02-13 (91 calendar days, about 90 x 24 h).
XENTE_DAYS = 90
NULL_RATE_PER_DAY = 0.05


def read_customer_sequence(path: str | Path) -> np.ndarray:
    """The real ``CustomerId`` of every row of the public file, in file order."""
    try:
        seq = pd.read_csv(path, usecols=["CustomerId"], dtype="str")["CustomerId"]
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the customer sequence {path}: {exc}") from exc
    return seq.to_numpy(dtype=object)


def _stable_u(ids: np.ndarray, seed: int) -> np.ndarray:
    """A uniform in [0, 1) per id, stable across runs and platforms."""
    return np.array(
        [int.from_bytes(hashlib.sha256(f"{seed}:{c}".encode()).digest()[:8], "big") / 2**64
         for c in ids]
    )


def xente_timing(
    sequence: np.ndarray, *, days: int, customers: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Purchase times of the real customers (optionally a deterministic subset).

    Returns:
        ``(cust, t, numbers)``: customer index and second in the period per purchase (in
        time order), and each customer's real ``CustomerId`` number.
    """
    if days < 1:
        raise InputError(f"days must be at least 1, got {days}")
    n_rows = len(sequence)
    codes, uniques = pd.factorize(pd.Series(sequence, dtype="str"), sort=False)
    numbers = np.array([int(str(u).rsplit("_", 1)[-1]) for u in uniques], dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
    day = (np.arange(n_rows) * days) // n_rows
    secs = g._clock_seconds(rng, n_rows)
    t = day * g._DAY + secs
    t = t[np.lexsort((secs, day))]  # sorted times; row i (file order) takes the i-th one
    keep = np.ones(len(uniques), dtype=bool)
    if customers is not None and customers < len(uniques):
        if customers < 1:
            raise InputError(f"customers must be at least 1, got {customers}")
        rank = np.argsort(_stable_u(uniques, seed), kind="stable")
        keep[:] = False
        keep[rank[:customers]] = True
    rows = keep[codes]
    new_index = np.cumsum(keep) - 1
    return new_index[codes[rows]], t[rows], numbers[keep]


def null_timing(
    *, customers: int, days: int, seed: int, rate: float = NULL_RATE_PER_DAY
) -> tuple[np.ndarray, np.ndarray]:
    """Homogeneous Poisson purchases, one shared rate; customers with none are dropped."""
    if customers < 1 or days < 1 or rate <= 0:
        raise InputError("null world needs customers >= 1, days >= 1 and rate > 0")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 11]))
    count = rng.poisson(rate * days, customers)
    present = np.flatnonzero(count > 0)
    cust = np.repeat(np.arange(len(present)), count[present])
    t = (rng.random(len(cust)) * days * g._DAY).astype(np.int64)
    order = np.argsort(t, kind="stable")
    return cust[order], t[order]


def render(
    cust: np.ndarray,
    t: np.ndarray,
    n: int,
    *,
    days: int,
    end_date: dt.date,
    seed: int,
    customer_numbers: np.ndarray | None = None,
) -> pd.DataFrame:
    """Turn purchase times into Xente rows with the generator's row machinery.

    Adds pay-later settlement, cashback and the one-off loyalty credit; no campaigns,
    airtime-float agents or fraud (those need the synthetic world's hidden state).
    """
    first_day, _ = g._period(max(n, 1), days, end_date)
    streams = np.random.SeedSequence([int(seed), 3]).spawn(5)
    r_cust, r_buy, r_cash, r_bonus, r_ids = (np.random.default_rng(s) for s in streams)
    base_mix = np.array([g._PURCHASE_CATEGORY_SHARES[c] for c in g._CATEGORIES])
    cat_weights = 0.25 * base_mix + 0.75 * r_cust.dirichlet(base_mix * 1.5 + 1e-4, size=n)
    scale = g._CUSTOMER_SCALE_SIGMA * r_cust.standard_normal(n)
    web = r_cust.random(n) < 0.01
    cashback_p = r_cust.beta(1.3, 0.6, n)
    pay_later_p = np.where(r_cust.random(n) < 0.15, r_cust.uniform(0.05, 0.25, n), 0.0)
    pricing_u = r_cust.random(n)

    per_cat, _, offer_product, offer_provider = g._offers_table()
    cat = g._choose_rows(r_buy, cat_weights, cust)
    offer = g._choose_rows(r_buy, per_cat, cat)
    product, provider = offer_product[offer], offer_provider[offer]
    amount, value = g._purchase_amounts(r_buy, cat, scale[cust], np.zeros(len(cust)),
                                        np.zeros(len(cust)))
    purchases = g._block(
        g._PURCHASE, cust, t, cat=cat, product=product, provider=provider,
        channel=np.where(web[cust], 1, 3), amount=amount, value=value,
        pricing=g._pricing(provider, pricing_u[cust]),
    )
    retail = purchases.cat != g._CAT["financial_services"]
    pl = retail & (r_buy.random(len(purchases)) < pay_later_p[purchases.cust])
    purchases.provider[pl], purchases.channel[pl] = 4, 5
    purchases.account[pl] = g._ACC_PAY_LATER
    purchases.amount[pl] = -purchases.amount[pl]
    purchases.pricing[pl] = np.where(pricing_u[purchases.cust[pl]] < 0.77, 4, 2)
    blocks = [purchases, g._cashback(r_cash, purchases, retail & ~pl, cashback_p),
              g._bonus(r_bonus, purchases, n)]
    rows = g._concat(blocks, renumber_batches=True)
    rows = rows.take(np.flatnonzero((rows.t >= 0) & (rows.t < days * g._DAY)))
    rows = rows.take(np.argsort(rows.t, kind="stable"))
    ids = g._customer_ids(r_ids, n)
    if customer_numbers is not None:
        ids["customer"] = np.asarray(customer_numbers, dtype=np.int64)
    return g._frame(r_ids, rows, ids, first_day)


def generate_world(
    world: str,
    *,
    customers: int | None,
    days: int,
    end_date: dt.date,
    seed: int = 42,
    sequence_path: str | Path | None = None,
) -> pd.DataFrame:
    """Transactions of the ``xente`` or ``null`` world (see the module docstring).

    Args:
        world: ``xente`` or ``null``.
        customers: ``xente``: a deterministic subset of this many real customers (None =
            all 3,742); ``null``: number of customers drawn (those with no purchase in the
            period are absent).
        days: Length of the period, ending on ``end_date``.
        end_date: Last UTC day.
        seed: Seed of every random stream.
        sequence_path: ``xente`` only: the customer-sequence CSV (column ``CustomerId``).
    """
    if world == "xente":
        if sequence_path is None:
            raise InputError("the xente world needs sequence_path (the customer sequence CSV)")
        cust, t, numbers = xente_timing(
            read_customer_sequence(sequence_path), days=days, customers=customers, seed=seed
        )
        return render(cust, t, len(numbers), days=days, end_date=end_date, seed=seed,
                      customer_numbers=numbers)
    if world == "null":
        if customers is None:
            raise InputError("the null world needs a number of customers")
        cust, t = null_timing(customers=customers, days=days, seed=seed)
        n = int(cust.max()) + 1 if len(cust) else 0
        return render(cust, t, n, days=days, end_date=end_date, seed=seed)
    raise InputError(f"unknown world {world!r}; choose one of {WORLDS}")


def to_warehouse(df: pd.DataFrame) -> pd.DataFrame:
    """A Xente frame with warehouse (snake_case) column names, as the features read it."""
    out = df.rename(columns={c: schema.to_snake(c) for c in schema.XENTE_COLUMNS})
    out["amount"] = pd.to_numeric(out["amount"])
    return out
