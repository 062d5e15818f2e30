"""An honest out-of-time design for a forward test on a short history.

Data cover UTC days ``first .. D``. A label at snapshot ``T`` with horizon ``H`` reads
days ``T .. T+H-1``. The design:

* evaluation date ``T_eval = D + 1 - H``: the latest date whose outcome window is fully
  observed; the calibration, validation and test sets are all scored at ``T_eval`` and
  are customer-disjoint (each customer hashed once into one of them);
* training snapshots ``T_train <= T_eval - H`` every ``step_days``, going back to
  ``first + min_history_days``: every training label is known on ``T_eval`` (its window
  ends on or before ``T_eval - 1``), so the model only uses what was known at ``T_eval``
  and the test compares its PDs with what happened after ``T_eval``.

With ``D - first + 1 = L`` days, the first training snapshot needs
``first + min_history <= D + 1 - 2H``, i.e. ``2H + min_history <= L``: on a 90-day
world with 21 days of history, ``H <= 34``; :func:`feasible_horizons` lists the counts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from creditrisk.errors import InputError

EVAL_PARTS = ("calibration", "validation", "test")


@dataclass(frozen=True)
class OotDesign:
    """Snapshot dates of one training run (or forward test).

    ``eval_dates`` (newest first) are pooled: their customers are hashed once each into
    calibration, validation and test, so a customer seen on both dates stays in one part.
    """

    first_day: dt.date
    last_day: dt.date
    horizon_days: int
    train_dates: list[dt.date]
    eval_dates: list[dt.date]
    shares: dict[str, float] = field(default_factory=dict)

    @property
    def eval_date(self) -> dt.date:
        """The newest evaluation date."""
        return self.eval_dates[0]

    def check(self) -> None:
        """Raise InputError unless every training outcome window ends on or before the
        oldest evaluation date and every evaluation window is fully observed."""
        h = dt.timedelta(days=self.horizon_days)
        oldest = min(self.eval_dates)
        for t in self.train_dates:
            if t + h > oldest:
                raise InputError(f"training snapshot {t} + {self.horizon_days}d overlaps "
                                 f"the evaluation date {oldest}")
        if self.eval_date + h > self.last_day + dt.timedelta(days=1):
            raise InputError(f"the outcome window after {self.eval_date} is not observed")


def design(
    first_day: dt.date,
    last_day: dt.date,
    horizon_days: int,
    *,
    step_days: int = 7,
    min_history_days: int = 21,
    max_train_snapshots: int = 8,
    shares: dict[str, float] | None = None,
    eval_dates: int = 1,
    eval_step_days: int = 7,
) -> OotDesign:
    """The design for data ``first_day .. last_day`` (see the module docstring).

    Raises:
        InputError: when no training snapshot fits.
    """
    newest = last_day + dt.timedelta(days=1 - horizon_days)
    evals = [newest - dt.timedelta(days=k * eval_step_days) for k in range(max(eval_dates, 1))]
    earliest = first_day + dt.timedelta(days=min_history_days)
    t = min(evals) - dt.timedelta(days=horizon_days)
    dates: list[dt.date] = []
    while t >= earliest and len(dates) < max_train_snapshots:
        dates.append(t)
        t -= dt.timedelta(days=step_days)
    if not dates:
        raise InputError(
            f"H={horizon_days}: no training snapshot fits between {earliest} and "
            f"{min(evals) - dt.timedelta(days=horizon_days)} (needs 2H + min_history "
            f"+ {(len(evals) - 1) * eval_step_days} <= {(last_day - first_day).days + 1} days)"
        )
    out = OotDesign(first_day, last_day, horizon_days, sorted(dates), evals,
                    shares or {"calibration": 0.3, "validation": 0.2, "test": 0.5})
    out.check()
    return out


def feasible_horizons(
    n_days: int, horizons: Sequence[int] = (7, 14, 21, 30, 45), *, step_days: int = 7,
    min_history_days: int = 21,
) -> pd.DataFrame:
    """For a history of ``n_days`` days: per horizon, the evaluation day index and the
    number and range of training snapshots (day 0 = first day)."""
    first = dt.date(2000, 1, 1)
    last = first + dt.timedelta(days=n_days - 1)
    rows = []
    for h in horizons:
        try:
            d = design(first, last, h, step_days=step_days, min_history_days=min_history_days)
            tr = [(t - first).days for t in d.train_dates]
            rows.append({"horizon": h, "eval_day": (d.eval_date - first).days,
                         "n_train_snapshots": len(tr), "train_days": f"{tr[0]}..{tr[-1]}"})
        except InputError:
            rows.append({"horizon": h, "eval_day": n_days - h, "n_train_snapshots": 0,
                         "train_days": "-"})
    return pd.DataFrame(rows)


def customer_part(customer_ids: pd.Index | pd.Series, shares: dict[str, float],
                  salt: str = "oot") -> np.ndarray:
    """Assign each customer to one part by a stable hash (shares in dict order)."""
    names = list(shares)
    edges = np.cumsum([shares[n] for n in names])
    u = np.array([int.from_bytes(hashlib.sha256(f"{salt}:{c}".encode()).digest()[:8], "big")
                  / 2**64 for c in customer_ids])
    idx = np.minimum(np.searchsorted(edges / edges[-1], u, side="right"), len(names) - 1)
    return np.array(names, dtype=object)[idx]
