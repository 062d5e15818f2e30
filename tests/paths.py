"""Locations the tests share.

The fixture data lives in ``tests/fixtures`` inside the repository (see its README for
provenance), so the suite passes from any clone.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"
REAL_SAMPLE = FIXTURES / "xente_real_sample.csv"
FRAUD_SAMPLE = FIXTURES / "xente_fraud_sample.csv"
CUSTOMER_SEQUENCE = FIXTURES / "xente_customer_sequence.csv"
