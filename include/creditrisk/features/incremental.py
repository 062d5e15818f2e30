"""Features from the daily aggregates, one hash chunk of customers at a time.

The same numbers as :func:`creditrisk.features.compute.compute_features` over the raw
history (a test holds them within 1e-9, counts exact), computed from each customer's
cumulative state (``storage.aggregates.fold_state``: the previous date's state plus the
days in between) and its last 30 days of daily aggregates. A date's cost grows with
the days since the last build and the customers, not with the length of the history.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from creditrisk.catalogue import FEATURE_NAMES
from creditrisk.errors import IncompleteBuildError
from creditrisk.features.compute import TREND_WINDOW_DAYS, as_of_timestamp
from creditrisk.storage import aggregates as agg
from creditrisk.storage.db import raw_cursor
from creditrisk.storage.features import (
    forget_staged_chunk,
    forget_staged_chunks,
    record_staged_chunk,
    stage_features,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sqlalchemy.engine import Engine

#: Customers per chunk: a chunk's state, window rows and features stay well under 1 GB.
CHUNK_CUSTOMERS = 200_000
_US_PER_DAY = 86_400_000_000.0


@dataclass(frozen=True)
class Plan:
    """One build: the date, the state it starts from and how many chunks."""

    as_of: dt.date
    base: dt.date | None
    chunks: int
    #: seconds per phase, summed over chunks (fold_s, read_s, compute_s)
    timings: dict[str, float] = field(default_factory=dict)

    def tick(self, phase: str, since: float) -> float:
        """Add the seconds since ``since`` to ``phase``; return now."""
        now = time.perf_counter()
        self.timings[phase] = round(self.timings.get(phase, 0.0) + now - since, 4)
        return now

    def add_timings(self, timings: dict[str, float]) -> None:
        """Add another process's seconds per phase (a mapped chunk's) to this plan's."""
        for phase, seconds in timings.items():
            self.timings[phase] = round(self.timings.get(phase, 0.0) + float(seconds), 4)

    def as_dict(self) -> dict[str, object]:
        """The plan as JSON values (an XCom): what every chunk and the publish need."""
        return {"as_of": self.as_of.isoformat(),
                "base": self.base.isoformat() if self.base else None, "chunks": self.chunks}

    @classmethod
    def from_dict(cls, plan: dict[str, object]) -> Plan:
        """The plan :meth:`as_dict` gave (timings start empty in each process)."""
        base = plan.get("base")
        return cls(dt.date.fromisoformat(str(plan["as_of"])),
                   dt.date.fromisoformat(str(base)) if base else None, int(plan["chunks"]))  # type: ignore[call-overload]


def plan_build(engine: Engine, as_of: dt.date, chunks: int | None = None,
               run_id: str = "") -> Plan:
    """Re-aggregate the dirty days (their own transaction), clear any half-done build
    of the date, and choose its base state and chunks.

    The one planning step of every build (the CLI's and the DAG's ``plan`` task).
    """
    if chunks is not None and chunks < 1:
        raise ValueError(f"chunks must be at least 1, not {chunks}")
    t0 = time.perf_counter()
    with raw_cursor(engine) as cur:
        days = agg.refresh_dirty(cur, run_id)
    refresh_s = round(time.perf_counter() - t0, 4)
    with raw_cursor(engine) as cur:
        agg.start_build(cur, as_of)
        forget_staged_chunks(cur, as_of)
        base = agg.base_state_date(cur, as_of)
        if chunks is None:
            chunks = max(1, math.ceil(agg.estimate_customers(cur, as_of, base)
                                      / CHUNK_CUSTOMERS))
    return Plan(as_of, base, chunks, {"refresh_s": refresh_s, "refreshed_days": float(len(days))})


def chunk_features(cursor: object, plan: Plan, chunk: int) -> pd.DataFrame:
    """Fold and read one chunk's state in the cursor's transaction; its features."""
    cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", (agg.LOCK_KEY,))  # type: ignore[attr-defined]
    _check_base(cursor, plan)
    # the state just written has no statistics: a nested loop over "1 row" would be
    # quadratic, while every join here is chunk-sized on both sides (hash joins)
    cursor.execute("SET LOCAL enable_nestloop = off")  # type: ignore[attr-defined]
    cursor.execute(f"SET LOCAL work_mem = '{agg.SORT_MEMORY}'")  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    agg.fold_state(cursor, plan.as_of, plan.base, chunk, plan.chunks)
    t0 = plan.tick("fold_s", t0)
    state = agg.read_chunk(cursor, plan.as_of, chunk, plan.chunks)
    t0 = plan.tick("read_s", t0)
    feats = features_from_state(state, plan.as_of)
    plan.tick("compute_s", t0)
    return feats


def _check_base(cursor: object, plan: Plan) -> None:
    """The plan's base state is still complete (under the shared lock: loads wait)."""
    if plan.base is None:
        return
    cursor.execute("SELECT 1 FROM customer_feature_state_dates WHERE as_of_date = %s",  # type: ignore[attr-defined]
                   (plan.base,))
    if cursor.fetchone() is None:  # type: ignore[attr-defined]
        raise IncompleteBuildError(
            f"features as of {plan.as_of}: the state as of {plan.base} that the plan folds "
            "from was dropped since (a load changed a day before it): run the whole build "
            "again")


