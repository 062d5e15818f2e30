"""The synthetic generator against the public Xente file's figures and real rows.

Figures are those of XENTE_DATA.md (the full public file, 95,662 rows over 90 days); real
rows come from ``tests/fixtures``. Tolerances are explicit so a drift in the generator
shows up as a failing comparison, not as a silently different data set.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditrisk import schema
from creditrisk.landing.files import write_landing
from creditrisk.landing.simulate import _simulate
from tests.paths import FRAUD_SAMPLE, REAL_SAMPLE

END = dt.date(2019, 2, 13)
DAYS = 90
CUSTOMERS = 3000

REAL_ROWS = 95_662
REAL_CATEGORIES = {
    "financial_services": 45_405,
    "airtime": 45_027,
    "utility_bill": 1_920,
    "data_bundles": 1_613,
    "tv": 1_279,
    "ticket": 216,
    "movies": 175,
    "transport": 25,
    "other": 2,
}
REAL_CHANNELS = {
    "ChannelId_3": 56_935,
    "ChannelId_2": 37_141,
    "ChannelId_5": 1_048,
    "ChannelId_1": 538,
}
REAL_PROVIDERS = {
    "ProviderId_4": 38_189,
    "ProviderId_6": 34_186,
    "ProviderId_5": 14_542,
    "ProviderId_1": 5_643,
    "ProviderId_3": 3_084,
    "ProviderId_2": 18,
}
REAL_PRICING = {"2": 79_848, "4": 13_562, "1": 1_867, "0": 385}
REAL_AMOUNT_QUANTILES = {
    0.01: -30_000,
    0.05: -5_000,
    0.25: -50,
    0.50: 1_000,
    0.75: 2_800,
    0.95: 14_500,
    0.99: 80_000,
}
REAL_NEGATIVE_SHARE = 0.399
REAL_FRAUD_SHARE = 193 / REAL_ROWS

SHARE_TOLERANCE = 0.03  # absolute, i.e. three percentage points
QUANTILE_FACTOR = 2.0

FORMATS = {
    "TransactionId": r"TransactionId_\d+",
    "BatchId": r"BatchId_\d+",
    "AccountId": r"AccountId_\d+",
    "SubscriptionId": r"SubscriptionId_\d+",
    "CustomerId": r"CustomerId_\d+",
    "ProductId": r"ProductId_\d+",
    "TransactionStartTime": r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z",
    "Amount": r"-?[1-9]\d*(\.\d*[1-9])?",
    "Value": r"[1-9]\d*",
}


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _simulate(customers=CUSTOMERS, days=DAYS, end_date=END, seed=42)


@pytest.fixture(scope="module")
def df(simulated: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return simulated[0]


@pytest.fixture(scope="module")
def meta(simulated: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return simulated[1]


@pytest.fixture(scope="module")
def landed_text(df: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The generated rows as written to landing files, read back as text."""
    files = write_landing(df, tmp_path_factory.mktemp("landing"))
    return pd.concat([pd.read_csv(f, dtype=str) for f in files], ignore_index=True)


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return pd.read_csv(REAL_SAMPLE, dtype=str)


def shares(values: pd.Series) -> dict[str, float]:
    return {str(k): float(v) for k, v in values.astype(str).value_counts(normalize=True).items()}


def assert_shares_close(got: dict[str, float], real_counts: dict[str, int]) -> None:
    total = sum(real_counts.values())
    assert set(got) <= set(real_counts), set(got) - set(real_counts)
    for key, count in real_counts.items():
        want = count / total
        have = got.get(key, 0.0)
        assert abs(have - want) <= SHARE_TOLERANCE, f"{key}: {have:.4f} vs real {want:.4f}"
        if want >= 0.001:  # small shares must also be of the right order of magnitude
            assert want / 2.5 <= have <= want * 2.5, f"{key}: {have:.5f} vs real {want:.5f}"


def day_of(df: pd.DataFrame) -> pd.Series:
    start = pd.Timestamp(END - dt.timedelta(days=DAYS - 1), tz="UTC")
    return (df["TransactionStartTime"] - start).dt.days


# --- shares against XENTE_DATA.md ------------------------------------------------------------


def test_product_category_shares(df: pd.DataFrame) -> None:
    assert_shares_close(shares(df["ProductCategory"]), REAL_CATEGORIES)


def test_channel_shares(df: pd.DataFrame) -> None:
    assert_shares_close(shares(df["ChannelId"]), REAL_CHANNELS)


