"""The training set: point-in-time snapshots with forward labels, split out of time.

``train --as-of D`` may only use what is observable on D: feature snapshots at dates
``T <= D - H`` (one per ``snapshot_step_days``, going back from ``D - H``), each with
its label from the window of H days starting at T. Missing snapshots and labels are
built first, so training works on a warehouse holding only raw transactions.

The split is out of time *and* grouped by customer: the newest snapshot(s) are the
test set and the ones before them validation, the rest training; and every customer
is hashed once into a training pool or an evaluation pool, so no customer's rows sit
on both sides.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from creditrisk.errors import InputError
from creditrisk.features.build import build_labels
from creditrisk.features.compute import compute_features
from creditrisk.features.labels import LeakageError
from creditrisk.storage import features as store
from creditrisk.storage.features import label_window_starts

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


@dataclass
class TrainingSet:
    """Rows (features, label, split) and what they are."""

    frame: pd.DataFrame
    snapshots: list[dt.date]
    fingerprint: dict[str, Any]

    def part(self, split: str) -> pd.DataFrame:
        return self.frame[self.frame["split"] == split]


def snapshot_dates(as_of: dt.date, first_day: dt.date, cfg: dict[str, Any]) -> list[dt.date]:
    """Snapshot dates observable on ``as_of``, oldest first."""
    horizon = int(cfg["horizon_days"])
    step = int(cfg["snapshot_step_days"])
    earliest = first_day + dt.timedelta(days=int(cfg["min_history_days"]))
    dates: list[dt.date] = []
    t = as_of - dt.timedelta(days=horizon)
    while t >= earliest and len(dates) < int(cfg["max_snapshots"]):
        dates.append(t)
        t -= dt.timedelta(days=step)
    needed = int(cfg["validation_snapshots"]) + int(cfg["test_snapshots"]) + 1
    if len(dates) < needed:
        raise InputError(
            f"training as of {as_of} needs {needed} weekly snapshots at least "
            f"{cfg['min_history_days']} days after the first transaction ({first_day}) and "
            f"{horizon} days before {as_of}; only {len(dates)} fit: load more history"
        )
    return sorted(dates)


def evaluation_pool(customer_ids: pd.Series, share: float) -> pd.Series:
    """True for customers hashed into the evaluation pool (stable across runs)."""
    def bucket(cid: str) -> float:
        digest = hashlib.sha256(cid.encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    return customer_ids.map(lambda c: bucket(str(c)) < share).astype(bool)


def assign_splits(frame: pd.DataFrame, snapshots: list[dt.date], cfg: dict[str, Any]) -> (
    pd.DataFrame
):
    """Add a ``split`` column: train / validation / test, or dropped (None)."""
    import numpy as np

    n_test, n_val = int(cfg["test_snapshots"]), int(cfg["validation_snapshots"])
    test_dates = set(snapshots[-n_test:])
    val_dates = set(snapshots[-(n_test + n_val):-n_test])
    eval_pool = evaluation_pool(frame["customer_id"], float(cfg["evaluation_customer_share"]))
    date = frame["as_of_date"]
    split = np.where(
        date.isin(test_dates) & eval_pool, "test",
        np.where(date.isin(val_dates) & eval_pool, "validation",
                 np.where(~date.isin(test_dates | val_dates) & ~eval_pool, "train", "")),
    )
    out = frame.assign(split=split)
    return out[out["split"] != ""].reset_index(drop=True)


def fingerprint(frame: pd.DataFrame, cfg: dict[str, Any]) -> dict[str, Any]:
    """Row counts, date ranges, label strategy, bad rate and a content hash of the set."""
    import pandas as pd

    digest = hashlib.sha256(
        pd.util.hash_pandas_object(frame.sort_values(["as_of_date", "customer_id"]),
                                   index=False).to_numpy().tobytes()
    ).hexdigest()
    info: dict[str, Any] = {
        "rows": len(frame),
        "customers": int(frame["customer_id"].nunique()),
        "label_strategy": cfg["label_strategy"],
        "horizon_days": int(cfg["horizon_days"]),
        "bad_rate": round(float(frame["is_high_risk"].mean()), 4),
        "hash": digest[:16],
    }
    for split, part in frame.groupby("split"):
        info[f"{split}_rows"] = len(part)
        info[f"{split}_bad_rate"] = round(float(part["is_high_risk"].mean()), 4)
        info[f"{split}_dates"] = f"{min(part['as_of_date'])}..{max(part['as_of_date'])}"
    return info


def check_label_windows(engine: Engine, snapshots: list[dt.date], strategy: str) -> None:
    """Leakage guard: every label must come from days on or after its features' cut-off.

    Raises:
        LeakageError: a label was computed from the history the features summarise
            (e.g. the original brief's ``rfm_kmeans`` with same-date RFM features).
    """

    for as_of, start in sorted(label_window_starts(engine, snapshots, strategy).items()):
        if start is None or start < as_of:
            raise LeakageError(
                f"labels {strategy!r} for {as_of} are not taken from a window after the "
                f"features' cut-off (window start {start}): a model trained on them would "
                "learn the label's own inputs back; use forward_window"
            )


def build_training_set(
    engine: Engine, as_of: dt.date, cfg: dict[str, Any], run_id: str
) -> TrainingSet:
    """Snapshots observable on ``as_of`` (built when missing), joined, split, fingerprinted."""

    first = store.first_transaction_day(engine)
    if first is None:
        raise InputError("raw_transactions is empty: ingest history before training")
    snapshots = snapshot_dates(as_of, first, cfg)
    strategy = str(cfg["label_strategy"])
    stale = store.stale_feature_dates(engine, snapshots)
    have_features = set(store.feature_dates(engine)) - stale
    have_labels = store.labelled_dates(engine, strategy) - stale
    for t in snapshots:
        if t not in have_features:
            tx = store.load_transactions(engine, before=t)
            store.replace_features(engine, t, compute_features(tx, t), run_id)
            log.info("built missing feature snapshot %s", t)
        if t not in have_labels:
            customers = store.read_features(engine, t).index
            if build_labels(engine, t, customers, strategy_name=strategy,
                            horizon_days=int(cfg["horizon_days"]), run_id=run_id) is None:
                raise InputError(f"the label window after {t} is not loaded yet")
            log.info("built missing %s labels for %s", strategy, t)
    check_label_windows(engine, snapshots, strategy)
    rows = store.read_training_rows(engine, snapshots, strategy)
    frame = assign_splits(rows, snapshots, cfg)
    for split in ("train", "validation", "test"):
        part = frame[frame["split"] == split]
        if part.empty or part["is_high_risk"].nunique() < 2:
            raise InputError(f"the {split} split has {len(part)} rows and not both classes")
    return TrainingSet(frame=frame, snapshots=snapshots, fingerprint=fingerprint(frame, cfg))
