"""The warehouse tables that DAGs produce and consume, as Airflow Assets."""

from __future__ import annotations

from airflow.sdk import Asset

_WAREHOUSE = "postgres://warehouse:5432/creditrisk/public"

RAW_TRANSACTIONS = Asset(name="raw_transactions", uri=f"{_WAREHOUSE}/raw_transactions")
CUSTOMER_FEATURES = Asset(name="customer_features", uri=f"{_WAREHOUSE}/customer_features")
RISK_SCORES = Asset(name="risk_scores", uri=f"{_WAREHOUSE}/risk_scores")
