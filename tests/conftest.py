"""Test harness: a real PostgreSQL for every test that asks, on a clean schema each time.

PostgreSQL is the embedded ``pgserver`` one (started once per session in a temp dir)
unless ``TEST_DATABASE_URL`` points at a server whose user may create databases.
Migrations run once into a template database; each test gets a fresh copy of it.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Airflow reads its config at import time: give the test session its own home, DAGs
# folder and a unit-test config before anything imports airflow.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="creditrisk-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a database from which tests may CREATE and DROP databases."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    import pgserver  # type: ignore[import-untyped]

    # A short path: the unix socket lives in the data directory.
    data = Path(tempfile.mkdtemp(prefix="crpg-"))
    server = pgserver.get_server(str(data), cleanup_mode="delete")
    host = server.get_uri().split("host=", 1)[1]
    yield f"postgresql+psycopg2://postgres@/postgres?host={host}"
    server.cleanup()


def _url_for(admin_url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(admin_url).set(database=database).render_as_string(hide_password=False)


def _admin_execute(admin_url: str, *statements: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for stmt in statements:
                conn.execute(sa.text(stmt))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> Iterator[str]:
    """Name of a database migrated to head once per session, used as a template."""
    from creditrisk.storage import migrate

    name = f"crtemplate_{uuid.uuid4().hex[:8]}"
    _admin_execute(pg_admin_url, f"CREATE DATABASE {_quote_ident(name)}")
    migrate.upgrade(_url_for(pg_admin_url, name))
    yield name
    _admin_execute(pg_admin_url, f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")


@pytest.fixture
def empty_db_url(pg_admin_url: str) -> Iterator[str]:
    """A brand-new empty database, dropped after the test."""
    name = f"crtest_{uuid.uuid4().hex[:10]}"
    _admin_execute(pg_admin_url, f"CREATE DATABASE {_quote_ident(name)}")
    yield _url_for(pg_admin_url, name)
    _admin_execute(pg_admin_url, f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")


@pytest.fixture
def db_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh warehouse at head (a copy of the template), dropped after the test."""
    name = f"crtest_{uuid.uuid4().hex[:10]}"
    _admin_execute(
        pg_admin_url, f"CREATE DATABASE {_quote_ident(name)} TEMPLATE {_quote_ident(template_db)}"
    )
    yield _url_for(pg_admin_url, name)
    _admin_execute(pg_admin_url, f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
