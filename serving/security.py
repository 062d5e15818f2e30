"""API keys (constant-time comparison) and token-bucket rate limits.

Two limits, both per process (N replicas behind a balancer allow N times as much):

* per key: ``CREDITRISK_RATE_LIMIT_PER_MINUTE`` decisions, a ``/predict`` costing 1 and a
  ``/predict/batch`` of n items costing n;
* per client address, for failed keys: ``CREDITRISK_AUTH_FAILURES_PER_MINUTE`` missing or
  invalid keys; once they are spent, the address gets 429 before any key it sends is
  even checked, so key guessing runs at that rate at most.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import threading
import time
from collections import OrderedDict


class KeyChecker:
    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode() for k in keys]

    def valid(self, presented: str | None) -> bool:
        """True when ``presented`` equals a configured key; compares against every key."""
        if not presented:
            return False
        given = presented.encode()
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(given, key)
        return ok

    @staticmethod
    @functools.lru_cache(maxsize=256)  # only valid keys get here: a handful, never evicted
    def fingerprint(key: str) -> str:
        """A short, non-reversible tag of a key, for rate-limit buckets (never logged raw)."""
        return hashlib.sha256(key.encode()).hexdigest()[:12]


class RateLimiter:
    """A token bucket per name: ``per_minute`` tokens, refilled continuously.

    A bucket holds at most ``per_minute`` tokens (a minute's worth may be spent at once).
    At most ``max_buckets`` buckets are kept: past that the least recently used is
    forgotten (it starts full again), so a flood of new addresses cannot grow memory.
    """

    def __init__(self, per_minute: int, max_buckets: int = 65_536) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _tokens(self, bucket: str, now: float) -> float:
        tokens, last = self._buckets.get(bucket, (self.capacity, now))
        return min(self.capacity, tokens + (now - last) * self.rate)

    def _store(self, bucket: str, tokens: float, now: float) -> None:
        self._buckets[bucket] = (tokens, now)
        self._buckets.move_to_end(bucket)
        while len(self._buckets) > self.max_buckets:
            self._buckets.popitem(last=False)

    def allow(self, bucket: str, cost: float = 1.0) -> tuple[bool, float]:
        """(allowed, seconds until ``cost`` tokens are back); spends ``cost`` if allowed.

        A cost over the bucket's capacity is never allowed (retry after is infinite).
        """
        now = time.monotonic()
        with self._lock:
            tokens = self._tokens(bucket, now)
            if tokens >= cost:
                self._store(bucket, tokens - cost, now)
                return True, 0.0
            self._store(bucket, tokens, now)
        if cost > self.capacity:
            return False, float("inf")
        return False, (cost - tokens) / self.rate

    def blocked(self, bucket: str) -> float:
        """0 when the bucket holds a token, else the seconds until it does (spends none)."""
        now = time.monotonic()
        with self._lock:
            if bucket not in self._buckets:
                return 0.0
            tokens = self._tokens(bucket, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
