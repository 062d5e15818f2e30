"""Online feature lookup: the customer's newest customer_features row, behind a TTL cache."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np
import sqlalchemy as sa

from creditrisk.catalogue import FEATURE_NAMES
from creditrisk.config import DbTimeouts
from creditrisk.storage.db import make_engine

# column names from the code's own feature catalogue; the customer id is a bound parameter
_QUERY = sa.text(
    f"SELECT as_of_date, {', '.join(FEATURE_NAMES)} FROM customer_features"  # nosec B608 - catalogue
    " WHERE customer_id = :c ORDER BY as_of_date DESC LIMIT 1"
)


class FeatureStore:
    """Reads features by customer id; caches hits and misses for ``ttl_s`` seconds."""

    def __init__(self, database_url: str, ttl_s: float, max_size: int,
                 timeouts: DbTimeouts | None = None) -> None:
        # a request waits for a pooled connection no longer than for a new one
        wait = float(timeouts.connect_s) if timeouts and timeouts.connect_s else 30.0
        self.engine = make_engine(database_url, timeouts=timeouts, pool_size=4, max_overflow=4,
                                  pool_timeout=wait)
        self.ttl_s, self.max_size = ttl_s, max_size
        self._cache: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def ping(self) -> str | None:
        """None when the warehouse answers, else the reason."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1 FROM customer_features LIMIT 1"))
            return None
        except Exception as exc:
            return f"feature store unreachable: {type(exc).__name__}"

    def is_cached(self, customer_id: str) -> bool:
        """True when a lookup would be answered from the cache (no database round trip)."""
        with self._lock:
            hit = self._cache.get(customer_id)
            return hit is not None and time.monotonic() - hit[0] < self.ttl_s

    def lookup(self, customer_id: str) -> tuple[np.ndarray, dt.date] | None:
        """(features in catalogue order, as-of date), or None for an unknown customer."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(customer_id)
            if hit is not None and now - hit[0] < self.ttl_s:
                return hit[1]
        with self.engine.connect() as conn:
            row = conn.execute(_QUERY, {"c": customer_id}).first()
        value = None if row is None else (np.asarray(row[1:], dtype=float), row[0])
        if self.ttl_s > 0 and self.max_size > 0:
            with self._lock:
                self._cache[customer_id] = (now, value)
                self._cache.move_to_end(customer_id)
                while len(self._cache) > self.max_size:
                    self._cache.popitem(last=False)
        return value

    def close(self) -> None:
        self.engine.dispose()
