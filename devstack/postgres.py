"""PostgreSQL for the local runner, the tests and the benchmarks.

``start_postgres`` gives the platform its three databases on the embedded server (the
``pgserver`` wheel) or on the server of ``DATABASE_URL``; ``temporary_server`` is a
throw-away embedded server for a test session or a benchmark run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from devstack.process import pid_alive, read_pid, say

DB_NAMES = {"warehouse": "creditrisk", "airflow": "airflow", "mlflow": "mlflow"}


@dataclass(frozen=True)
class Databases:
    warehouse: str
    airflow: str
    mlflow: str
    embedded: bool


def _embedded_postgres(pgdata: Path) -> str:
    """Start (or reuse) the embedded server; return its base URL without a database."""
    import warnings

    # pgserver's platformdirs warns when XDG_RUNTIME_DIR is unset (as under CI); harmless.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    import pgserver
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(pgdata), cleanup_mode=None)
    uri = server.get_uri()  # postgresql://postgres:@/postgres?host=<socket dir>
    host = uri.split("host=", 1)[1]
    return f"postgresql+psycopg2://postgres@/{{db}}?host={quote(host, safe='/')}"


def _with_database(url: str, db: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=db).render_as_string(hide_password=False)


def _ensure_databases(admin_url: str, names: Iterable[str]) -> None:
    import sqlalchemy as sa

    from creditrisk.storage.db import check_connection, make_engine

    engine = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        check_connection(engine)
        with engine.connect() as conn:
            have = set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())
            for name in names:
                if name not in have:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
                    say(f"created database {name}")
    finally:
        engine.dispose()


def start_postgres(pgdata: Path) -> Databases:
    """Bring up PostgreSQL and make sure the three databases exist."""
    external = os.environ.get("DATABASE_URL")
    if external:
        warehouse = external
        airflow = os.environ.get("AIRFLOW_DATABASE_URL") or _with_database(
            external, DB_NAMES["airflow"]
        )
        mlflow = os.environ.get("MLFLOW_BACKEND_STORE_URI") or _with_database(
            external, DB_NAMES["mlflow"]
        )
        _ensure_databases(_with_database(external, "postgres"), DB_NAMES.values())
        say("using the PostgreSQL server of DATABASE_URL")
        return Databases(warehouse, airflow, mlflow, embedded=False)
    template = _embedded_postgres(pgdata)
    _ensure_databases(template.format(db="postgres"), DB_NAMES.values())
    say(f"embedded PostgreSQL running in {pgdata}")
    return Databases(
        warehouse=template.format(db=DB_NAMES["warehouse"]),
        airflow=template.format(db=DB_NAMES["airflow"]),
        mlflow=template.format(db=DB_NAMES["mlflow"]),
        embedded=True,
    )


def stop_embedded_postgres(pgdata: Path) -> None:
    pidfile = pgdata / "postmaster.pid"
    pid = read_pid(pidfile)
    if pid is None or not pid_alive(pid):
        return
    os.kill(pid, signal.SIGINT)  # fast shutdown: roll back open transactions, then exit
    deadline = time.monotonic() + 30
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    say(f"stopped embedded PostgreSQL (pid {pid})")


def embedded_postgres_pid(pgdata: Path) -> int | None:
    pid = read_pid(pgdata / "postmaster.pid")
    return pid if pid is not None and pid_alive(pid) else None


@contextlib.contextmanager
def temporary_server(prefix: str = "crpg-") -> Generator[str, None, None]:
    """A throw-away embedded server; yields an admin URL (database ``postgres``).

    The data directory is a short temp path (the unix socket lives in it) and is deleted
    with the server when the context ends.
    """
    import warnings

    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    import pgserver

    data = Path(tempfile.mkdtemp(prefix=prefix))
    server = pgserver.get_server(str(data), cleanup_mode="delete")
    try:
        host = server.get_uri().split("host=", 1)[1]
        yield f"postgresql+psycopg2://postgres@/postgres?host={host}"
    finally:
        server.cleanup()
