"""customer_features: one double-precision column per feature of the catalogue.

Revision ID: 0002_feature_columns
Revises: 0001_warehouse
Create Date: 2026-11-25

The column list is frozen here (a migration must not change when the catalogue does);
tests/integration/test_migrations.py holds it equal to creditrisk.catalogue.CATALOGUE.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_feature_columns"
down_revision: str | None = "0001_warehouse"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS: tuple[tuple[str, str], ...] = (
    ("recency_days", "Days from the last transaction to the as-of date (days)"),
    ("frequency", "Number of transactions, debits and credits (count)"),
    ("debit_count", "Number of purchases, positive amounts (count)"),
    ("monetary_total", "Sum of purchase amounts (UGX)"),
    ("monetary_mean", "Mean purchase amount (UGX)"),
    ("monetary_std", "Standard deviation of purchase amounts, 0 with < 2 purchases (UGX)"),
    ("monetary_max", "Largest purchase amount (UGX)"),
    ("credit_count", "Number of credits into the account (count)"),
    ("credit_total", "Sum of credits into the account, positive (UGX)"),
    ("tenure_days", "Days from the first transaction to the as-of date (days)"),
    ("active_days", "Distinct UTC days with a transaction (days)"),
    ("mean_gap_days", "Mean days between consecutive purchases, tenure if < 2 (days)"),
    ("max_gap_days", "Longest days between consecutive purchases, tenure if < 2 (days)"),
    ("txn_last_30d", "Transactions in the 30 days before the as-of date (count)"),
    ("spend_last_30d", "Purchase amounts in the 30 days before the as-of date (UGX)"),
    ("activity_trend_30d", "log(1+daily txns last 30 days) - log(1+daily txns before)"),
    ("share_airtime", "Share of transactions in airtime (fraction)"),
    ("share_financial_services", "Share of transactions in financial services (fraction)"),
    ("share_utility_bill", "Share of transactions in utility bills (fraction)"),
    ("share_other_categories", "Share in data bundles, tv, tickets, movies, transport, other"),
    ("n_categories", "Distinct product categories used (count)"),
    ("n_products", "Distinct products bought (count)"),
    ("share_channel_web", "Share of transactions on ChannelId_3 (fraction)"),
    ("share_channel_pay_later", "Share of transactions on ChannelId_5, pay later (fraction)"),
    ("n_providers", "Distinct providers used (count)"),
    ("share_platform_provider", "Share of transactions via ProviderId_4 (fraction)"),
    ("share_night", "Share of transactions 00:00-06:00 local time (fraction)"),
    ("share_weekend", "Share of transactions on Saturday or Sunday, local (fraction)"),
    ("fraud_count", "Transactions confirmed as fraud (count)"),
    ("share_pricing_2", "Share of transactions with pricing strategy 2 (fraction)"),
    ("share_pricing_4", "Share of transactions with pricing strategy 4 (fraction)"),
)


def upgrade() -> None:
    for name, comment in COLUMNS:
        op.add_column(
            "customer_features",
            sa.Column(name, sa.Float, nullable=False, server_default="0", comment=comment),
        )
        op.alter_column("customer_features", name, server_default=None)


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        op.drop_column("customer_features", name)