def test_provider_shares(df: pd.DataFrame) -> None:
    assert_shares_close(shares(df["ProviderId"]), REAL_PROVIDERS)


def test_pricing_strategy_shares(df: pd.DataFrame) -> None:
    assert_shares_close(shares(df["PricingStrategy"]), REAL_PRICING)


def test_negative_amounts_are_exactly_the_provider_4_rows(df: pd.DataFrame) -> None:
    negative = df["Amount"] < 0
    assert abs(negative.mean() - REAL_NEGATIVE_SHARE) <= SHARE_TOLERANCE
    assert (negative == (df["ProviderId"] == "ProviderId_4")).all()


def test_amount_quantiles_within_a_factor(df: pd.DataFrame) -> None:
    got = df["Amount"].quantile(list(REAL_AMOUNT_QUANTILES))
    for q, want in REAL_AMOUNT_QUANTILES.items():
        have = float(got[q])
        assert math.copysign(1, have) == math.copysign(1, want), (q, have)
        ratio = have / want
        assert 1 / QUANTILE_FACTOR <= ratio <= QUANTILE_FACTOR, f"q{q}: {have} vs real {want}"
    assert df["Amount"].min() >= -1_000_000
    assert df["Amount"].max() <= 9_880_000


def test_value_exceeds_amount_only_by_fees_on_bills_tv_and_movies(df: pd.DataFrame) -> None:
    fees = df["Value"] - df["Amount"].abs()
    assert (fees >= 0).all()
    feeable = df["ProductCategory"].isin(["utility_bill", "tv", "movies"])
    assert (fees[~feeable] < 1).all()
    assert (fees[df["ProductCategory"] == "utility_bill"] > 0).mean() > 0.9


# --- fraud -----------------------------------------------------------------------------------


def test_fraud_rate_and_amounts(df: pd.DataFrame) -> None:
    fraud = df[df["FraudResult"] == 1]
    rate = len(fraud) / len(df)
    assert REAL_FRAUD_SHARE / 2 <= rate <= REAL_FRAUD_SHARE * 2, rate
    real_fraud = pd.read_csv(FRAUD_SAMPLE, dtype=str)
    real_fraud = real_fraud[real_fraud["FraudResult"] == "1"]["Amount"].astype(float)
    median, real_median = fraud["Amount"].abs().median(), real_fraud.abs().median()
    assert real_median / 3 <= median <= real_median * 3
    assert fraud["Amount"].abs().min() >= 100_000
    normal = df[df["FraudResult"] == 0]["Amount"].abs().median()
    assert median > 100 * normal


def test_fraud_is_concentrated_in_fraud_prone_customers_late_in_life(
    df: pd.DataFrame, meta: pd.DataFrame
) -> None:
    fraud = df[df["FraudResult"] == 1].join(meta.set_index("CustomerId"), on="CustomerId")
    assert (fraud["trajectory"] == "fraud_prone").all()
    assert fraud["CustomerId"].nunique() <= 0.03 * CUSTOMERS
    # Fraud density grows with the square of age in the period: mean age fraction is 3/4
    # (a uniform timing would give 1/2).
    day = day_of(fraud) + 0.5
    age = (day - fraud["start_day"]).clip(lower=0) / (DAYS - fraud["start_day"])
    assert age.mean() > 0.65


# --- customers -------------------------------------------------------------------------------


def test_per_customer_activity_is_heavily_skewed_like_the_real_file(df: pd.DataFrame) -> None:
    counts = df["CustomerId"].value_counts()
    assert len(counts) == CUSTOMERS
    assert 5 <= counts.median() <= 10  # real 7
    assert 18 <= counts.mean() <= 35  # real 25.6
    assert 14 <= counts.quantile(0.75) <= 30  # real 20
    assert 60 <= counts.quantile(0.95) <= 150  # real 98
    assert 0.14 <= (counts == 1).mean() <= 0.25  # real 712 / 3742 = 0.19
    assert counts.max() >= 1000  # real 4,091


def category_preference(frame: pd.DataFrame) -> tuple[float, float]:
    """Median share of a customer's top category, and the spread of airtime shares."""
    own = frame[frame["ProviderId"] != "ProviderId_4"]
    regular = own.groupby("CustomerId").filter(lambda g: len(g) >= 5)
    by_customer = regular.groupby("CustomerId")["ProductCategory"]
    top = by_customer.agg(lambda s: s.value_counts(normalize=True).iloc[0])
    airtime = by_customer.agg(lambda s: (s == "airtime").mean())
    return float(top.median()), float(airtime.std())


