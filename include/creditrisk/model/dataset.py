"""The training set: point-in-time snapshots with forward labels, split honestly in time.

``train --as-of D`` may only use what is known before D. With the label horizon H, the
design (:func:`creditrisk.model.design.design`) puts:

* the **evaluation dates**: ``T_e = D - H``, the newest date whose outcome window (``T_e ..
  D-1``) is fully observed, and ``evaluation_dates - 1`` more a week apart before it;
  their customers are hashed, once each, into three disjoint parts: **calibration**,
  **validation** and **test** (pooling two dates doubles the evidence the ladder and the
  gate decide on);
* the **training snapshots** at ``T <= min(T_e) - H``, one per ``snapshot_step_days``:
  every training label's window ends on or before the oldest evaluation date, so
  nothing the model learns from overlaps the period it is judged on.

Only the scoring population is used (customers with a customer-initiated purchase in the
policy's lookback, :func:`creditrisk.features.population.segment`): the PD is trained and
judged on the customers it will be asked about. Missing snapshots and labels are built
first, so training works on a warehouse holding only raw transactions.

**The repayment label takes over by itself** (:func:`build_training_set`): once at least
``repayment.min_matured_loans`` loans have matured before D, the set is made of the
customers who borrowed (:func:`build_repayment_set`): a snapshot every
``repayment.issue_window_days`` days over the loans' issue dates, features as of the
snapshot, label ``repayment`` (a loan issued in the window went 30+ days past due within
term + grace); the newest snapshots holding ``repayment.evaluation_share`` of the rows are
the evaluation dates (hashed into calibration, validation and test as above), the older
ones train. Below that count, or with ``min_matured_loans: null``, the proxy set above
is used; the fingerprint's ``label_strategy`` says which (it becomes a model-version tag
and a line of the model card), ``matured_loans`` how many loans were there to use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from creditrisk.errors import InputError
from creditrisk.features.build import build_for_date, build_labels
from creditrisk.features.labels import LeakageError, Repayment
from creditrisk.features.population import SCORED, segment
from creditrisk.model.design import OotDesign, customer_part, design
from creditrisk.storage import features as store
from creditrisk.storage import loans as loan_store
from creditrisk.storage.features import label_window_starts

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

PARTS = ("train", "calibration", "validation", "test")


@dataclass
class TrainingSet:
    """Rows (features, label, split) and what they are."""

    frame: pd.DataFrame
    design: OotDesign
    fingerprint: dict[str, Any]

    @property
    def snapshots(self) -> list[dt.date]:
        return [*self.design.train_dates, *sorted(self.design.eval_dates)]

    def part(self, split: str) -> pd.DataFrame:
        return self.frame[self.frame["split"] == split]

    def parts(self) -> dict[str, pd.DataFrame]:
        return {p: self.part(p) for p in PARTS}


def plan(as_of: dt.date, first_day: dt.date, cfg: dict[str, Any]) -> OotDesign:
    """The snapshot design for training as of ``as_of`` (data strictly before it)."""
    return design(
        first_day, as_of - dt.timedelta(days=1), int(cfg["horizon_days"]),
        step_days=int(cfg["snapshot_step_days"]),
        min_history_days=int(cfg["min_history_days"]),
        max_train_snapshots=int(cfg["max_snapshots"]),
        shares={k: float(v) for k, v in cfg["evaluation_shares"].items()},
        eval_dates=int(cfg.get("evaluation_dates", 1)),
        eval_step_days=int(cfg.get("evaluation_step_days", 7)),
    )


def assign_splits(frame: pd.DataFrame, d: OotDesign, lookback_days: float) -> pd.DataFrame:
    """Keep the scoring population; add ``split``: train, or the evaluation date's part."""
    import numpy as np

    frame = frame[segment(frame, lookback_days) == SCORED]
    at_eval = frame["as_of_date"].isin(d.eval_dates).to_numpy()
    split = np.where(at_eval, "", "train").astype(object)
    split[at_eval] = customer_part(frame.loc[at_eval, "customer_id"], d.shares)
    return frame.assign(split=split).reset_index(drop=True)


