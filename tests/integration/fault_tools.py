"""Tools of the fault-injection tests: kill a backend mid-write, run an MLflow server, relay
PostgreSQL over TCP for a process that cannot reach the unix socket.

Nothing here mocks PostgreSQL or MLflow: the faults are real (a terminated backend, a
stopped server process, a folder the process may not read).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.mlflow_server import MlflowServer, free_port  # noqa: F401 (re-exported)

VENV_BIN = Path(sys.executable).parent


def table(url: str, name: str, *, without: tuple[str, ...] = (), order: str = "1") -> list[tuple]:
    """A whole table (minus the ``without`` columns, e.g. load timestamps), ordered."""
    engine = sa.create_engine(url)
    try:
        cols = [c["name"] for c in sa.inspect(engine).get_columns(name) if c["name"] not in without]
        with engine.connect() as conn:
            got = conn.execute(sa.text(f"SELECT {', '.join(cols)} FROM {name} ORDER BY {order}"))
            return [tuple(r) for r in got.all()]
    finally:
        engine.dispose()


# ----------------------------------------------------------------------------- crash mid-write


@dataclass
class Crash:
    """What :func:`terminate_while_blocked` saw: the worker's error, what it killed."""

    killed: int = 0
    errors: list[BaseException] = field(default_factory=list)
    activity: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def error(self) -> BaseException:
        assert self.killed == 1 and len(self.errors) == 1, (
            f"the worker was not caught mid-write: killed {self.killed}, errors "
            f"{self.errors!r}, activity {self.activity}"
        )
        return self.errors[0]


def terminate_while_blocked(
    url: str, lock_table: str, waiting_query: str, work: Callable[[], object],
    *, timeout: float = 120, while_blocked: Callable[[], object] | None = None,
    mode: str = "ACCESS EXCLUSIVE",
) -> Crash:
    """Run ``work`` in a thread while ``lock_table`` is locked; kill its backend there.

    The test holds ACCESS EXCLUSIVE (or ``mode``) on ``lock_table``: the work's
    transaction runs up to its first statement on that table (its first one needing a
    conflicting lock) and waits on the lock, mid-transaction with its earlier writes
    done. The backend waiting on a lock with a query matching
    ``waiting_query`` (an ILIKE pattern) is terminated with ``pg_terminate_backend``,
    as an operator or a failover would; then the lock is released. ``while_blocked``,
    when given, runs once the backend is seen waiting there and before it is killed
    (e.g. a reader checking what others see of the half-done transaction).
    """
    crash = Crash()
    locker = sa.create_engine(url).connect()
    try:
        locker.execute(sa.text(f"BEGIN; LOCK TABLE {lock_table} IN {mode} MODE"))

        def run() -> None:
            try:
                work()
            except BaseException as exc:  # the terminated backend, as the work reports it
                crash.errors.append(exc)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        deadline = time.monotonic() + timeout
        while not crash.killed and worker.is_alive() and time.monotonic() < deadline:
            locker.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
            if while_blocked is not None and locker.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query ILIKE :q"), {"q": waiting_query}
            ).scalar_one():
                while_blocked()
                while_blocked = None
                locker.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
            crash.killed = locker.execute(sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                "datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE :q"
            ), {"q": waiting_query}).scalar_one()
            time.sleep(0.1)
        crash.activity = [tuple(r) for r in locker.execute(sa.text(
            "SELECT pid, state, wait_event_type, left(query, 80) FROM pg_stat_activity"
            " WHERE datname = current_database()")).all()]
        # the worker records its failure before it returns: let it, with the lock still held
        worker.join(timeout)
        assert not worker.is_alive(), "the worker did not return after its backend was killed"
    finally:
        locker.execute(sa.text("ROLLBACK"))
        locker.close()
        locker.engine.dispose()
    return crash


def wait_for_backends(url: str, app: str, *, waiting: bool, timeout: float = 120) -> list[int]:
    """Pids of the backends of application ``app`` (once one waits on a lock, if ``waiting``)."""
    engine = sa.create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
                found = conn.execute(sa.text(
                    "SELECT pid, wait_event_type FROM pg_stat_activity"
                    " WHERE application_name = :app"), {"app": app}).all()
                if not waiting or any(w == "Lock" for _, w in found):
                    return [int(p) for p, _ in found]
                conn.rollback()
                time.sleep(0.1)
    finally:
        engine.dispose()
    raise AssertionError(f"no backend of {app!r} waited on a lock within {timeout}s")


def terminate_backends(url: str, app: str, *, timeout: float = 60) -> None:
    """Terminate every backend of application ``app`` and wait until they are gone."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + timeout
    try:
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
                left = conn.execute(sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = :app"), {"app": app}).scalar_one()
                if not left:
                    return
                time.sleep(0.1)
    finally:
        engine.dispose()
    raise AssertionError(f"backends of {app!r} still there after {timeout}s")


# ----------------------------------------------------------------------------- TCP relay


@contextlib.contextmanager
def tcp_relay(url: str) -> Generator[str]:
    """``url`` reachable over TCP on 127.0.0.1 by any user.

    The embedded test PostgreSQL listens only on a unix socket inside a root-only temp
    folder; a process run as an unprivileged user cannot enter it. This relays a
    loopback TCP port to the socket, so the server still sees a local (trusted)
    connection. A URL that is already TCP is returned as it is.
    """
    parsed = make_url(url)
    sock_dir = parsed.query.get("host")
    if not sock_dir:
        yield url
        return
    if isinstance(sock_dir, tuple):
        sock_dir = sock_dir[0]
    port = parsed.port or 5432
    target = os.path.join(sock_dir, f".s.PGSQL.{port}")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()

    def pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    relayed = parsed.difference_update_query(["host"]).set(
        host="127.0.0.1", port=listener.getsockname()[1])
    try:
        yield relayed.render_as_string(hide_password=False)
    finally:
        stop.set()
        listener.close()


@contextlib.contextmanager
def world_traversable_dir(prefix: str) -> Generator[Path]:
    """A fresh temp folder any user may enter (mkdtemp makes it owner-only)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for d, _, _ in os.walk(path):
            with contextlib.suppress(OSError):
                Path(d).chmod(0o755)
        shutil.rmtree(path, ignore_errors=True)
