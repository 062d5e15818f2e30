"""API keys (constant-time comparison) and a per-key rate limit."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time


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
    def fingerprint(key: str) -> str:
        """A short, non-reversible tag of a key, for rate-limit buckets (never logged raw)."""
        return hashlib.sha256(key.encode()).hexdigest()[:12]


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests, refilled continuously."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, bucket: str, cost: float = 1.0) -> tuple[bool, float]:
        """(allowed, seconds until a token is back)."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(bucket, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= cost:
                self._buckets[bucket] = (tokens - cost, now)
                return True, 0.0
            self._buckets[bucket] = (tokens, now)
            return False, (cost - tokens) / self.rate
