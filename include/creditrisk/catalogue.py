"""The feature catalogue: every model input described once (name, meaning, unit, reason text).

The docs, the model card, the API's ``/model/info`` and the ``customer_features`` table
render from :data:`CATALOGUE` (a test holds the migration to it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    """One catalogue entry.

    A reason code shows ``high`` when the customer's value is above the model's training
    baseline and ``low`` when below, so the text always says which way the customer
    differs; features of one ``group`` move together and make one reason.
    """

    name: str
    meaning: str
    unit: str
    group: str
    high: str
    low: str

    def reason(self, above_baseline: bool) -> str:
        """The reason text for a value above (or not above) the baseline."""
        return self.high if above_baseline else self.low


#: Cumulative features grow with the length of a customer's history (and of the data);
#: the windowed ones at the end of the catalogue mean the same at any history length.
CATALOGUE: tuple[Feature, ...] = (
    Feature(
        "recency_days",
        "Days from the last transaction to the as-of date",
        "days",
        "recency",
        "Long time since the last transaction",
        "Very recent transaction",
    ),
    Feature(
        "frequency",
        "Number of transactions (debits and credits)",
        "count",
        "volume",
        "Many transactions on the platform",
        "Few transactions on the platform",
    ),
    Feature(
        "debit_count",
        "Number of purchases (positive amounts)",
        "count",
        "volume",
        "Many purchases",
        "Few purchases",
    ),
    Feature(
        "monetary_total",
        "Sum of purchase amounts",
        "UGX",
        "spend",
        "High total spend",
        "Low total spend",
    ),
    Feature(
        "monetary_mean",
        "Mean purchase amount",
        "UGX",
        "amounts",
        "Large average purchase",
        "Small average purchase",
    ),
    Feature(
        "monetary_std",
        "Standard deviation of purchase amounts (0 with < 2 purchases)",
        "UGX",
        "amounts",
        "Erratic purchase amounts",
        "Very uniform purchase amounts",
    ),
    Feature(
        "monetary_max",
        "Largest purchase amount",
        "UGX",
        "amounts",
        "Unusually large single purchase",
        "Only small purchases",
    ),
    Feature(
        "credit_count",
        "Number of credits into the account (negative amounts)",
        "count",
        "credits",
        "Many credits received",
        "Few credits received",
    ),
    Feature(
        "credit_total",
        "Sum of credits into the account, as a positive number",
        "UGX",
        "credits",
        "Large credits received",
        "Small credits received",
    ),
    Feature(
        "tenure_days",
        "Days from the first transaction to the as-of date",
        "days",
        "tenure",
        "Long history on the platform",
        "Short history on the platform",
    ),
    Feature(
        "active_days",
        "Distinct UTC days with at least one transaction",
        "days",
        "volume",
        "Many active days",
        "Few active days",
    ),
    Feature(
        "mean_gap_days",
        "Mean days between consecutive purchases (tenure if < 2)",
        "days",
        "regularity",
        "Long gaps between purchases",
        "Short gaps between purchases",
    ),
    Feature(
        "max_gap_days",
        "Longest days between consecutive purchases (tenure if < 2)",
        "days",
        "regularity",
        "A long pause in purchases",
        "No long pause in purchases",
    ),
    Feature(
        "txn_last_30d",
        "Transactions in the 30 days before the as-of date",
        "count",
        "recent_activity",
        "Many recent transactions",
        "Little recent activity",
    ),
    Feature(
        "spend_last_30d",
        "Purchase amounts in the 30 days before the as-of date",
        "UGX",
        "recent_spend",
        "High recent spend",
        "Low recent spend",
    ),
    Feature(
        "activity_trend_30d",
        "log(1 + daily transactions in the last 30 days)"
        " minus log(1 + daily transactions before them)",
        "log ratio",
        "trend",
        "Activity rising",
        "Activity falling off",
    ),
    Feature(
        "share_airtime",
        "Share of transactions in airtime",
        "fraction",
        "product_mix",
        "Spending concentrated in airtime",
        "Little airtime spending",
    ),
    Feature(
        "share_financial_services",
        "Share of transactions in financial services",
        "fraction",
        "product_mix",
        "Mix dominated by financial services",
        "Few financial services",
    ),
    Feature(
        "share_utility_bill",
        "Share of transactions in utility bills",
        "fraction",
        "product_mix",
        "Many utility bill payments",
        "Few utility bill payments",
    ),
    Feature(
        "share_other_categories",
        "Share of transactions in data bundles, tv, tickets, movies, transport, other",
        "fraction",
        "product_mix",
        "Unusual product mix",
        "Few purchases outside the main categories",
    ),
    Feature(
        "n_categories",
        "Distinct product categories used",
        "count",
        "breadth",
        "Broad product use",
        "Narrow product use",
    ),
    Feature(
        "n_products",
        "Distinct products bought",
        "count",
        "breadth",
        "Many different products",
        "Narrow product use",
    ),
    Feature(
        "share_channel_web",
        "Share of transactions on ChannelId_3",
        "fraction",
        "channel",
        "Mostly on ChannelId_3",
        "Little use of ChannelId_3",
    ),
    Feature(
        "share_channel_pay_later",
        "Share of transactions on ChannelId_5 (pay later)",
        "fraction",
        "pay_later",
        "Heavy use of pay later",
        "Little use of pay later",
    ),
    Feature(
        "n_providers",
        "Distinct providers used",
        "count",
        "breadth",
        "Many providers used",
        "Few providers used",
    ),
    Feature(
        "share_platform_provider",
        "Share of transactions via ProviderId_4 (platform credits and fees)",
        "fraction",
        "credits",
        "Activity dominated by platform credits",
        "Few platform credits",
    ),
    Feature(
        "share_night",
        "Share of transactions between 00:00 and 06:00 local time",
        "fraction",
        "timing",
        "Night-time activity",
        "Little night-time activity",
    ),
    Feature(
        "share_weekend",
        "Share of transactions on Saturday or Sunday, local time",
        "fraction",
        "timing",
        "Weekend-heavy activity",
        "Little weekend activity",
    ),
    Feature(
        "fraud_count",
        "Transactions confirmed as fraud",
        "count",
        "fraud",
        "Confirmed fraud on the account",
        "No confirmed fraud",
    ),
    Feature(
        "share_pricing_2",
        "Share of transactions with pricing strategy 2",
        "fraction",
        "pricing",
        "Pricing structure mix",
        "Pricing structure mix",
    ),
    Feature(
        "share_pricing_4",
        "Share of transactions with pricing strategy 4",
        "fraction",
        "pricing",
        "Pricing structure mix",
        "Pricing structure mix",
    ),
    Feature(
        "purchase_recency_days",
        "Days from the last customer-initiated purchase to the as-of date (tenure if none)",
        "days",
        "recency",
        "Long time since the last purchase",
        "Very recent purchase",
    ),
    Feature(
        "purchases_7d",
        "Customer-initiated purchases in the 7 days before the as-of date",
        "count",
        "recent_activity",
        "Many purchases this week",
        "Few purchases this week",
    ),
    Feature(
        "purchases_30d",
        "Customer-initiated purchases in the 30 days before the as-of date",
        "count",
        "recent_activity",
        "Many purchases this month",
        "Few purchases this month",
    ),
    Feature(
        "spend_7d",
        "Customer-initiated purchase amounts in the 7 days before the as-of date",
        "UGX",
        "recent_spend",
        "High spend this week",
        "Low spend this week",
    ),
    Feature(
        "active_days_30d",
        "Distinct UTC days with a customer-initiated purchase in the 30 days before the as-of date",
        "days",
        "recent_activity",
        "Buys on many days this month",
        "Buys on few days this month",
    ),
    Feature(
        "n_products_30d",
        "Distinct products bought in the 30 days before the as-of date",
        "count",
        "breadth",
        "Many different products this month",
        "Few different products this month",
    ),
)


FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in CATALOGUE)


BY_NAME: dict[str, Feature] = {f.name: f for f in CATALOGUE}


def catalogue_markdown() -> str:
    """The feature catalogue as a markdown table (the README embeds exactly this)."""
    lines = ["| feature | meaning | unit |", "|---|---|---|"]
    lines += [f"| `{f.name}` | {f.meaning} | {f.unit} |" for f in CATALOGUE]
    return "\n".join(lines)