def fingerprint(frame: pd.DataFrame, cfg: dict[str, Any], d: OotDesign) -> dict[str, Any]:
    """Row counts, dates, label, bad rates and a content hash of the set."""
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
        "eval_date": d.eval_date.isoformat(),
        "eval_dates": ",".join(t.isoformat() for t in sorted(d.eval_dates)),
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


def _ensure_snapshots(engine: Engine, dates: list[dt.date], cfg: dict[str, Any],
                      run_id: str) -> None:
    """Build the feature snapshots and labels the design needs and the warehouse lacks."""
    strategy = str(cfg["label_strategy"])
    stale = store.stale_feature_dates(engine, dates)
    have_features = set(store.feature_dates(engine)) - stale
    have_labels = store.labelled_dates(engine, strategy) - stale
    for t in dates:
        if t not in have_features:
            _build_snapshot(engine, t, run_id, label_strategy=strategy,
                            horizon_days=int(cfg["horizon_days"]))
            log.info("built missing feature snapshot %s", t)
            if t in store.labelled_dates(engine, strategy):
                continue
        if t not in have_labels:
            customers = store.read_features(engine, t).index
            if build_labels(engine, t, customers, strategy_name=strategy,
                            horizon_days=int(cfg["horizon_days"]), run_id=run_id) is None:
                raise InputError(f"the label window after {t} is not loaded yet")
            log.info("built missing %s labels for %s", strategy, t)


def build_training_set(
    engine: Engine, as_of: dt.date, cfg: dict[str, Any], run_id: str, lookback_days: float
) -> TrainingSet:
    """The training set as of ``as_of``: on repayment labels once enough loans have
    matured (:func:`build_repayment_set`), else on the proxy label of ``cfg``."""
    first = store.first_transaction_day(engine)
    if first is None:
        raise InputError("raw_transactions is empty: ingest history before training")
    rep = cfg.get("repayment") or {}
    matured = 0
    if rep.get("min_matured_loans") is not None:
        perf = loan_store.read_performance(engine, as_of, grace_days=int(rep["grace_days"]),
                                           bad_dpd=int(rep["bad_dpd"]))
        matured = int(perf["matured"].astype(bool).sum()) if len(perf) else 0
        if matured >= int(rep["min_matured_loans"]):
            ts = build_repayment_set(engine, as_of, cfg, run_id, lookback_days, perf, first)
            ts.fingerprint["matured_loans"] = matured
            return ts
        log.info("%d matured loans before %s, fewer than %s: training on the proxy label %s",
                 matured, as_of, rep["min_matured_loans"], cfg["label_strategy"])
    ts = build_proxy_set(engine, as_of, cfg, run_id, lookback_days, first)
    ts.fingerprint["matured_loans"] = matured
    return ts


def _check_parts(frame: pd.DataFrame) -> None:
    # counts per part, without a copy of any part (the set is up to max_training_rows)
    stats = frame.groupby("split", observed=True)["is_high_risk"].agg(["size", "nunique"])
    for split in PARTS:
        rows, classes = (int(stats.at[split, c]) if split in stats.index else 0
                         for c in ("size", "nunique"))
        if rows == 0 or classes < 2:
            raise InputError(f"the {split} part has {rows} rows and not both classes: "
                             "load more history or more customers")


def _ensure_features(engine: Engine, dates: list[dt.date], run_id: str) -> None:
    stale = store.stale_feature_dates(engine, dates)
    have = set(store.feature_dates(engine)) - stale
    for t in dates:
        if t not in have:
            _build_snapshot(engine, t, run_id)
            log.info("built missing feature snapshot %s", t)


def _build_snapshot(engine: Engine, t: dt.date, run_id: str, **label: Any) -> None:
    """The production feature build of a missing snapshot: incremental, from the daily
    aggregates ingestion keeps, in hash chunks (memory bounded by the chunk), never the
    whole history in one frame."""
    build_for_date(t, database_url=engine.url.render_as_string(hide_password=False),
                   run_id=run_id, **label)


