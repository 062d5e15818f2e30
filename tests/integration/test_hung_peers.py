"""Every wait of a batch task is bounded, against peers that accept and never answer.

A refused port fails at once whatever the timeouts; the :class:`HungPeer` completes the
TCP handshake and then says nothing, so only a client-side bound ends the wait. Each
test runs the task in a daemon thread and fails (instead of hanging the suite) when the
bound is not kept. Nothing here sets MLflow's or libpq's knobs: the bounds are the
production settings' defaults (creditrisk.config.Settings).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from creditrisk.config import DbTimeouts, Settings, get_settings
from creditrisk.errors import ServiceUnavailableError
from creditrisk.storage import transactions as sql
from creditrisk.storage.db import make_engine
from tests.hung_peer import hung_peer

SLACK_S = 8.0  # a loaded 2-core machine; still far below any unbounded wait
_BOUND_ENV = ("CREDITRISK_DB_CONNECT_TIMEOUT_S", "CREDITRISK_DB_STATEMENT_TIMEOUT_S",
              "CREDITRISK_DB_LOCK_TIMEOUT_S", "CREDITRISK_DB_IDLE_IN_TRANSACTION_TIMEOUT_S",
              "CREDITRISK_MLFLOW_HTTP_RETRIES", "CREDITRISK_MLFLOW_HTTP_BACKOFF_FACTOR",
              "CREDITRISK_MLFLOW_HTTP_BACKOFF_JITTER", "CREDITRISK_MLFLOW_HTTP_TIMEOUT_S")


@pytest.fixture(autouse=True)
def production_bounds(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings' defaults, whatever the shell exported."""
    for name in _BOUND_ENV:
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    return Settings()


def within(limit_s: float, work: Callable[[], Any]) -> tuple[BaseException | None, float]:
    """Run ``work`` in a daemon thread; (what it raised, seconds) or fail past ``limit_s``."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            work()
            outcome.append(None)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit_s)
    elapsed = time.monotonic() - started
    if thread.is_alive():
        pytest.fail(f"still waiting after {elapsed:.1f} s (bound {limit_s:.1f} s)")
    return outcome[0], elapsed


def test_every_warehouse_connection_carries_the_bounds(
    db_url: str, production_bounds: Settings,
) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            shown = {name: conn.exec_driver_sql(f"SHOW {name}").scalar() for name in (
                "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")}
    finally:
        engine.dispose()
    assert shown == {"statement_timeout": "10min", "lock_timeout": "1min",
                     "idle_in_transaction_session_timeout": "10min"}

    quick = make_engine(db_url, timeouts=DbTimeouts(10, 0.5, 1, 600))
    try:
        def sleep() -> None:
            with quick.connect() as conn:
                conn.exec_driver_sql("SELECT pg_sleep(30)")

        raised, elapsed = within(0.5 + SLACK_S, sleep)
    finally:
        quick.dispose()
    assert isinstance(raised, sa.exc.OperationalError), raised
    assert "canceling statement due to statement timeout" in str(raised)


def test_the_run_lock_wait_is_bounded_by_lock_timeout_with_a_one_line_error(
    db_url: str,
) -> None:
    holder_engine = make_engine(db_url)
    waiter_engine = make_engine(db_url, timeouts=DbTimeouts(10, 600, 1.0, 600))
    holder = holder_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        sql.hold_run_lock(holder, "run-1", "2019-02-14.csv")  # a zombie attempt's lock

        def wait_for_lock() -> None:
            with waiter_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                sql.hold_run_lock(c, "run-1", "2019-02-14.csv")

        raised, elapsed = within(1.0 + SLACK_S, wait_for_lock)
    finally:
        holder.close()  # frees the lock: a hanging waiter would go on now
        holder_engine.dispose()
        waiter_engine.dispose()
    assert isinstance(raised, sql.RunLockBusy), raised
    assert isinstance(raised, ServiceUnavailableError)
    assert elapsed >= 0.9  # it did wait, for lock_timeout
    message = str(raised)
    assert "\n" not in message
    assert message.startswith("2019-02-14.csv: another attempt of run run-1 still holds")
    assert "lock_timeout 1s" in message


def _register_champion(tracking_uri: str, name: str, artifacts: Path) -> None:
    """A registered version aliased champion (resolving it needs no trained model)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    client.create_registered_model(name)
    version = client.create_model_version(name, source=str(artifacts))
    client.set_registered_model_alias(name, "champion", version.version)


def _prepare() -> None:
    from creditrisk.tasks import prepare_from_settings

    prepare_from_settings(date="2019-02-14", run_id=f"hung-{uuid.uuid4().hex[:6]}",
                          logical_date=dt.datetime(2019, 2, 15, tzinfo=dt.UTC))


def test_a_hung_warehouse_fails_a_scoring_task_within_the_connect_timeout(
    mlflow_env: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    production_bounds: Settings,
) -> None:
    store, model_name = mlflow_env
    _register_champion(store, model_name, tmp_path)
    bound = production_bounds.db_timeouts().connect_s
    with hung_peer() as peer:
        monkeypatch.setenv("DATABASE_URL", peer.postgres_url())
        get_settings.cache_clear()
        raised, elapsed = within(bound + SLACK_S, _prepare)
        assert peer.accepted >= 1  # the warehouse answered the handshake, then nothing
    assert isinstance(raised, ServiceUnavailableError), raised
    message = str(raised)
    assert "\n" not in message
    assert message.startswith(f"cannot reach the database at postgresql+psycopg2://creditrisk@"
                              f"127.0.0.1:{peer.port}/warehouse")
    assert "timeout expired" in message
    assert elapsed >= bound - 1  # it was the connect timeout that ended it


def test_a_hung_registry_fails_a_scoring_task_within_the_mlflow_bound(
    db_url: str, monkeypatch: pytest.MonkeyPatch, production_bounds: Settings,
) -> None:
    bounds = production_bounds.mlflow_http_bounds()
    with hung_peer() as peer:
        monkeypatch.setenv("DATABASE_URL", db_url)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", peer.http_url)
        get_settings.cache_clear()
        raised, elapsed = within(bounds.worst_case_s() + SLACK_S, _prepare)
        assert peer.accepted == bounds.retries + 1  # every attempt connected, none answered
    assert isinstance(raised, ServiceUnavailableError), raised
    message = str(raised)
    assert "\n" not in message
    assert message.startswith(f"the MLflow registry at {peer.http_url} is unreachable "
                              "(timed out) while resolving")
    assert elapsed >= (bounds.retries + 1) * bounds.timeout_s - 1
