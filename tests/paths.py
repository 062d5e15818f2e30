"""Locations the tests share.

The fixture data lives in ``../shared/data`` next to the repository (CI clones the repo
into a sibling directory of ``shared``), so it is found relative to the repo root's parent.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
REAL_SAMPLE = SHARED_DATA / "xente_real_sample.csv"
FRAUD_SAMPLE = SHARED_DATA / "xente_fraud_sample.csv"