def build_repayment_set(
    engine: Engine, as_of: dt.date, cfg: dict[str, Any], run_id: str, lookback_days: float,
    perf: pd.DataFrame, first_day: dt.date,
) -> TrainingSet:
    """The training set of the customers who borrowed, labelled by repayment; see the module."""
    import numpy as np

    rep = cfg["repayment"]
    w = int(rep["issue_window_days"])
    issued = perf["issue_date"]
    unmatured = issued[~perf["matured"].astype(bool)]
    # a window counts only when every loan issued in it has matured
    cutoff = min(unmatured) if len(unmatured) else as_of
    start = min(issued)
    dates = [start + dt.timedelta(days=k * w) for k in range((cutoff - start).days // w + 1)
             if start + dt.timedelta(days=(k + 1) * w) <= cutoff]
    if len(dates) < 2:
        raise InputError(f"matured loans before {as_of} span fewer than two "
                         f"{w}-day windows: keep training on the proxy label")
    _ensure_features(engine, dates, run_id)
    strategy = Repayment(grace_days=int(rep["grace_days"]), bad_dpd=int(rep["bad_dpd"]))
    for t in dates:
        result = strategy.label(perf, store.read_features(engine, t).index, t, w)
        store.replace_labels(engine, t, strategy.name, result.frame, result.params, run_id)
    sample = sample_share(engine, dates, strategy.name, cfg)
    frame = store.read_training_rows(engine, dates, strategy.name, sample)
    frame = frame[segment(frame, lookback_days) == SCORED]
    counts = frame.groupby("as_of_date").size().reindex(dates, fill_value=0).to_numpy()
    share = np.cumsum(counts[::-1]) / max(counts.sum(), 1)
    n_eval = int(np.searchsorted(share, float(rep.get("evaluation_share", 0.5)))) + 1
    eval_dates = sorted(dates[len(dates) - n_eval:], reverse=True)
    shares = {k: float(v) for k, v in cfg["evaluation_shares"].items()}
    d = OotDesign(first_day=first_day, last_day=as_of - dt.timedelta(days=1), horizon_days=w,
                  train_dates=dates[: len(dates) - n_eval], eval_dates=eval_dates,
                  shares=shares)
    frame = assign_splits(frame, d, lookback_days)
    _check_parts(frame)
    fp_cfg = {**cfg, "label_strategy": strategy.name, "horizon_days": w}
    return TrainingSet(frame=frame, design=d,
                       fingerprint={**fingerprint(frame, fp_cfg, d), "sample_share": sample})


def build_proxy_set(
    engine: Engine, as_of: dt.date, cfg: dict[str, Any], run_id: str, lookback_days: float,
    first: dt.date,
) -> TrainingSet:
    """The design's snapshots (built when missing), joined, filtered, split, fingerprinted."""
    d = plan(as_of, first, cfg)
    dates = [*d.train_dates, *sorted(d.eval_dates)]
    _ensure_snapshots(engine, dates, cfg, run_id)
    strategy = str(cfg["label_strategy"])
    check_label_windows(engine, dates, strategy)
    share = sample_share(engine, dates, strategy, cfg)
    frame = assign_splits(store.read_training_rows(engine, dates, strategy, share), d,
                          lookback_days)
    _check_parts(frame)
    return TrainingSet(frame=frame, design=d,
                       fingerprint={**fingerprint(frame, cfg, d), "sample_share": share})


def sample_share(engine: Engine, dates: list[dt.date], strategy: str,
                 cfg: dict[str, Any]) -> float:
    """The share of customers read so the set holds at most ``max_training_rows`` rows.

    Whole customers are kept or left out (the same ones on every snapshot), so the
    customer-level split and bootstrap stay valid; 1.0 when the set fits, or with no cap.
    """
    cap = cfg.get("max_training_rows")
    if not cap:
        return 1.0
    total = store.count_training_rows(engine, dates, strategy)
    share = 1.0 if total <= int(cap) else int(cap) / total
    if share < 1.0:
        log.info("training set: %d rows over %d snapshots, reading %.1f%% of the customers "
                 "(max_training_rows %s)", total, len(dates), 100 * share, cap)
    return share
