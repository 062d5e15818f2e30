"""The decision-log queue against an injected writer that hangs or fails (no warehouse).

The queue is bounded where it grows (at enqueue), a failed write is retried after an
exponential backoff with a cap, and a hung writer cannot hold shutdown.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from serving.decision_log import DecisionLog, Row

BODY: dict[str, Any] = {
    "customer_id": "C1", "model_name": "m", "model_version": "1", "features_as_of": None,
    "thin_file": False, "probability_of_default": 0.1, "credit_score": 600,
    "risk_band": "B", "decision": "APPROVE", "recommended_limit": 10.0,
    "recommended_term_days": 30, "reason_codes": [],
}


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


class Recorder:
    """Counts what the log reports as written and dropped."""

    def __init__(self) -> None:
        self.written = 0
        self.dropped: Counter[str] = Counter()

    def on_written(self, n: int) -> None:
        self.written += n

    def on_dropped(self, reason: str, n: int) -> None:
        self.dropped[reason] += n


def make_log(writer: Callable[[Sequence[Row]], int], rec: Recorder, **kw: Any) -> DecisionLog:
    return DecisionLog("unused://", writer=writer, on_written=rec.on_written,
                       on_dropped=rec.on_dropped, **kw)


def record(log: DecisionLog, n: int, tag: str = "r") -> None:
    for i in range(n):
        log.record(f"{tag}-{i}", None, 0, "/predict", BODY, "request", None, None)


def test_a_hung_write_cannot_grow_the_queue_past_max_pending_nor_hold_shutdown() -> None:
    entered, release = threading.Event(), threading.Event()

    def hang(rows: Sequence[Row]) -> int:
        entered.set()
        release.wait(30)
        return len(rows)

    rec = Recorder()
    log = make_log(hang, rec, flush_interval_s=0.01, batch_rows=10, max_pending=50)
    log.start()
    try:
        record(log, 1, "first")
        assert entered.wait(5), "the writer never called the write"
        record(log, 200)  # the writer is stuck: only the queue can take these
        assert log.pending() == 50
        assert rec.dropped == {"queue_full": 150}
        record(log, 10)
        assert log.pending() == 50 and rec.dropped["queue_full"] == 160
        started = time.monotonic()
        log.close(timeout_s=0.2)
        assert time.monotonic() - started < 5  # a hung write does not hold shutdown
        assert rec.dropped["shutdown"] == 50 and log.pending() == 0
        assert rec.written == 0
    finally:
        release.set()


def test_failed_writes_back_off_exponentially_up_to_the_cap_then_reset() -> None:
    attempts: list[float] = []
    healthy = threading.Event()
    written: list[str] = []

    def flaky(rows: Sequence[Row]) -> int:
        attempts.append(time.monotonic())
        if not healthy.is_set():
            raise ConnectionError("warehouse down")
        written.extend(str(r[0]) for r in rows)
        return len(rows)

    rec = Recorder()
    log = make_log(flaky, rec, flush_interval_s=0.025, batch_rows=100, max_pending=1000,
                   retry_max_s=0.2)
    log.start()
    try:
        record(log, 3)
        wait_until(lambda: len(attempts) >= 7)
        gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
        # 0.05, 0.1, 0.2 (the cap), 0.2, ...: never sooner than the backoff says
        for gap, expected in zip(gaps, [0.05, 0.1, 0.2, 0.2, 0.2, 0.2], strict=False):
            assert gap >= expected * 0.9, (gaps, expected)
        assert max(gaps) < 0.2 + 1.0, gaps  # capped (slack for a loaded machine)
        assert log.retry_delay() == 0.2
        assert log.pending() == 3 and rec.dropped == {}  # kept for the retry
        healthy.set()
        wait_until(lambda: rec.written == 3)
        assert written == ["r-0", "r-1", "r-2"]  # each once, in order
        assert log.retry_delay() == 0  # a success resets the backoff
    finally:
        log.close(timeout_s=2)


def test_a_failed_batch_that_no_longer_fits_is_counted_as_warehouse_error() -> None:
    gate = threading.Event()
    entered = threading.Event()

    def failing(rows: Sequence[Row]) -> int:
        entered.set()
        gate.wait(10)
        raise ConnectionError("down")

    rec = Recorder()
    log = make_log(failing, rec, flush_interval_s=0.01, batch_rows=5, max_pending=8)
    log.start()
    try:
        record(log, 5, "a")
        assert entered.wait(5)
        record(log, 10, "b")  # 8 fit while the 5 are in flight
        assert log.pending() == 8 and rec.dropped == {"queue_full": 2}
        gate.set()
        wait_until(lambda: rec.dropped["warehouse_error"] == 5)
        assert log.pending() == 8  # never more than max_pending waits
    finally:
        gate.set()
        log.close(timeout_s=2)
    # the final flush failed too: every row is accounted for
    assert sum(rec.dropped.values()) + rec.written == 15


def test_rows_already_in_the_table_count_as_written_not_dropped() -> None:
    """A key conflict means the same decision sent twice (server ids are unique)."""
    rec = Recorder()
    log = make_log(lambda rows: len(rows) - 1, rec, flush_interval_s=3600, batch_rows=100)
    record(log, 4)
    assert log.flush() == 4
    assert rec.written == 4 and rec.dropped == {}


def test_record_never_blocks_while_a_write_hangs() -> None:
    release = threading.Event()
    rec = Recorder()
    log = make_log(lambda rows: int(release.wait(30)), rec, flush_interval_s=0.01,
                   batch_rows=1, max_pending=100_000)
    log.start()
    try:
        started = time.perf_counter()
        record(log, 20_000)
        assert time.perf_counter() - started < 5
    finally:
        release.set()
        log.close(timeout_s=2)
