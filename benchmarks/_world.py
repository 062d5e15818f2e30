"""Server processes for the benchmarks (start in a process group, wait for ready, stop)
and the request material they share.

Shared by ``serving.py`` and ``soak.py``. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # devstack runs from the checkout
    sys.path.insert(0, str(REPO))

from devstack.process import Child, free_port, group_alive  # noqa: E402

__all__ = ["Child", "Server", "free_port", "group_alive", "start_server", "stop_server"]
HOST = "127.0.0.1"
READY_TIMEOUT_S = 180.0


def say(msg: str) -> None:
    print(msg, flush=True)


def day_features(warehouse: str, day: dt.date) -> tuple[list[str], list[list[float]]]:
    """Every customer's id and feature row of ``customer_features`` as of ``day``, by id."""
    import sqlalchemy as sa

    from creditrisk.catalogue import FEATURE_NAMES

    engine = sa.create_engine(warehouse)
    try:
        with engine.connect() as conn:
            got = conn.execute(sa.text(
                f"SELECT customer_id, {', '.join(FEATURE_NAMES)} FROM customer_features"
                " WHERE as_of_date = :d ORDER BY customer_id"), {"d": day}).all()
    finally:
        engine.dispose()
    return [str(r[0]) for r in got], [[float(v) for v in r[1:]] for r in got]


@dataclass
class Server(Child):
    """A benchmark server: a :class:`devstack.process.Child` and the port it serves."""

    port: int = 0


def start_server(name: str, cmd: list[str], env: dict[str, str], port: int,
                 workdir: Path) -> Server:
    """Start ``cmd`` in a process group of its own, output to a log file."""
    child = Child.start(name, cmd, env, workdir / f"{name}.log", cwd=REPO)
    return Server(child.name, child.proc, child.log, port)


def stop_server(server: Server) -> None:
    """SIGTERM the server's process group, SIGKILL it after 15 s; reap the leader."""
    server.stop(grace=15.0)


def http(method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(servers: list[tuple[Server, str, dict[str, str]]]) -> None:
    """Poll each (server, path, headers) until it answers 200; fail if a server dies."""
    started = time.monotonic()
    pending = list(servers)
    while pending:
        for item in list(pending):
            server, path, headers = item
            if server.proc.poll() is not None:
                raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n"
                                   f"{server.tail()}")
            with contextlib.suppress(OSError):
                if http("GET", f"http://{HOST}:{server.port}{path}", headers=headers,
                        timeout=2)[0] == 200:
                    say(f"{server.name} ready on port {server.port} after "
                        f"{time.monotonic() - started:.1f} s")
                    pending.remove(item)
        if time.monotonic() - started > READY_TIMEOUT_S:
            names = ", ".join(s.name for s, _, _ in pending)
            tails = "\n".join(s.tail() for s, _, _ in pending)
            raise RuntimeError(f"not ready after {READY_TIMEOUT_S:.0f} s: {names}\n{tails}")
        time.sleep(0.25)
