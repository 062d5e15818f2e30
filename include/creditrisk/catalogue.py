"""The feature catalogue: every model input described once (name, meaning, unit, reason text).

The docs, the model card, the API's ``/model/info`` and the ``customer_features`` table
render from :data:`CATALOGUE` (a test holds the migration to it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    """One catalogue entry."""

    name: str
    meaning: str
    unit: str
    #: text for a reason code when this feature raises a customer's risk
    reason: str


CATALOGUE: tuple[Feature, ...] = (
    Feature("recency_days", "Days from the last transaction to the as-of date", "days",
            "Long time since the last transaction"),
    Feature("frequency", "Number of transactions (debits and credits)", "count",
            "Few transactions on the platform"),
    Feature("debit_count", "Number of purchases (positive amounts)", "count",
            "Few purchases"),
    Feature("monetary_total", "Sum of purchase amounts", "UGX",
            "Low total spend"),
    Feature("monetary_mean", "Mean purchase amount", "UGX",
            "Unusual average purchase size"),
    Feature("monetary_std", "Standard deviation of purchase amounts (0 with < 2 purchases)",
            "UGX", "Erratic purchase amounts"),
    Feature("monetary_max", "Largest purchase amount", "UGX",
            "Unusually large single purchase"),
    Feature("credit_count", "Number of credits into the account (negative amounts)", "count",
            "Few credits received"),
    Feature("credit_total", "Sum of credits into the account, as a positive number", "UGX",
            "Low credits received"),
    Feature("tenure_days", "Days from the first transaction to the as-of date", "days",
            "Short history on the platform"),
    Feature("active_days", "Distinct UTC days with at least one transaction", "days",
            "Few active days"),
    Feature("mean_gap_days", "Mean days between consecutive purchases (tenure if < 2)",
            "days", "Long gaps between purchases"),
    Feature("max_gap_days", "Longest days between consecutive purchases (tenure if < 2)",
            "days", "A long pause in purchases"),
    Feature("txn_last_30d", "Transactions in the 30 days before the as-of date", "count",
            "Little recent activity"),
    Feature("spend_last_30d", "Purchase amounts in the 30 days before the as-of date", "UGX",
            "Low recent spend"),
    Feature("activity_trend_30d",
            "log(1 + daily transactions in the last 30 days) minus log(1 + daily transactions"
            " before them)", "log ratio", "Activity falling off"),
    Feature("share_airtime", "Share of transactions in airtime", "fraction",
            "Spending concentrated in airtime"),
    Feature("share_financial_services", "Share of transactions in financial services",
            "fraction", "Mix dominated by financial services"),
    Feature("share_utility_bill", "Share of transactions in utility bills", "fraction",
            "Few utility bill payments"),
    Feature("share_other_categories",
            "Share of transactions in data bundles, tv, tickets, movies, transport, other",
            "fraction", "Unusual product mix"),
    Feature("n_categories", "Distinct product categories used", "count",
            "Narrow product use"),
    Feature("n_products", "Distinct products bought", "count", "Narrow product use"),
    Feature("share_channel_web", "Share of transactions on ChannelId_3", "fraction",
            "Channel mix"),
    Feature("share_channel_pay_later", "Share of transactions on ChannelId_5 (pay later)",
            "fraction", "Heavy use of pay later"),
    Feature("n_providers", "Distinct providers used", "count", "Few providers used"),
    Feature("share_platform_provider", "Share of transactions via ProviderId_4 (platform"
            " credits and fees)", "fraction", "Activity dominated by platform credits"),
    Feature("share_night", "Share of transactions between 00:00 and 06:00 local time",
            "fraction", "Night-time activity"),
    Feature("share_weekend", "Share of transactions on Saturday or Sunday, local time",
            "fraction", "Weekend-heavy activity"),
    Feature("fraud_count", "Transactions confirmed as fraud", "count",
            "Confirmed fraud on the account"),
    Feature("share_pricing_2", "Share of transactions with pricing strategy 2", "fraction",
            "Pricing structure mix"),
    Feature("share_pricing_4", "Share of transactions with pricing strategy 4", "fraction",
            "Pricing structure mix"),
)


FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in CATALOGUE)


BY_NAME: dict[str, Feature] = {f.name: f for f in CATALOGUE}


def catalogue_markdown() -> str:
    """The feature catalogue as a markdown table (the README embeds exactly this)."""
    lines = ["| feature | meaning | unit |", "|---|---|---|"]
    lines += [f"| `{f.name}` | {f.meaning} | {f.unit} |" for f in CATALOGUE]
    return "\n".join(lines)
