"""Incremental features: per-customer daily aggregates, kept by ingestion, and state.

Revision ID: 0014_feature_aggregates
Revises: 0013_partitioned_risk_scores
Create Date: 2026-12-05

* ``customer_daily_aggregates``: one row per customer and UTC day with transactions,
  everything the cumulative features add up (counts, exact NUMERIC sums and sums of
  squares, first/last times, the day's largest gap between purchases). Ingestion
  recomputes the (customer, day) rows a file touches, in the file's transaction.
* ``customer_first_seen``: the first day each customer used each product category,
  product and provider (the distinct counts).
* ``customer_daily_products``: the products each customer bought each day (the 30-day
  distinct products).
* ``customer_feature_state`` / ``customer_feature_state_dates``: the cumulative totals of
  every customer as of a feature date, so the next date adds only the days in between.
  Ingestion deletes the states a late row makes stale.
* ``customer_features_stage``: a multi-chunk build's rows before the date is swapped
  into ``customer_features`` in one transaction.

The migration fills the aggregates from ``raw_transactions`` (the same SQL as
``creditrisk features --rebuild``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_feature_aggregates"
down_revision: str | None = "0013_partitioned_risk_scores"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
EXACT = sa.Numeric()


def _count(name: str, what: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger, nullable=False, comment=f"Number of {what}")


def _totals() -> list[sa.Column]:
    """The additive columns shared by a day's aggregate and the cumulative state."""
    return [
        _count("n", "transactions (debits and credits)"),
        _count("debit_n", "debits (positive amounts)"),
        sa.Column("debit_sum", EXACT, nullable=False, comment="Sum of debit amounts (exact)"),
        sa.Column("debit_sq", EXACT, nullable=False,
                  comment="Sum of squared debit amounts (exact; the standard deviation)"),
        sa.Column("debit_max", EXACT, comment="Largest debit amount; null without debits"),
        _count("credit_n", "credits (negative amounts)"),
        sa.Column("credit_sum", EXACT, nullable=False,
                  comment="Sum of credit amounts (negative, exact)"),
        sa.Column("first_ts", TZ, nullable=False, comment="Earliest transaction time"),
        sa.Column("last_ts", TZ, nullable=False, comment="Latest transaction time"),
        sa.Column("first_debit_ts", TZ, comment="Earliest debit time; null without debits"),
        sa.Column("last_debit_ts", TZ, comment="Latest debit time; null without debits"),
        sa.Column("max_debit_gap_us", sa.BigInteger,
                  comment="Largest gap between consecutive debits, in microseconds; null "
                          "with fewer than two"),
        _count("airtime_n", "airtime transactions"),
        _count("financial_services_n", "financial_services transactions"),
        _count("utility_bill_n", "utility_bill transactions"),
        _count("web_n", "transactions on the web channel (ChannelId_3)"),
        _count("pay_later_n", "transactions on the pay-later channel (ChannelId_5)"),
        _count("platform_n", "transactions of the platform's provider (ProviderId_4)"),
        _count("night_n", "transactions before 06:00 local time (UTC+3)"),
        _count("weekend_n", "transactions on a local Saturday or Sunday"),
        _count("fraud_n", "transactions flagged as fraud"),
        _count("pricing_2_n", "transactions with pricing strategy 2"),
        _count("pricing_4_n", "transactions with pricing strategy 4"),
        _count("purchase_n", "customer-initiated purchases (schema.purchase_mask)"),
        sa.Column("purchase_abs_sum", EXACT, nullable=False,
                  comment="Sum of absolute purchase amounts (exact)"),
        sa.Column("last_purchase_ts", TZ, comment="Latest purchase time; null without one"),
    ]