def test_customers_prefer_categories_like_real_ones(df: pd.DataFrame, real: pd.DataFrame) -> None:
    top, spread = category_preference(df)
    real_top, real_spread = category_preference(real)  # 0.76 and 0.28
    assert abs(top - real_top) <= 0.1
    assert abs(spread - real_spread) <= 0.08
    own = df[df["ProviderId"] != "ProviderId_4"]
    assert top > own["ProductCategory"].value_counts(normalize=True).iloc[0]


def test_customers_keep_their_pricing_and_channel(df: pd.DataFrame) -> None:
    own = df[df["ProviderId"] != "ProviderId_4"]
    stable = own.groupby(["CustomerId", "ProviderId"])["PricingStrategy"].nunique() == 1
    assert stable.mean() >= 0.95  # real sample: 97%
    assert (own.groupby("CustomerId")["ChannelId"].nunique() == 1).mean() >= 0.99


def test_cashback_rows_follow_a_purchase_within_seconds(df: pd.DataFrame) -> None:
    ordered = df.sort_values(["CustomerId", "TransactionStartTime"], kind="stable")
    previous = ordered.groupby("CustomerId").shift(1)
    cashback = ordered["AccountId"] == schema.PLATFORM_ACCOUNT_ID
    cashback &= ordered["Amount"].abs() != 5000  # campaign credits are not tied to a purchase
    gap = (ordered["TransactionStartTime"] - previous["TransactionStartTime"]).dt.total_seconds()
    after_purchase = (gap <= 300) & (previous["ProviderId"] != "ProviderId_4")
    assert after_purchase[cashback].mean() > 0.85  # real sample: about 90%
    assert (ordered.loc[cashback, "ChannelId"] == "ChannelId_2").all()


# --- behaviour over time ---------------------------------------------------------------------


def test_trajectory_is_not_in_the_output(df: pd.DataFrame, landed_text: pd.DataFrame) -> None:
    assert tuple(df.columns) == schema.XENTE_COLUMNS
    assert tuple(landed_text.columns) == schema.XENTE_COLUMNS
    assert not landed_text.isin(["steady", "fading", "growing", "fraud_prone"]).any().any()


def test_fading_customers_buy_less_at_the_end_growing_ones_more(
    df: pd.DataFrame, meta: pd.DataFrame
) -> None:
    day = day_of(df)
    trajectory = df["CustomerId"].map(meta.set_index("CustomerId")["trajectory"])
    first = trajectory[day < 30].value_counts()
    last = trajectory[day >= DAYS - 30].value_counts()
    # In aggregate, even counting the newcomers who join late and have not faded yet.
    assert last["fading"] < 0.85 * first["fading"]
    assert last["growing"] > 1.8 * first["growing"]
    # Steady customers grow only through newcomers joining.
    assert last["growing"] / first["growing"] > 1.5 * last["steady"] / first["steady"]
    # Customers already buying in the first 30 days: the fading ones fade.
    early = df["CustomerId"].isin(set(df.loc[day < 30, "CustomerId"]))
    fading = early & (trajectory == "fading")
    assert (fading & (day >= DAYS - 30)).sum() < 0.5 * (fading & (day < 30)).sum()
    steady = early & (trajectory == "steady")
    assert (steady & (day >= DAYS - 30)).sum() > 0.8 * (steady & (day < 30)).sum()


def test_last_30_days_activity_differs_by_trajectory(df: pd.DataFrame, meta: pd.DataFrame) -> None:
    recent = df[day_of(df) >= DAYS - 30]["CustomerId"].value_counts()
    per_customer = meta.assign(recent=meta["CustomerId"].map(recent).fillna(0))
    mean_recent = per_customer.groupby("trajectory")["recent"].mean()
    idle = per_customer.assign(idle=per_customer["recent"] == 0).groupby("trajectory")["idle"]
    idle_share = idle.mean()
    assert mean_recent["growing"] > mean_recent["steady"] > mean_recent["fading"]
    assert idle_share["fading"] > idle_share["steady"] + 0.2


