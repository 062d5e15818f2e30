"""Processes the local runner owns: start detached, probe health, stop the whole group.

Used by ``./platform`` (``devstack.stack``), the tests and the benchmarks, so that one
piece of code starts a child in its own session, waits for it to answer and stops it
with everything it forked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess  # nosec B404 - the runner starts the platform's own programs
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# devstack runs from a checkout (it is never installed), so the repo is its parent.
ROOT = Path(__file__).resolve().parents[1]


def say(msg: str) -> None:
    print(f"platform: {msg}", flush=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_group(name: str, pid: int, timeout: float = 30.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_alive(pid):
            say(f"stopped {name} (pid {pid})")
            return
        time.sleep(0.3)
    say(f"{name} (pid {pid}) ignored SIGTERM for {timeout:.0f}s: killing it")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # fields[0] = state, fields[2] = pgrp
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def http_ok(url: str, timeout: float = 3.0) -> str | None:
    """None when ``url`` answers 2xx, else the reason."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310  # nosec B310 - loopback http
            return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Child:
    """A process started in a session of its own, its output in ``log``."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, argv: list[str], env: dict[str, str], log: Path,
              cwd: Path = ROOT) -> Child:
        with log.open("ab") as out:
            proc = subprocess.Popen(  # nosec B603 - argv from the caller's own code, no shell
                argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        return cls(name, proc, log)

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def wait_http(self, url: str, timeout: float) -> None:
        """Poll ``url`` until it answers 2xx; raise with the log's tail if the child dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                   f"{self.tail()}")
            if http_ok(url, timeout=2.0) is None:
                return
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} not healthy at {url} after {timeout:.0f} s:\n"
                           f"{self.tail()}")

    def stop(self, *, crash: bool = False, grace: float = 15.0) -> None:
        """SIGTERM (SIGKILL if ``crash``) the whole group; SIGKILL after ``grace``; reap."""
        pgid = self.proc.pid
        for sig, wait in ((signal.SIGKILL if crash else signal.SIGTERM, grace),
                          (signal.SIGKILL, 5.0)):
            if not group_alive(pgid):
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and group_alive(pgid):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=0.1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
