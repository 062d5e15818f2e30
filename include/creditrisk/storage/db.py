"""Engines and connectivity checks for the warehouse database."""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from creditrisk.config import DbTimeouts, get_settings
from creditrisk.errors import InputError, ServiceUnavailableError


def describe_url(url: str) -> str:
    """A URL safe to print: the password is masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def make_engine(url: str, *, timeouts: DbTimeouts | None = None, **kwargs: Any) -> Engine:
    """Create an engine for ``url``; a bare ``postgresql://`` is pinned to psycopg2.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3; the loaders use
    psycopg2's ``copy_expert``, so the driver is made explicit here. Every PostgreSQL
    connection is opened with ``timeouts`` (libpq ``connect_timeout``, and
    ``statement_timeout``, ``lock_timeout`` and ``idle_in_transaction_session_timeout``
    through libpq's ``options``), so no wait on the warehouse is unbounded.

    Args:
        url: SQLAlchemy database URL.
        timeouts: The bounds; the process settings' (:meth:`Settings.db_timeouts`) if None.
        **kwargs: Passed to :func:`sqlalchemy.create_engine`.

    Raises:
        InputError: The URL cannot be parsed.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InputError(f"DATABASE_URL is not a valid database URL: {exc}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    if parsed.drivername.startswith("postgresql"):
        bounds = timeouts or get_settings().db_timeouts()
        # an ``options`` already in the URL or the caller's connect_args goes first: a later
        # ``-c`` of the same setting wins, so ours are the bounds that apply
        given = dict(kwargs.pop("connect_args", None) or {})
        extra = " ".join(str(o) for o in (parsed.query.get("options"), given.get("options"))
                         if o)
        given["options"] = f"{extra} {bounds.server_options()}".strip()
        given.setdefault("connect_timeout", bounds.connect_s)
        kwargs["connect_args"] = given
    return sa.create_engine(parsed, pool_pre_ping=True, **kwargs)


def first_line(exc: BaseException) -> str:
    """The first line of a driver error (``exc.orig`` for SQLAlchemy's wrappers)."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def is_database_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the database failing under the work (a lost or terminated
    connection, a server shutting down), as opposed to a bug in the SQL."""
    import psycopg2

    return isinstance(
        exc, psycopg2.OperationalError | psycopg2.InterfaceError | sa.exc.OperationalError
        | sa.exc.InterfaceError,
    )


@contextlib.contextmanager
def database_failures(engine: Engine, what: str) -> Generator[None]:
    """Turn a database failure mid-work into a one-line :class:`ServiceUnavailableError`.

    The message names ``what`` was being written, the database (password masked) and
    the server's reason, and says the transaction was rolled back: every writer of the
    warehouse writes one unit of work in one transaction, so a re-run is all it takes.
    """
    try:
        yield
    except Exception as exc:
        if not is_database_failure(exc):
            raise
        raise ServiceUnavailableError(
            f"{what}: the database at {describe_url(str(engine.url))} failed mid-transaction "
            f"({first_line(exc)}); the transaction was rolled back, nothing of it was "
            "written: re-run it"
        ) from exc


def check_connection(engine: Engine) -> None:
    """Open one connection, or raise a one-line :class:`ServiceUnavailableError`."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except OperationalError as exc:
        raise ServiceUnavailableError(
            f"cannot reach the database at {describe_url(str(engine.url))}: {first_line(exc)}"
        ) from exc


@contextlib.contextmanager
def raw_cursor(engine: Engine) -> Generator[Any]:
    """A DBAPI (psycopg2) cursor in one transaction: committed when the block ends,
    rolled back on any error, the connection closed either way. COPY needs the raw
    driver, and every multi-statement write of the warehouse goes through here."""
    raw = engine.raw_connection()
    try:
        yield raw.cursor()
        raw.commit()
    except BaseException:
        # a terminated backend cannot roll back; the original error is what matters
        with contextlib.suppress(Exception):
            raw.rollback()
        if getattr(raw.driver_connection, "closed", 0):
            # dead: drop it rather than hand the pool a connection it would fail to reset
            raw.invalidate()
        raise
    finally:
        raw.close()
