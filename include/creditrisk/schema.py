"""The Xente transaction schema: raw column names, their warehouse names, and landing files.

One place names the columns, so the generator, the importer, ingestion and the
warehouse migrations cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

#: Header of a Xente CSV, exactly and in this order.
XENTE_COLUMNS: tuple[str, ...] = (
    "TransactionId",
    "BatchId",
    "AccountId",
    "SubscriptionId",
    "CustomerId",
    "CurrencyCode",
    "CountryCode",
    "ProviderId",
    "ProductId",
    "ProductCategory",
    "ChannelId",
    "Amount",
    "Value",
    "TransactionStartTime",
    "PricingStrategy",
    "FraudResult",
)


def to_snake(name: str) -> str:
    """Convert a CamelCase Xente column name to its snake_case warehouse name.

    Args:
        name: A Xente column name such as ``TransactionStartTime``.

    Returns:
        The warehouse column name, e.g. ``transaction_start_time``.
    """
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


#: Warehouse (snake_case) names of the Xente columns, in the same order.
WAREHOUSE_COLUMNS: tuple[str, ...] = tuple(to_snake(c) for c in XENTE_COLUMNS)

#: Allowed values observed in the public file (XENTE_DATA.md).
PRODUCT_CATEGORIES: tuple[str, ...] = (
    "airtime",
    "financial_services",
    "utility_bill",
    "data_bundles",
    "tv",
    "ticket",
    "movies",
    "transport",
    "other",
)
CHANNELS: tuple[str, ...] = ("ChannelId_1", "ChannelId_2", "ChannelId_3", "ChannelId_5")
PROVIDERS: tuple[str, ...] = tuple(f"ProviderId_{i}" for i in range(1, 7))
PRICING_STRATEGIES: tuple[int, ...] = (0, 1, 2, 4)
CURRENCY_CODE = "UGX"
COUNTRY_CODE = 256
#: The platform's own counter-account on fee/credit rows.
PLATFORM_ACCOUNT_ID = "AccountId_4841"

LANDING_PREFIX = "xente_"
LANDING_SUFFIX = ".csv"
_LANDING_RE = re.compile(r"^xente_(\d{4}-\d{2}-\d{2})\.csv$")


def landing_file_name(day: dt.date) -> str:
    """Name of the landing file that holds one UTC day of transactions.

    Args:
        day: The UTC calendar day of ``TransactionStartTime``.

    Returns:
        The file name, e.g. ``xente_2018-11-15.csv``.
    """
    return f"{LANDING_PREFIX}{day.isoformat()}{LANDING_SUFFIX}"


def landing_file_date(path: str | Path) -> dt.date | None:
    """Return the day a landing file holds, or None if the name is not a landing file."""
    m = _LANDING_RE.match(Path(path).name)
    return dt.date.fromisoformat(m.group(1)) if m else None


#: Columns of raw_transactions that feature computation reads.
TRANSACTION_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "transaction_start_time",
    "amount",
    "product_category",
    "channel_id",
    "provider_id",
    "product_id",
    "pricing_strategy",
    "fraud_result",
)

#: The platform's own provider: cashback, loyalty and campaign credits, airtime float, fees.
PLATFORM_PROVIDER_ID = "ProviderId_4"
#: Pay-later purchases: the customer bought, the platform settled it on credit.
PAY_LATER_CHANNEL_ID = "ChannelId_5"


def purchase_mask(amount: Any, provider_id: Any, channel_id: Any) -> Any:
    """True for customer-initiated purchases, element-wise over equal-length arrays.

    A purchase is a positive amount not on the platform's provider, or any pay-later row.
    Platform credits and fees are not the customer's own activity, so labels and the
    windowed features count only purchases.
    """
    import numpy as np

    amount = np.asarray(amount, dtype="float64")
    provider = np.asarray(provider_id, dtype=object)
    channel = np.asarray(channel_id, dtype=object)
    return ((amount > 0) & (provider != PLATFORM_PROVIDER_ID)) | (channel == PAY_LATER_CHANNEL_ID)


#: The outcome loop's landing files: one per kind and UTC day, columns in this order.
LOAN_COLUMNS: tuple[str, ...] = (
    "loan_id", "customer_id", "issued_at", "amount", "term_days", "installments",
    "decided_by", "model_name", "model_version", "pd_at_issue", "decision", "risk_band",
    "exploration",
)
REPAYMENT_COLUMNS: tuple[str, ...] = ("loan_id", "installment", "due_date", "paid_at", "amount")
#: kind -> its columns; the file of a day is ``<kind>_YYYY-MM-DD.csv``
OUTCOME_KINDS: dict[str, tuple[str, ...]] = {
    "loans": LOAN_COLUMNS, "repayments": REPAYMENT_COLUMNS,
}


def outcome_file_name(kind: str, day: dt.date) -> str:
    """Name of the landing file of ``kind`` (loans or repayments) for one UTC day."""
    if kind not in OUTCOME_KINDS:
        raise ValueError(f"unknown outcome file kind {kind!r}")
    return f"{kind}_{day.isoformat()}{LANDING_SUFFIX}"
