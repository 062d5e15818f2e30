"""PostgreSQL for the benchmarks: the environment's server, or an embedded one."""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Generator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # devstack runs from the checkout
    sys.path.insert(0, str(REPO))

from devstack.postgres import temporary_server  # noqa: E402


@contextlib.contextmanager
def admin_url() -> Generator[str, None, None]:
    """A URL from which databases may be created: the environment's, or an embedded server."""
    external = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    with temporary_server() as url:
        yield url


@contextlib.contextmanager
def fresh_database(
    admin: str, prefix: str, *, migrated: bool = True
) -> Generator[str, None, None]:
    """Create a database (migrated to head unless ``migrated=False``), drop it afterwards."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from creditrisk.storage import migrate

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = make_url(admin).set(database=name).render_as_string(hide_password=False)
        try:
            if migrated:
                migrate.upgrade(url)
            yield url
        finally:
            with engine.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()
