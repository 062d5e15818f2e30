"""Operator commands on a running local stack: ``./platform logs`` and ``status --json``."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TextIO

from creditrisk import progress
from creditrisk.errors import InputError

#: The DAGs ``up``'s pipeline pass runs, in order (each announced with progress.stage).
PIPELINE_STAGES = ("ingest_transactions", "build_features", "train_model", "score_customers")


def log_files(logs: Path) -> dict[str, Path]:
    """Each service's log by service name (``<name>.log`` in the state folder)."""
    if not logs.is_dir():
        return {}
    return {p.stem: p for p in sorted(logs.glob("*.log"))}


def _tail(path: Path, lines: int) -> tuple[str, int]:
    """The last ``lines`` lines of ``path`` and the byte offset of its end."""
    data = path.read_bytes()
    text = data.decode(errors="replace")
    kept = text.splitlines(keepends=True)[-lines:] if lines > 0 else []
    return "".join(kept), len(data)


def show_logs(logs: Path, service: str | None, *, lines: int = 100, follow: bool = False,
              out: TextIO, stop: Callable[[], bool] = lambda: False,
              poll_s: float = 0.5) -> int:
    """Print a service's log (its last ``lines``; ``follow`` keeps printing what is added).

    Without a service, list the logs there are. ``stop`` ends a follow (tests); an operator
    ends it with Ctrl-C.

    Raises:
        InputError: no such service log, naming the ones there are.
    """
    files = log_files(logs)
    if service is None:
        if not files:
            out.write(f"no logs yet in {logs} (./platform up writes them)\n")
        for name, path in files.items():
            out.write(f"  {name:28} {path.stat().st_size:>12,} bytes  {path}\n")
        return 0
    if service not in files:
        known = ", ".join(files) or f"none yet in {logs}"
        raise InputError(f"no log for service {service!r}; logs: {known}")
    text, offset = _tail(files[service], lines)
    out.write(text)
    out.flush()
    while follow and not stop():
        time.sleep(poll_s)
        size = files[service].stat().st_size
        if size < offset:  # truncated or rotated: start again from its beginning
            offset = 0
        if size > offset:
            with files[service].open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read(size - offset)
            offset = size
            out.write(chunk.decode(errors="replace"))
            out.flush()
    return 0


def status_json(rows: list[dict[str, object]]) -> str:
    """``./platform status --json``: one object, every service with its pid and health."""
    healthy = all(r["healthy"] for r in rows)
    return json.dumps({"healthy": healthy, "services": rows}, sort_keys=True)


@contextlib.contextmanager
def pipeline_bar(*, quiet: bool = False, out: TextIO | None = None) -> Generator[None]:
    """``up``'s pipeline pass as a bar on stderr, one step per DAG it waits for.

    On a terminal the bar redraws in place; in a log each stage is one line
    (``pipeline [2/4] build_features``). ``quiet`` (``./platform up --quiet`` or
    ``PLATFORM_QUIET=1``) draws nothing: the runner's own lines still say what happened.
    """
    import click

    if quiet or os.environ.get("PLATFORM_QUIET"):
        yield
        return
    stream = out or sys.stderr
    with click.progressbar(length=len(PIPELINE_STAGES), label="pipeline", file=stream,
                           show_pos=True, show_eta=False) as bar:
        reached = [0]

        def on_stage(name: str) -> None:
            at = PIPELINE_STAGES.index(name) if name in PIPELINE_STAGES else reached[0]
            bar.label = f"pipeline [{at + 1}/{len(PIPELINE_STAGES)}] {name}"
            bar.update(max(0, at - reached[0]))
            bar.render_progress()  # a label change alone draws nothing
            reached[0] = max(reached[0], at)

        with progress.reporting(on_stage):
            yield
        bar.label = "pipeline done"
        bar.update(len(PIPELINE_STAGES) - reached[0])
