"""A real ``mlflow server`` subprocess for the fault tests: started, stopped, crashed.

The process handling (own session, health polling, group stop) is the local runner's
:class:`devstack.process.Child`, the same code ``./platform`` and the benchmarks use.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from devstack.process import Child, free_port

__all__ = ["MlflowServer", "free_port"]

VENV_BIN = Path(sys.executable).parent


class MlflowServer:
    """A real ``mlflow server`` subprocess on a fixed port, stopped and started at will."""

    def __init__(self, backend_store_uri: str, artifacts: str | Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.backend_store_uri, self.artifacts, self.log = backend_store_uri, artifacts, log
        self.child: Child | None = None

    @property
    def proc(self) -> object | None:
        return None if self.child is None else self.child.proc

    def start(self, timeout: float = 120) -> None:
        assert self.child is None
        self.child = Child.start(
            "mlflow",
            [str(VENV_BIN / "mlflow"), "server",
             "--backend-store-uri", self.backend_store_uri,
             "--default-artifact-root", str(self.artifacts),
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, self.log,
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
