"""The synthetic generator: deterministic, well-formed daily landing files."""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from creditrisk import schema
from creditrisk.errors import InputError
from creditrisk.landing import simulate as generate
from creditrisk.landing.files import write_landing
from creditrisk.landing.simulate import generate_landing, generate_transactions

END = dt.date(2019, 2, 13)
CUSTOMERS, DAYS = 300, 20
HEADER = ",".join(schema.XENTE_COLUMNS)

ID_PATTERNS = {
    "TransactionId": r"TransactionId_[1-9]\d*",
    "BatchId": r"BatchId_[1-9]\d*",
    "AccountId": r"AccountId_[1-9]\d*",
    "SubscriptionId": r"SubscriptionId_[1-9]\d*",
    "CustomerId": r"CustomerId_[1-9]\d*",
    "ProviderId": r"ProviderId_[1-6]",
    "ProductId": r"ProductId_[1-9]\d*",
    "ChannelId": r"ChannelId_[1235]",
    "CurrencyCode": r"UGX",
    "CountryCode": r"256",
    "Amount": r"-?(0|[1-9]\d*)(\.\d*[1-9])?",
    "Value": r"0|[1-9]\d*",
    "TransactionStartTime": r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z",
    "PricingStrategy": r"[0124]",
    "FraudResult": r"[01]",
}


def land(out_dir: Path, *, seed: int = 42, **kwargs: object) -> generate.GenerateSummary:
    args: dict[str, object] = {"customers": CUSTOMERS, "days": DAYS, "end_date": END}
    args.update(kwargs)
    return generate_landing(out_dir=out_dir, seed=seed, **args)  # type: ignore[arg-type]


def read_rows(files: list[Path]) -> pd.DataFrame:
    frames = [pd.read_csv(f, dtype=str, keep_default_na=False) for f in files]
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> generate.GenerateSummary:
    return land(tmp_path_factory.mktemp("landing"))


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a = land(tmp_path / "a", seed=7)
    b = land(tmp_path / "b", seed=7)
    assert [f.name for f in a.files] == [f.name for f in b.files]
    for fa, fb in zip(a.files, b.files, strict=True):
        assert fa.read_bytes() == fb.read_bytes(), fa.name


def test_different_seeds_give_different_data(tmp_path: Path) -> None:
    a = land(tmp_path / "a", seed=1)
    b = land(tmp_path / "b", seed=2)
    assert b"".join(f.read_bytes() for f in a.files) != b"".join(f.read_bytes() for f in b.files)


def test_one_file_per_day_named_for_exactly_the_period(landed: generate.GenerateSummary) -> None:
    first = END - dt.timedelta(days=DAYS - 1)
    expected = [schema.landing_file_name(first + dt.timedelta(days=i)) for i in range(DAYS)]
    assert [f.name for f in landed.files] == expected
    assert sorted(p.name for p in landed.files[0].parent.iterdir()) == expected
    assert (landed.first_day, landed.last_day) == (first, END)


def test_files_have_exact_header_utf8_and_newline_ends(landed: generate.GenerateSummary) -> None:
    for f in landed.files:
        data = f.read_bytes()
        assert data.startswith(HEADER.encode() + b"\n"), f.name
        assert not data.startswith(b"\xef\xbb\xbf")
        assert b"\r" not in data
        assert data.endswith(b"\n")
        data.decode("utf-8")


def test_rows_lie_in_their_day_and_are_time_ordered(landed: generate.GenerateSummary) -> None:
    for f in landed.files:
        rows = pd.read_csv(f, dtype=str)
        day = schema.landing_file_date(f)
        assert day is not None
        stamps = rows["TransactionStartTime"]
        assert (stamps.str[:10] == day.isoformat()).all(), f.name
        assert stamps.is_monotonic_increasing, f.name


def test_every_field_has_the_xente_format(landed: generate.GenerateSummary) -> None:
    rows = read_rows(landed.files)
    for column, pattern in ID_PATTERNS.items():
        bad = rows[~rows[column].str.fullmatch(pattern)]
        assert bad.empty, f"{column}: {bad[column].head().tolist()}"
    assert set(rows["ProductCategory"]) <= set(schema.PRODUCT_CATEGORIES)
    assert rows["TransactionId"].is_unique


def test_summary_matches_the_files(landed: generate.GenerateSummary) -> None:
    rows = read_rows(landed.files)
    assert landed.rows == len(rows)
    assert landed.customers == rows["CustomerId"].nunique() == CUSTOMERS
    assert landed.fraud_rows == (rows["FraudResult"] == "1").sum()


def test_value_and_negative_amounts_follow_the_xente_rules(
    landed: generate.GenerateSummary,
) -> None:
    rows = read_rows(landed.files)
    amount = rows["Amount"].astype(float)
    value = rows["Value"].astype(int)
    assert (value >= 0).all()
    assert ((amount < 0) == (rows["ProviderId"] == "ProviderId_4")).all()
    assert (value >= amount.abs()).all()
    plain = ~rows["ProductCategory"].isin(["utility_bill", "tv", "movies"])
    assert (value[plain] == amount[plain].abs().map(math.ceil)).all()


