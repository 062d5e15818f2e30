"""Test helpers that put generated history into a real warehouse quickly.

They load through the production SQL (COPY into staging, insert new ids) but skip the
Great Expectations gate, which the ingestion tests cover; a 90-day history then loads
in about a second instead of forty.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from creditrisk.landing.simulate import generate_landing
from creditrisk.storage import aggregates
from creditrisk.storage import transactions as sql
from creditrisk.storage.db import make_engine


def load_landing_files(db_url: str, files: list[Path], run_id: str = "test-load") -> int:
    """Load landing files (already valid) into raw_transactions; return rows loaded."""
    engine = make_engine(db_url)
    raw = engine.raw_connection()
    loaded = 0
    try:
        for path in files:
            lines = path.read_text().splitlines()[1:]
            cur = raw.cursor()
            sql.stage_rows(cur, "".join(f"{i + 2},{ln}\n" for i, ln in enumerate(lines)))
            inserted = sql.insert_new_rows(cur, path.name, run_id)
            loaded += inserted
            if inserted:  # as ingestion does, in the file's transaction
                aggregates.mark_days(cur, aggregates.staged_days(cur), run_id)
            raw.commit()
    finally:
        raw.close()
        engine.dispose()
    return loaded


def refresh_aggregates(db_url: str) -> list[dt.date]:
    """Re-aggregate the dirty days now, as the next feature build would first."""
    engine = make_engine(db_url)
    raw = engine.raw_connection()
    try:
        days = aggregates.refresh_dirty(raw.cursor(), "test-refresh")
        raw.commit()
        return days
    finally:
        raw.close()
        engine.dispose()


def load_generated(
    db_url: str, out_dir: Path, *, customers: int, days: int, end_date: dt.date, seed: int = 42
) -> int:
    """Generate history into ``out_dir`` and load it; return rows loaded."""
    summary = generate_landing(
        customers=customers, days=days, end_date=end_date, out_dir=out_dir, seed=seed
    )
    return load_landing_files(db_url, summary.files)


def rows(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Every row of ``sql`` (bound ``params``) as plain tuples, on a short-lived engine."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql), params).all()]
    finally:
        engine.dispose()
