"""Test harness: a real PostgreSQL for every test that asks, on a clean schema each time.

PostgreSQL is the embedded ``pgserver`` one (started once per session in a temp dir)
unless ``TEST_DATABASE_URL`` points at a server whose user may create databases.
Migrations run once into a template database; each test gets a fresh copy of it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Generator, Iterator
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
# Airflow's own metadata lives in SQLite for in-process dag.test() runs; the warehouse
# the tasks write to is the real PostgreSQL below. (The e2e test runs Airflow on Postgres.)
os.environ.setdefault(
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
)

# Validation runs write results and Data Docs under the GX project: use a copy of it.
_GX_COPY = Path(tempfile.mkdtemp(prefix="creditrisk-gx-")) / "great_expectations"
shutil.copytree(REPO / "great_expectations", _GX_COPY, ignore=shutil.ignore_patterns("uncommitted"))
os.environ.setdefault("CREDITRISK_GX_DIR", str(_GX_COPY))


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a database from which tests may CREATE and DROP databases."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    from devstack.postgres import temporary_server

    with temporary_server() as url:
        yield url


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


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Create Airflow's metadata schema once per session (for dag.test())."""
    from airflow.utils import db

    db.initdb()


@pytest.fixture
def load_dag(airflow_db: None):  # type: ignore[no-untyped-def]
    """Parse dags/ afresh (as the dag-processor does) and return one DAG, ready for test().

    Each call parses anew: dag.test() updates the DAG's params in place, so reusing one
    object would leak one run's conf into the next. Retries are switched off so that
    an expected failure fails at once instead of waiting out the retry delay, and
    Deadline Alerts are dropped (see below).
    """
    from airflow.dag_processing.dagbag import BundleDagBag

    def load(dag_id: str):  # type: ignore[no-untyped-def]
        bag = BundleDagBag(
            dag_folder=str(REPO / "dags"), bundle_path=REPO / "dags", safe_mode=False
        )
        assert bag.import_errors == {}
        dag = bag.get_dag(dag_id)
        for t in dag.tasks:
            t.retries = 0
        # dag.test() in Airflow 3.3.2 cannot finish a successful run of a DAG with a
        # Deadline Alert: it hands the run the deadline definitions where the scheduler
        # hands it their database ids (DeadlineAlert.get_by_id fails). The deadline is
        # tested through the metadata DB in tests/integration/test_notifier.py.
        dag.deadline = None
        return dag

    return load


@pytest.fixture
def warehouse_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the process settings at a fresh warehouse and an empty landing folder."""
    from creditrisk.config import get_settings

    landing = tmp_path / "landing"
    landing.mkdir()
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("CREDITRISK_LANDING_DIR", str(landing))
    get_settings.cache_clear()
    yield landing
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def mlflow_store(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking + registry store: a PostgreSQL database, artifacts on disk."""
    name = f"crmlflow_{uuid.uuid4().hex[:8]}"
    _admin_execute(pg_admin_url, f"CREATE DATABASE {_quote_ident(name)}")
    os.environ["CREDITRISK_MLFLOW_ARTIFACT_ROOT"] = str(tmp_path_factory.mktemp("mlartifacts"))
    yield _url_for(pg_admin_url, name)
    _admin_execute(pg_admin_url, f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")


@pytest.fixture
def mlflow_env(
    mlflow_store: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    """MLFLOW_TRACKING_URI at the store and a registered-model name of this test's own."""
    from creditrisk.config import get_settings

    model_name = f"credit-risk-pd-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    monkeypatch.setenv("CREDITRISK_MODEL_NAME", model_name)
    get_settings.cache_clear()
    yield mlflow_store, model_name
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def warehouse_copy(pg_admin_url: str, template_db: str):  # type: ignore[no-untyped-def]
    """A context manager: a named, migrated warehouse for a module's shared fixture."""

    @contextlib.contextmanager
    def copy(name: str) -> Generator[str]:
        _admin_execute(pg_admin_url,
                       f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)",
                       f"CREATE DATABASE {_quote_ident(name)} TEMPLATE "
                       f"{_quote_ident(template_db)}")
        try:
            yield _url_for(pg_admin_url, name)
        finally:
            _admin_execute(pg_admin_url,
                           f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")

    return copy


def pytest_unconfigure(config: pytest.Config) -> None:
    """Drop logging handlers left on pytest's capture streams.

    Libraries configure logging on whatever ``sys.stderr`` is current, which under pytest
    is a capture stream closed at the end; the embedded server's exit hook then logs one
    line into it, and ``logging`` prints a "Logging error" traceback for it.
    """
    import logging
    import sys

    for name in [None, *logging.Logger.manager.loggerDict]:
        logger = logging.getLogger(name)
        for handler in list(getattr(logger, "handlers", [])):
            if isinstance(handler, logging.FileHandler) or not isinstance(
                    handler, logging.StreamHandler):
                continue
            if handler.stream not in (sys.__stderr__, sys.__stdout__):
                logger.removeHandler(handler)  # a capture stream, closed or about to be
