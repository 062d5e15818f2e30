"""A real ``mlflow server`` subprocess for the fault tests: started, stopped, crashed."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MlflowServer:
    """A real ``mlflow server`` subprocess on a fixed port, stopped and started at will."""

    def __init__(self, backend_store_uri: str, artifacts: str | Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.backend_store_uri, self.artifacts, self.log = backend_store_uri, artifacts, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> None:
        assert self.proc is None
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "mlflow"), "server",
                 "--backend-store-uri", self.backend_store_uri,
                 "--default-artifact-root", str(self.artifacts),
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mlflow server exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(
                f"{self.url}/health", timeout=2
            ) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.3)
        self.stop()
        raise AssertionError(f"mlflow server not healthy in {timeout}s: "
                             f"{self.log.read_text()[-3000:]}")

    def stop(self, *, crash: bool = False) -> None:
        """Stop the server and its workers (its own process group); wait for the port.

        ``crash`` kills them outright (SIGKILL), as a lost host or an OOM kill would.
        """
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL if crash else signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.2)
        raise AssertionError(f"port {self.port} still answers after the server stopped")