def test_label_window_after_a_cutoff_has_signal(df: pd.DataFrame, meta: pd.DataFrame) -> None:
    """Customers seen before a day-60 cut-off: who is silent in the 30 days after it."""
    day = day_of(df)
    before = set(df.loc[day < 60, "CustomerId"])
    after = set(df.loc[day >= 60, "CustomerId"])
    seen = meta[meta["CustomerId"].isin(before)]
    silent = seen.assign(silent=~seen["CustomerId"].isin(after))
    rate = silent.groupby("trajectory")["silent"].mean()
    assert rate["fading"] > rate["steady"] + 0.25
    assert rate["growing"] < rate["steady"]


def test_customers_join_and_leave_during_the_period(df: pd.DataFrame) -> None:
    day = day_of(df).groupby(df["CustomerId"])
    # Real file: 41% of customers first appear in the second half of the period, and 33%
    # are last seen in the first half.
    assert 0.25 <= (day.min() >= DAYS / 2).mean() <= 0.5
    assert 0.15 <= (day.max() < DAYS / 2).mean() <= 0.4


# --- against real rows -----------------------------------------------------------------------


def test_value_sets_match_the_real_rows(landed_text: pd.DataFrame, real: pd.DataFrame) -> None:
    allowed = {
        "ProductCategory": set(schema.PRODUCT_CATEGORIES),
        "ChannelId": set(schema.CHANNELS),
        "ProviderId": set(schema.PROVIDERS),
        "PricingStrategy": {str(p) for p in schema.PRICING_STRATEGIES},
        "CurrencyCode": {schema.CURRENCY_CODE},
        "CountryCode": {str(schema.COUNTRY_CODE)},
        "FraudResult": {"0", "1"},
    }
    for column, values in allowed.items():
        got, seen = set(landed_text[column]), set(real[column])
        assert seen <= got <= values, column


def test_formats_match_the_real_rows(landed_text: pd.DataFrame, real: pd.DataFrame) -> None:
    for column, pattern in FORMATS.items():
        for name, frame in (("real", real), ("generated", landed_text)):
            bad = frame[~frame[column].str.fullmatch(pattern)][column]
            assert bad.empty, f"{name} {column}: {bad.head().tolist()}"


def test_amount_text_style_matches_the_real_rows(
    landed_text: pd.DataFrame, real: pd.DataFrame
) -> None:
    for frame in (real, landed_text):
        amounts = frame["Amount"]
        assert not amounts.str.endswith(".0").any()
        decimals = amounts[amounts.str.contains(".", regex=False)]
        assert len(decimals) > 0
        rows = frame.loc[decimals.index]
        assert (rows["ProviderId"] == "ProviderId_4").all()
        assert (rows["Value"].astype(int) == decimals.astype(float).abs().map(math.ceil)).all()


def test_the_platform_account_looks_like_the_real_one(
    landed_text: pd.DataFrame, real: pd.DataFrame
) -> None:
    for frame in (real, landed_text):
        rows = frame[frame["AccountId"] == schema.PLATFORM_ACCOUNT_ID]
        assert set(rows["ProviderId"]) == {"ProviderId_4"}
        assert set(rows["ChannelId"]) == {"ChannelId_2"}
        assert set(rows["ProductCategory"]) == {"financial_services"}
        assert rows["SubscriptionId"].nunique() == 1
        median = rows["Amount"].astype(float).median()
        assert -200 <= median <= -20, median  # real sample: -50


def test_shared_batches_and_repeated_timestamps_occur(landed_text: pd.DataFrame) -> None:
    batch_sizes = landed_text["BatchId"].value_counts()
    assert 0.005 <= (batch_sizes > 1).mean() <= 0.05  # real sample: about 2%
    assert landed_text["TransactionStartTime"].duplicated().any()


def test_time_of_day_follows_kampala_daytime(df: pd.DataFrame) -> None:
    local_hour = (df["TransactionStartTime"].dt.hour + 3) % 24
    night = local_hour.isin([1, 2, 3, 4]).mean()
    day = local_hour.between(10, 15).mean()
    assert day > 5 * night
    assert np.isclose(local_hour.value_counts(normalize=True).sum(), 1.0)


def test_real_sample_is_where_the_tests_expect_it() -> None:
    assert isinstance(REAL_SAMPLE, Path)
    header = REAL_SAMPLE.read_text(encoding="utf-8").split("\n", 1)[0]
    assert header == ",".join(schema.XENTE_COLUMNS)
    assert re.fullmatch(r"[A-Za-z,]+", header)
