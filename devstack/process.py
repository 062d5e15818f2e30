"""Processes the local runner owns: start detached, probe health, stop the whole group.

Used by ``./platform`` (``devstack.stack``), the tests and the benchmarks, so that one
piece of code starts a child in its own session, waits for it to answer and stops it
with everything it forked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import urllib.error
import urllib.request
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