def upgrade() -> None:
    op.create_table(
        "customer_daily_aggregates",
        sa.Column("customer_id", sa.Text, nullable=False, comment="Xente CustomerId"),
        sa.Column("day", sa.Date, nullable=False, comment="UTC day of the transactions"),
        *_totals(),
        sa.PrimaryKeyConstraint("customer_id", "day", name="pk_customer_daily_aggregates"),
        comment="Per customer and UTC day, the additive parts of every cumulative feature; "
                "kept by ingestion in each file's transaction",
    )
    op.create_index("ix_customer_daily_aggregates_day", "customer_daily_aggregates", ["day"])
    op.create_table(
        "customer_first_seen",
        sa.Column("customer_id", sa.Text, nullable=False, comment="Xente CustomerId"),
        sa.Column("kind", sa.Text, nullable=False,
                  comment="category, product or provider"),
        sa.Column("value", sa.Text, nullable=False,
                  comment="The product category, product id or provider id"),
        sa.Column("first_day", sa.Date, nullable=False,
                  comment="UTC day of the customer's first transaction with it"),
        sa.PrimaryKeyConstraint("customer_id", "kind", "value", name="pk_customer_first_seen"),
        sa.CheckConstraint("kind IN ('category', 'product', 'provider')",
                           name="ck_first_seen_kind"),
        comment="First day each customer used each category, product and provider "
                "(distinct-count features)",
    )
    op.create_index("ix_customer_first_seen_day", "customer_first_seen", ["first_day"])
    op.create_table(
        "customer_daily_products",
        sa.Column("customer_id", sa.Text, nullable=False, comment="Xente CustomerId"),
        sa.Column("day", sa.Date, nullable=False, comment="UTC day of the purchases"),
        sa.Column("product_id", sa.Text, nullable=False, comment="Product bought that day"),
        sa.PrimaryKeyConstraint("customer_id", "day", "product_id",
                                name="pk_customer_daily_products"),
        comment="Products each customer purchased each UTC day (n_products_30d)",
    )
    op.create_index("ix_customer_daily_products_day", "customer_daily_products", ["day"])
    op.create_table(
        "customer_feature_state",
        sa.Column("as_of_date", sa.Date, nullable=False,
                  comment="The state covers every transaction strictly before this date"),
        sa.Column("customer_id", sa.Text, nullable=False, comment="Xente CustomerId"),
        *_totals(),
        _count("active_days", "UTC days with a transaction"),
        _count("n_categories", "distinct product categories"),
        _count("n_products", "distinct products"),
        _count("n_providers", "distinct providers"),
        sa.PrimaryKeyConstraint("as_of_date", "customer_id", name="pk_customer_feature_state"),
        comment="Cumulative totals per customer as of a feature date: the next date adds "
                "only the days in between",
    )
    op.create_table(
        "customer_feature_state_dates",
        sa.Column("as_of_date", sa.Date, nullable=False,
                  comment="A date whose customer_feature_state is complete (every chunk)"),
        sa.Column("chunks", sa.Integer, nullable=False, comment="Chunks the build used"),
        sa.Column("built_at", TZ, nullable=False, server_default=sa.func.now(),
                  comment="When the date's build was published"),
        sa.Column("run_id", sa.Text, nullable=False, comment="Feature run that built it"),
        sa.PrimaryKeyConstraint("as_of_date", name="pk_customer_feature_state_dates"),
        comment="Feature dates whose state may seed the next build; ingestion deletes the "
                "ones a late row makes stale",
    )
    op.execute("CREATE TABLE customer_features_stage (LIKE customer_features INCLUDING ALL)")
    op.execute("COMMENT ON TABLE customer_features_stage IS 'Chunks of a feature build before "
               "their date is swapped into customer_features in one transaction'")
    from creditrisk.storage.aggregates import rebuild_statements

    for statement, params in rebuild_statements():
        op.get_bind().execute(sa.text(statement), params)


def downgrade() -> None:
    for table in ("customer_features_stage", "customer_feature_state_dates",
                  "customer_feature_state", "customer_daily_products", "customer_first_seen",
                  "customer_daily_aggregates"):
        op.drop_table(table)
