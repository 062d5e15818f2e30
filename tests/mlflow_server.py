"""A real ``mlflow server`` subprocess for the fault tests: started, stopped, crashed.

The process handling (own session, health polling, group stop) is the local runner's
:class:`devstack.process.Child`, the same code ``./platform`` and the benchmarks use.
With ``auth=True`` it runs as ``./platform up`` runs it: ``--app-name basic-auth`` with the
runner's auth config, artifacts served (and so permission-checked) by the server.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import time
from pathlib import Path

from devstack.process import Child, free_port
from devstack.stack import mlflow_auth_config

__all__ = ["MlflowServer", "free_port"]

VENV_BIN = Path(sys.executable).parent


class MlflowServer:
    """A real ``mlflow server`` subprocess on a fixed port, stopped and started at will."""

    def __init__(self, backend_store_uri: str, artifacts: str | Path, log: Path,
                 *, auth: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.backend_store_uri, self.artifacts, self.log = backend_store_uri, artifacts, log
        self.child: Child | None = None
        self.auth = auth
        #: the bootstrap admin's password (generated per server)
        self.admin_password = secrets.token_urlsafe(18) if auth else ""

    @property
    def proc(self) -> object | None:
        return None if self.child is None else self.child.proc

    def start(self, timeout: float = 120) -> None:
        assert self.child is None
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        argv = [str(VENV_BIN / "mlflow"), "server"]
        if self.auth:
            ini = mlflow_auth_config(self.log.parent / f"mlflow-auth-{self.port}")
            env.update(MLFLOW_AUTH_CONFIG_PATH=str(ini),
                       MLFLOW_AUTH_ADMIN_PASSWORD=self.admin_password,
                       MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_urlsafe(32))
            argv += ["--app-name", "basic-auth", "--serve-artifacts",
                     "--artifacts-destination", str(self.artifacts)]
        else:
            argv += ["--default-artifact-root", str(self.artifacts)]
        self.child = Child.start(
            "mlflow",
            [*argv, "--backend-store-uri", self.backend_store_uri,
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            env, self.log,
        )
        try:
            self.child.wait_http(f"{self.url}/health", timeout)
        except RuntimeError as exc:
            self.stop()
            raise AssertionError(str(exc)[-3000:]) from None

    def stop(self, *, crash: bool = False) -> None:
        """Stop the server and its workers (its own process group); wait for the port.

        ``crash`` kills them outright (SIGKILL), as a lost host or an OOM kill would.
        """
        if self.child is None:
            return
        self.child.stop(crash=crash, grace=30.0)
        self.child = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.2)
        raise AssertionError(f"port {self.port} still answers after the server stopped")


def authenticated_server(folder: Path) -> tuple[MlflowServer, dict[str, tuple[str, str]]]:
    """An authenticated server (not started) in ``folder`` with the platform's three
    identities: the admin, and fresh passwords for ``trainer`` and ``reader`` (for
    ``registry.provision``)."""
    server = MlflowServer(f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts",
                          folder / "server.log", auth=True)
    users = {"admin": ("admin", server.admin_password),
             "trainer": ("trainer", secrets.token_urlsafe(18)),
             "reader": ("reader", secrets.token_urlsafe(18))}
    return server, users