def test_platform_rows_use_the_platform_account(landed: generate.GenerateSummary) -> None:
    rows = read_rows(landed.files)
    cashback = rows[(rows["ProviderId"] == "ProviderId_4") & (rows["ChannelId"] == "ChannelId_2")]
    assert (cashback["ProductCategory"] == "financial_services").mean() > 0.8
    assert schema.PLATFORM_ACCOUNT_ID in set(cashback["AccountId"])


def test_customer_accounts_are_stable(landed: generate.GenerateSummary) -> None:
    rows = read_rows(landed.files)
    own = rows[rows["ProviderId"] != "ProviderId_4"]
    per_customer = own.groupby("CustomerId")[["AccountId", "SubscriptionId"]].nunique()
    assert (per_customer == 1).all().all()
    assert own.groupby("AccountId")["CustomerId"].nunique().max() == 1


def test_frame_has_exactly_the_xente_columns_sorted_by_time() -> None:
    df = generate_transactions(customers=50, days=5, end_date=END, seed=3)
    assert tuple(df.columns) == schema.XENTE_COLUMNS
    assert df["TransactionStartTime"].is_monotonic_increasing
    assert str(df["TransactionStartTime"].dt.tz) == "UTC"
    assert df["CustomerId"].nunique() == 50


def test_counts_scale_with_days() -> None:
    short = generate_transactions(customers=1000, days=10, end_date=END, seed=5)
    long = generate_transactions(customers=1000, days=40, end_date=END, seed=5)
    assert 2.5 < len(long) / len(short) < 5.0


def test_write_landing_round_trips_a_frame(tmp_path: Path) -> None:
    df = generate_transactions(customers=80, days=4, end_date=END, seed=11)
    files = write_landing(df, tmp_path)
    back = read_rows(files)
    assert len(back) == len(df)
    assert (back["TransactionId"] == df["TransactionId"]).all()
    assert (back["Amount"].astype(float) == df["Amount"]).all()
    stamps = pd.to_datetime(back["TransactionStartTime"], utc=True)
    assert (stamps == df["TransactionStartTime"]).all()
    assert not [p for p in tmp_path.iterdir() if p.suffix != ".csv"]


def test_amounts_print_as_integers_when_whole(tmp_path: Path) -> None:
    df = generate_transactions(customers=2, days=1, end_date=END, seed=1).head(1)
    df = pd.concat([df] * 4, ignore_index=True)
    df["Amount"] = [1000.0, -20.0, -236.9, -67.25]
    files = write_landing(df, tmp_path)
    assert read_rows(files)["Amount"].tolist() == ["1000", "-20", "-236.9", "-67.25"]


def test_existing_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    last = tmp_path / schema.landing_file_name(END)
    last.write_text("keep me\n")
    with pytest.raises(InputError, match=re.escape(last.name)) as err:
        land(tmp_path)
    assert "\n" not in str(err.value)
    assert [p.name for p in tmp_path.iterdir()] == [last.name]
    assert last.read_text() == "keep me\n"


def test_overwrite_replaces_existing_files(tmp_path: Path) -> None:
    land(tmp_path, seed=1)
    again = land(tmp_path, seed=2, overwrite=True)
    assert again.files[-1].read_text().startswith(HEADER)
    with pytest.raises(InputError, match="already exists"):
        write_landing(generate_transactions(customers=5, days=1, end_date=END), tmp_path)


@pytest.mark.parametrize(
    ("customers", "days", "words"),
    [
        (0, 10, "customers must be at least 1"),
        (-3, 10, "customers must be at least 1"),
        (10, 0, "days must be at least 1"),
        (10, 2.5, "days must be an integer"),
        (True, 10, "customers must be an integer"),
        ("10", 10, "customers must be an integer"),
    ],
)
def test_bad_arguments_raise_input_error(
    tmp_path: Path, customers: object, days: object, words: str
) -> None:
    with pytest.raises(InputError, match=words) as err:
        generate_landing(
            customers=customers,  # type: ignore[arg-type]
            days=days,  # type: ignore[arg-type]
            end_date=END,
            out_dir=tmp_path,
        )
    assert "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())


def test_bad_end_date_raises_input_error() -> None:
    with pytest.raises(InputError, match="end_date"):
        generate_transactions(customers=5, days=5, end_date="2019-02-13")  # type: ignore[arg-type]


def test_failed_write_leaves_no_partial_or_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(InputError, match="No space left"):
        land(tmp_path, customers=20, days=2)
    assert not any(tmp_path.iterdir())


def test_write_landing_keeps_text_timestamps_and_quotes_commas(tmp_path: Path) -> None:
    df = generate_transactions(customers=3, days=2, end_date=END, seed=4).head(2).copy()
    df["TransactionStartTime"] = ["2019-02-12T23:59:59Z", "2019-02-13T00:00:00Z"]
    df["ProductCategory"] = ["airtime", 'odd, "quoted"']
    files = write_landing(df, tmp_path)
    assert [f.name for f in files] == ["xente_2019-02-12.csv", "xente_2019-02-13.csv"]
    assert files[0].read_text().splitlines()[1].split(",")[13] == "2019-02-12T23:59:59Z"
    assert read_rows(files)["ProductCategory"].tolist() == ["airtime", 'odd, "quoted"']
