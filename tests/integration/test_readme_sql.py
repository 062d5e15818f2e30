"""Every SQL example in the README runs against the migrated warehouse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

README = Path(__file__).resolve().parents[2] / "README.md"


def _statements() -> list[str]:
    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(), flags=re.S)
    out = []
    for block in blocks:
        text = "\n".join(line.strip() for line in block.splitlines())
        out += [stmt.strip() for stmt in text.split(";") if stmt.strip()]
    return out


def test_the_readme_has_sql_examples() -> None:
    assert len(_statements()) >= 6


@pytest.mark.parametrize("sql", _statements(), ids=lambda s: " ".join(s.split())[:60])
def test_readme_sql_runs(db_url: str, sql: str) -> None:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(sql)).fetchall()
    finally:
        engine.dispose()
