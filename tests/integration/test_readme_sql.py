"""Every SQL example in the README and in docs/*.md runs against the migrated warehouse,
as the analysts' read-only role ``creditrisk_reader`` (migration 0009) would run it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _statements() -> list[str]:
    out = []
    for doc in DOCUMENTS:
        blocks = re.findall(r"```sql\n(.*?)```", doc.read_text(), flags=re.S)
        for block in blocks:
            text = "\n".join(line.strip() for line in block.splitlines())
            out += [stmt.strip() for stmt in text.split(";") if stmt.strip()]
    return out


def test_the_docs_have_sql_examples() -> None:
    statements = _statements()
    assert statements, "no ```sql block found in README.md or docs/*.md"
    # README: risk_scores; api.md: decision_log; operations.md runbook: quarantine (2),
    # model_promotions, score_monitoring, latest_risk_scores.
    assert len(statements) >= 7


@pytest.mark.parametrize("sql", _statements(), ids=lambda s: " ".join(s.split())[:60])
def test_readme_sql_runs(db_url: str, sql: str) -> None:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            # privileges are checked as the reader from here on, not as the superuser
            conn.execute(sa.text("SET ROLE creditrisk_reader"))
            conn.execute(sa.text(sql)).fetchall()
    finally:
        engine.dispose()