def stage_chunk(engine: Engine, plan: Plan, chunk: int, run_id: str) -> int:
    """Fold, compute and stage one chunk in its own transaction, with its chunk row.

    A re-run (a retried or cleared task, after a crash before or after the commit)
    first drops what an earlier try of the chunk committed, so it ends exactly where one
    clean try ends. Returns the customers staged.
    """
    if not 0 <= chunk < plan.chunks:
        raise ValueError(f"chunk {chunk} is not one of the plan's {plan.chunks}")
    with raw_cursor(engine) as cur:
        cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", (agg.LOCK_KEY,))
        forget_staged_chunk(cur, plan.as_of, chunk, plan.chunks)
        staged = stage_features(cur, plan.as_of, chunk_features(cur, plan, chunk), run_id)
        record_staged_chunk(cur, plan.as_of, chunk, plan.chunks, plan.base, staged, run_id)
    return staged


def stage_chunks(engine: Engine, plan: Plan, run_id: str,
                 after_chunk: Callable[[int], None] | None = None) -> None:
    """Every chunk in turn (the CLI), each in its own transaction (:func:`stage_chunk`)."""
    for chunk in range(plan.chunks):
        stage_chunk(engine, plan, chunk, run_id)
        if after_chunk is not None:  # a test's fault between chunks
            after_chunk(chunk)


def _age(us: pd.Series, cutoff: pd.Timestamp) -> np.ndarray:
    """Days from epoch-microsecond times to the cut-off, as compute_features computes them."""
    import pandas as pd

    ts = pd.to_datetime(us, unit="us", utc=True)
    return ((cutoff - ts).dt.total_seconds() / 86_400.0).to_numpy()


def features_from_state(s: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Every catalogue feature from :func:`storage.aggregates.read_chunk`'s rows.

    Long because it restates :func:`compute_features` feature by feature from the
    aggregates, in catalogue order, so the two can be read side by side.
    """
    import numpy as np
    import pandas as pd

    s = s.sort_values("customer_id", key=lambda c: c.astype("str"))
    cutoff = as_of_timestamp(as_of)
    col = {c: s[c].to_numpy(dtype="float64") for c in s.columns
           if c != "customer_id" and c not in ("first_ts", "last_ts", "first_debit_ts",
                                               "last_debit_ts", "last_purchase_ts")}
    tenure = _age(s["first_ts"], cutoff)
    freq, debit_n = col["n"], col["debit_n"]
    out: dict[str, np.ndarray] = {
        "recency_days": _age(s["last_ts"], cutoff), "frequency": freq, "debit_count": debit_n,
        "monetary_total": col["debit_sum"], "tenure_days": tenure,
        "credit_count": col["credit_n"], "credit_total": 0.0 - col["credit_sum"],
        "active_days": col["active_days"],
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(debit_n > 0, col["debit_sum"] / debit_n, 0.0)
        var = np.where(debit_n > 1, (col["debit_sq"] - debit_n * mean * mean)
                       / np.maximum(debit_n - 1, 1), 0.0)
        span = _age(s["first_debit_ts"], cutoff) - _age(s["last_debit_ts"], cutoff)
        gaps = debit_n > 1
        out["mean_gap_days"] = np.where(gaps, span / np.maximum(debit_n - 1, 1), tenure)
    out["monetary_mean"] = mean
    out["monetary_std"] = np.sqrt(np.clip(var, 0.0, None))
    out["monetary_max"] = np.where(debit_n > 0, np.nan_to_num(col["debit_max"]), 0.0)
    out["max_gap_days"] = np.where(gaps, col["max_debit_gap_us"] / _US_PER_DAY, tenure)
    recent = col["txn_30"]
    out["txn_last_30d"], out["spend_last_30d"] = recent, col["spend_30"]
    before_span = np.maximum(tenure - TREND_WINDOW_DAYS, 1.0)
    recent_span = np.minimum(np.maximum(tenure, 1.0), TREND_WINDOW_DAYS)
    out["activity_trend_30d"] = np.log1p(recent / recent_span) - np.log1p(
        np.where(tenure > TREND_WINDOW_DAYS, (freq - recent) / before_span, recent / recent_span))
    main = col["airtime_n"] + col["financial_services_n"] + col["utility_bill_n"]
    for name, count in (("share_airtime", col["airtime_n"]),
                        ("share_financial_services", col["financial_services_n"]),
                        ("share_utility_bill", col["utility_bill_n"]),
                        ("share_other_categories", freq - main),
                        ("share_channel_web", col["web_n"]),
                        ("share_channel_pay_later", col["pay_later_n"]),
                        ("share_platform_provider", col["platform_n"]),
                        ("share_night", col["night_n"]), ("share_weekend", col["weekend_n"]),
                        ("share_pricing_2", col["pricing_2_n"]),
                        ("share_pricing_4", col["pricing_4_n"])):
        out[name] = count / freq
    out["n_categories"], out["n_products"] = col["n_categories"], col["n_products"]
    out["n_providers"], out["fraud_count"] = col["n_providers"], col["fraud_n"]
    last_buy = _age(s["last_purchase_ts"], cutoff)
    out["purchase_recency_days"] = np.where(np.isfinite(last_buy), last_buy, tenure)
    out["purchases_7d"], out["purchases_30d"] = col["purchases_7"], col["purchases_30"]
    out["spend_7d"], out["active_days_30d"] = col["spend_7"], col["active_30"]
    out["n_products_30d"] = col["products_30"]
    index = pd.Index(s["customer_id"].astype("str").to_numpy(dtype=object), name="customer_id")
    return pd.DataFrame({n: out[n] for n in FEATURE_NAMES}, index=index).astype("float64")
