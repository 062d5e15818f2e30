"""The audit log of decisions: queued on the request path, written in batches off it.

Every decision ``/predict`` and ``/predict/batch`` answers becomes a ``decision_log``
row (model name and version, the as-of date of the features used or ``request`` for
inline features, the request id). The handler only appends a tuple to an in-memory
queue (no I/O, no lock held across I/O, no thread per request); one writer thread
flushes the queue (a COPY, then one INSERT from it: ``insert_decisions``) every
``flush_interval_s`` or as soon as ``batch_rows`` are waiting, and once more at
shutdown.

The trade-off, on purpose: the log is *best effort* so that checkout never waits on
it. If the warehouse is down, slow or hung, the API keeps answering. The queue is
bounded where it grows: a decision that finds ``max_pending`` rows already waiting
drops the oldest of them at enqueue, so a write that never returns cannot grow the
process's memory beyond ``max_pending`` rows (plus the one batch in flight). The
writer keeps the rows of a failed write and retries them after an exponential backoff
(``flush_interval_s`` doubled per consecutive failure, at most ``retry_max_s``; back
to the flush interval after a success), so a down warehouse is not hammered five times
a second. Every row that is not written is counted in
``creditrisk_decision_log_dropped_total{reason}`` and logged as a warning (at most
every 10 s per reason, not per row), so an operator sees the gap instead of a silently
short table. A crash of the process loses what was still queued (at most one flush
interval's worth in normal operation). Reasons: ``queue_full`` (the oldest waiting row,
dropped at enqueue to keep ``max_pending``), ``warehouse_error`` (a failed write's rows
that no longer fit in the queue), ``shutdown`` (the final flush failed, or the writer
was still hung in a write).

Each row's key is the server's own request id (a uuid4 per HTTP request) and the item
index, so a client that reuses its ``X-Request-ID`` (kept in ``client_request_id``)
never collides with an earlier decision. A key conflict can then only mean the same row
sent twice (a write whose commit succeeded but whose answer was lost, then retried): it
is already in the table and counts as written.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from creditrisk.config import DbTimeouts
from creditrisk.storage.db import make_engine
from creditrisk.storage.decisions import insert_decisions

log = logging.getLogger("serving.decision_log")

Row = tuple[Any, ...]


class DecisionLog:
    """A bounded queue of decision rows and the thread that writes them."""

    def __init__(
        self,
        database_url: str,
        *,
        flush_interval_s: float = 0.2,
        batch_rows: int = 500,
        max_pending: int = 100_000,
        retry_max_s: float = 30.0,
        on_written: Callable[[int], None] | None = None,
        on_dropped: Callable[[str, int], None] | None = None,
        writer: Callable[[Sequence[Row]], int] | None = None,
        timeouts: DbTimeouts | None = None,
    ) -> None:
        self.flush_interval_s, self.batch_rows = flush_interval_s, batch_rows
        self.max_pending, self.retry_max_s = max_pending, retry_max_s
        # the API's bounds (ServingSettings.db_timeouts), not the batch jobs': a hung
        # warehouse holds one write at most the statement timeout, then it backs off
        self._engine = None if writer else make_engine(database_url, pool_size=1,
                                                       max_overflow=0, timeouts=timeouts)
        self._write = writer or (lambda rows: insert_decisions(self._engine, rows))  # type: ignore[arg-type]
        # deque.append/popleft are atomic: the request path takes no lock at all
        self._queue: collections.deque[Row] = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._on_written = on_written or (lambda n: None)
        self._on_dropped = on_dropped or (lambda reason, n: None)
        self._failing = False
        self._failures = 0  # consecutive failed writes: the backoff's exponent
        self._flush_lock = threading.Lock()
        self._last_drop_log: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def pending(self) -> int:
        return len(self._queue)

    def retry_delay(self) -> float:
        """Seconds the writer waits before its next attempt: backoff after failures."""
        if not self._failures:
            return 0.0
        return min(self.retry_max_s, self.flush_interval_s * 2.0 ** min(self._failures, 60))

    def record(self, request_id: str, client_request_id: str | None, item: int, route: str,
               body: dict[str, Any], feature_source: str, amount: float | None,
               product_category: str | None, shadow: bool = False) -> None:
        """Queue one decision (``body`` is the answer's dict); never blocks, never raises.

        ``shadow``: the challenger's decision for a sampled call (serving/shadow.py), never
        answered; logged under the same request id and item as the answered one.

        ``request_id`` is the server's id of the request (unique), ``client_request_id``
        the client's X-Request-ID or None. With ``max_pending`` rows waiting, the oldest
        is dropped to make room: the queue never grows past the cap, whatever the writer
        is doing, and the newest decisions are the ones kept.
        """
        if len(self._queue) >= self.max_pending:
            with contextlib.suppress(IndexError):  # the writer may have just taken them
                self._queue.popleft()
                self._drop("queue_full", 1)
        self._queue.append((
            request_id, client_request_id, item, time.time(), route, body["customer_id"],
            body["model_name"], body["model_version"], feature_source, body["features_as_of"],
            amount, product_category, body["thin_file"], body["probability_of_default"],
            body["credit_score"], body["risk_band"], body["decision"],
            body["recommended_limit"], body["recommended_term_days"],
            # JSON text now: a queued row of plain scalars is invisible to the cyclic GC,
            # whereas thousands of queued dicts made every young-generation pass slower
            json.dumps(body["reason_codes"]), shadow,
        ))
        if len(self._queue) >= self.batch_rows:
            self._wake.set()

    def _take(self, n: int) -> list[Row]:
        out: list[Row] = []
        pop = self._queue.popleft
        try:
            for _ in range(n):
                out.append(pop())
        except IndexError:
            pass
        return out

    def flush(self, final: bool = False) -> int:
        """Write what is queued now; return rows written. Called by the writer thread."""
        with self._flush_lock:
            return self._flush(final)

    def _flush(self, final: bool) -> int:
        written = 0
        while True:
            overflow = len(self._queue) - self.max_pending
            if overflow > 0:
                self._drop("queue_full", len(self._take(overflow)))
            batch = self._take(self.batch_rows)
            if not batch:
                return written
            try:
                self._write(batch)
            except Exception as exc:
                self._failures += 1
                if not self._failing:
                    log.warning("decision log write failed; the API keeps serving",
                                extra={"error": f"{type(exc).__name__}: "
                                                f"{str(exc).splitlines()[0][:200]}"})
                self._failing = True
                if final:
                    self._drop("shutdown", len(batch) + len(self._take(len(self._queue))))
                elif len(self._queue) + len(batch) <= self.max_pending:
                    self._queue.extendleft(reversed(batch))  # retried on the next flush
                else:
                    self._drop("warehouse_error", len(batch))
                return written
            if self._failing:
                log.warning("decision log writes recovered", extra={"items": len(batch)})
                self._failing = False
            self._failures = 0
            # rows skipped on a key conflict were written by an earlier attempt
            written += len(batch)
            self._on_written(len(batch))

    def _drop(self, reason: str, n: int) -> None:
        if not n:
            return
        self._on_dropped(reason, n)
        now = time.monotonic()
        if now - self._last_drop_log.get(reason, -1e9) >= 10.0:  # not once per flush
            self._last_drop_log[reason] = now
            log.warning("decision log rows dropped (see creditrisk_decision_log_dropped_total)",
                        extra={"error": reason, "items": n})

    def _run(self) -> None:
        while not self._stop.is_set():
            delay = self.retry_delay()
            if delay:  # backing off: a full batch waiting does not shorten the wait
                self._stop.wait(delay)
            else:
                self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # never let the writer thread die
                log.warning("decision log flush crashed", extra={"error": repr(exc)[:200]})

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the writer, then write what is left (one last attempt).

        A writer still hung in a write after ``timeout_s`` is abandoned (it is a daemon
        thread): what is queued is counted as dropped (``shutdown``) and close returns.
        """
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._flush_lock.acquire(timeout=0 if self._thread.is_alive() else timeout_s):
            try:
                self._flush(final=True)
            finally:
                self._flush_lock.release()
        else:
            self._drop("shutdown", len(self._take(len(self._queue))))
        if self._engine is not None:
            self._engine.dispose()
