"""Build ``customer_features`` (and, when observable, ``customer_labels``) for one date.

The body of ``creditrisk features --as-of D`` (:func:`build_for_date`) and of the
``build_features`` DAG's tasks: :func:`plan_features`, one mapped :func:`build_chunk` per
hash chunk of customers, then :func:`publish_features`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from creditrisk import progress
from creditrisk.errors import InputError
from creditrisk.features import incremental
from creditrisk.features.compute import compute_features
from creditrisk.features.labels import DEFAULT_HORIZON_DAYS, get_strategy
from creditrisk.features.quality import iv_table
from creditrisk.storage import aggregates as agg
from creditrisk.storage import features as store
from creditrisk.storage.db import check_connection, database_failures, make_engine, raw_cursor
from creditrisk.storage.features import latest_transaction_day, load_transactions

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

    from creditrisk.features.labels import LabelResult

log = logging.getLogger(__name__)


@dataclass
class FeatureBuildResult:
    """What one build did (plain values for XCom, logs and the CLI)."""

    as_of: str
    customers: int
    transactions: int
    label_strategy: str
    labels: int = 0
    bad_rate: float | None = None
    label_note: str = ""
    iv: list[dict[str, object]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def label_observable(strategy_needs_future: bool, as_of: dt.date, horizon_days: int,
                     latest_day: dt.date | None) -> bool:
    """Whether the label of ``as_of`` can be computed from the data loaded so far."""
    if not strategy_needs_future:
        return latest_day is not None
    return latest_day is not None and latest_day >= as_of + dt.timedelta(days=horizon_days - 1)


def compute_labels(
    engine: Engine, as_of: dt.date, customers: pd.Index, *, strategy_name: str,
    horizon_days: int, where_sql: str | None = None,
) -> LabelResult | None:
    """Labels for ``as_of`` when their window is observed (not stored); else None.

    ``where_sql`` (a hash chunk's predicate) restricts the window's transactions read to
    the chunk's customers: ``customers`` must all be in it.
    """

    strategy = get_strategy(strategy_name)
    latest = store.latest_transaction_day(engine)
    if not label_observable(strategy.needs_future, as_of, horizon_days, latest):
        return None
    if getattr(strategy, "needs_loans", False):  # the repayment outcome: loans as known now
        from creditrisk.storage.loans import read_performance

        if latest is None:
            return None
        perf = read_performance(engine, latest + dt.timedelta(days=1))
        return strategy.label(perf, customers, as_of, horizon_days)
    if strategy.needs_future:
        tx = store.load_transactions(
            engine, since=as_of, before=as_of + dt.timedelta(days=horizon_days),
            customer_ids=None, where_sql=where_sql,
        )
    else:
        tx = store.load_transactions(engine, before=as_of)
    return strategy.label(tx, customers, as_of, horizon_days)


def build_labels(
    engine: Engine, as_of: dt.date, customers: pd.Index, *, strategy_name: str,
    horizon_days: int, run_id: str,
) -> tuple[pd.Series, float] | None:
    """Compute and store labels for ``as_of`` when their window is observed; else None."""

    result = compute_labels(engine, as_of, customers, strategy_name=strategy_name,
                            horizon_days=horizon_days)
    if result is None:
        return None
    store.replace_labels(engine, as_of, result.strategy, result.frame, result.params, run_id)
    return result.frame["is_high_risk"], result.bad_rate


def build_for_date(
    as_of: dt.date,
    *,
    database_url: str,
    run_id: str,
    label_strategy: str = "forward_window",
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    chunks: int | None = None,
    after_chunk: Callable[[int], None] | None = None,
) -> dict[str, object]:
    """Compute features as of ``as_of`` and label it if observable; replace the date.

    The date's features and labels are written in one transaction: a crash or a lost
    connection mid-write leaves the previous build of the date whole (features and
    labels that belong together), and a re-run leaves exactly what one clean build does.
    The CLI's build: :func:`plan_features`, every :func:`build_chunk` and
    :func:`publish_features` in one process (one chunk: all in one transaction).

    Args:
        as_of: Feature date: only transactions strictly before it are used.
        database_url: Warehouse URL.
        run_id: Recorded on every row written.
        label_strategy: Name of a registered label strategy.
        horizon_days: Outcome window of forward-looking strategies.
        chunks: Hash chunks of customers (None: one per ``CHUNK_CUSTOMERS``); each is
            folded and computed in its own transaction, then the date is swapped in.
        after_chunk: Called after each staged chunk (tests inject faults there).

    Returns:
        Counts, the bad rate and the IV table (when labelled).

    Raises:
        InputError: No transactions before ``as_of``, or a bad horizon.
        ServiceUnavailableError: The database failed mid-build; nothing was written.
    """

    _check_label_args(label_strategy, horizon_days)
    with _warehouse(database_url, f"building customer_features as of {as_of}") as engine:
        return _build(engine, as_of, run_id=run_id, label_strategy=label_strategy,
                      horizon_days=horizon_days, chunks=chunks, after_chunk=after_chunk)


def plan_features(
    as_of: dt.date, *, database_url: str, label_strategy: str = "forward_window",
    horizon_days: int = DEFAULT_HORIZON_DAYS, chunks: int | None = None, run_id: str = "",
) -> dict[str, object]:
    """Start a chunked build of ``as_of`` (the DAG's ``plan``): re-aggregate the days
    loaded since the last build, forget any half-done build of the date, choose its base
    state and its chunks.

    Returns:
        The plan as JSON values (an XCom): ``as_of``, ``base``, ``chunks``,
        ``label_strategy`` and ``horizon_days``; every :func:`build_chunk` and the
        :func:`publish_features` of the date take it.
    """
    _check_label_args(label_strategy, horizon_days)
    with _warehouse(database_url, f"planning customer_features as of {as_of}") as engine:
        plan = incremental.plan_build(engine, as_of, chunks, run_id)
    log.info("features as of %s: %d chunk(s), folding from %s", as_of, plan.chunks,
             plan.base or "the first day")
    return {**plan.as_dict(), "label_strategy": label_strategy, "horizon_days": horizon_days}


def build_chunk(plan: dict[str, object], chunk: int, *, database_url: str,
                run_id: str) -> dict[str, object]:
    """Fold, compute and stage one chunk of the plan in its own transaction (one mapped
    ``build_chunk`` task); a re-run replaces what an earlier try of it committed.

    Returns:
        The chunk, its customers staged and its seconds per phase.
    """
    steps = incremental.Plan.from_dict(plan)
    with _warehouse(database_url,
                    f"staging chunk {chunk} of customer_features as of {steps.as_of}") as engine:
        staged = incremental.stage_chunk(engine, steps, chunk, run_id)
    log.info("features as of %s: chunk %d/%d staged, %d customers", steps.as_of, chunk + 1,
             steps.chunks, staged)
    return {"chunk": chunk, "customers": staged, "timings": steps.timings}


def publish_features(plan: dict[str, object], *, database_url: str, run_id: str,
                     chunks: Sequence[dict[str, object]] = ()) -> dict[str, object]:
    """Swap the staged date into ``customer_features`` with its labels and mark its
    state complete, in one transaction (the DAG's ``publish``).

    Args:
        plan: :func:`plan_features`'s plan.
        chunks: The chunks' :func:`build_chunk` results (their timings are summed).

    Raises:
        IncompleteBuildError: A chunk of the plan is not staged (or is stale): nothing
            is written, the previous version of the date stays.
    """
    steps = incremental.Plan.from_dict(plan)
    for done in chunks:
        steps.add_timings(done.get("timings") or {})  # type: ignore[arg-type]
    with _warehouse(database_url,
                    f"publishing customer_features as of {steps.as_of}") as engine:
        done_before = _published_by(engine, steps.as_of, run_id)
        if done_before is not None:  # a retry after the commit: nothing left to do
            return {**done_before, "chunks": steps.chunks, "timings": steps.timings}
        return _publish(engine, steps, run_id=run_id,
                        label_strategy=str(plan["label_strategy"]),
                        horizon_days=int(plan["horizon_days"]))  # type: ignore[call-overload]


def _published_by(engine: Engine, as_of: dt.date, run_id: str) -> dict[str, object] | None:
    """The date's counts when ``run_id`` already published it and no chunk is staged
    (a publish retried after its commit); else None."""
    with raw_cursor(engine) as cur:
        cur.execute("SELECT run_id FROM customer_feature_state_dates WHERE as_of_date = %s",
                    (as_of,))
        row = cur.fetchone()
        if row is None or row[0] != run_id or store.has_staged_chunks(cur, as_of):
            return None
        customers, transactions = agg.count_state(cur, as_of)
    log.info("features as of %s: already published by run %s", as_of, run_id)
    return {"as_of": as_of.isoformat(), "customers": customers, "transactions": transactions,
            "label_note": f"already published by run {run_id}"}


def _check_label_args(label_strategy: str, horizon_days: int) -> None:
    if horizon_days < 1:
        raise InputError("--horizon must be at least 1 day")
    get_strategy(label_strategy)


@contextlib.contextmanager
def _warehouse(database_url: str, what: str) -> Generator[Engine]:
    """An engine on the warehouse, its failures one-line errors naming ``what``."""
    engine = make_engine(database_url)
    try:
        check_connection(engine)
        with database_failures(engine, what):
            yield engine
    finally:
        engine.dispose()


def _build(engine: Engine, as_of: dt.date, *, run_id: str, label_strategy: str,
           horizon_days: int, chunks: int | None = None,
           after_chunk: Callable[[int], None] | None = None) -> dict[str, object]:

    progress.stage("reading transactions")
    t0 = time.perf_counter()
    plan = incremental.plan_build(engine, as_of, chunks, run_id)
    t0 = plan.tick("plan_s", t0)
    progress.stage("features")
    if plan.chunks > 1:  # chunk by chunk into the stage, then the date swapped in
        incremental.stage_chunks(engine, plan, run_id, after_chunk)
        return _publish(engine, plan, run_id=run_id, label_strategy=label_strategy,
                        horizon_days=horizon_days)
    with raw_cursor(engine) as cur:  # one transaction: state, features and labels together
        feats = incremental.chunk_features(cur, plan, 0)
        customers, transactions = _counts(cur, as_of)
        progress.stage("labels")
        t0 = time.perf_counter()
        labels = compute_labels(engine, as_of, feats.index, strategy_name=label_strategy,
                                horizon_days=horizon_days)
        t0 = plan.tick("labels_s", t0)
        progress.stage("writing")
        store.write_features(cur, as_of, feats, run_id)
        _finish(cur, plan, labels, run_id)
    plan.tick("write_s", t0)  # with the commit
    result = _result(as_of, customers, transactions,
                     None if labels is None else _labelled(feats, labels), label_strategy,
                     horizon_days)
    return {**result, "chunks": plan.chunks, "timings": plan.timings}


def _publish(engine: Engine, plan: incremental.Plan, *, run_id: str, label_strategy: str,
             horizon_days: int) -> dict[str, object]:
    """Check every chunk is staged, label, swap the date in and complete its state."""
    as_of = plan.as_of
    with raw_cursor(engine) as cur:
        # loads wait: the state the check counts stays as it is until the commit
        cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", (agg.LOCK_KEY,))
        customers, transactions = _counts(cur, as_of)
        store.check_staged_chunks(cur, as_of, plan.chunks, plan.base, run_id, customers)
        progress.stage("labels")
        t0 = time.perf_counter()
        labelled = _label_by_chunk(engine, cur, plan, label_strategy, horizon_days, run_id,
                                   customers)
        t0 = plan.tick("labels_s", t0)
        progress.stage("writing")
        agg.publish_stage(cur, as_of)
        store.forget_staged_chunks(cur, as_of)
        agg.complete_state(cur, as_of, plan.chunks, run_id)  # the labels are written
    plan.tick("write_s", t0)  # with the commit
    result = _result(as_of, customers, transactions, labelled, label_strategy, horizon_days)
    return {**result, "chunks": plan.chunks, "timings": plan.timings}


#: The IV table of a chunked build is computed on at most this many customers (a stable
#: hash sample), so the publish holds one chunk plus this sample, never the whole date.
IV_SAMPLE_CUSTOMERS = 200_000


@dataclass(frozen=True)
class _Labelled:
    """A date's labels as written: how many, the bad rate, and the IV table."""

    n: int
    bad_rate: float
    iv: list[dict[str, object]]


def _labelled(feats: pd.DataFrame, labels: LabelResult) -> _Labelled:
    bad = labels.frame["is_high_risk"]
    return _Labelled(len(bad), labels.bad_rate, iv_table(feats, bad).to_dict(orient="records"))


def _label_by_chunk(engine: Engine, cursor: object, plan: incremental.Plan,
                    strategy_name: str, horizon_days: int, run_id: str,
                    customers: int) -> _Labelled | None:
    """Label the staged date one hash chunk at a time, in the publish's transaction.

    A forward-window label reads only the chunk's customers' window transactions, so
    memory is bounded by a chunk; the IV comes from at most ``IV_SAMPLE_CUSTOMERS`` of
    them (all of them below that). A label that needs every customer at once (the RFM
    K-Means segments) or the loan book (repayment) is computed over the whole date.
    """
    import pandas as pd

    strategy = get_strategy(strategy_name)
    by_chunk = strategy.needs_future and not getattr(strategy, "needs_loans", False)
    share = min(1.0, IV_SAMPLE_CUSTOMERS / max(customers, 1))
    n = bad = 0
    kept: list[tuple[pd.DataFrame, pd.Series]] = []
    for chunk in range(plan.chunks) if by_chunk else [None]:
        pred = None if chunk is None else agg.chunk_predicate(chunk, plan.chunks)
        feats = store.read_features(engine, plan.as_of, where_sql=pred,
                                    table="customer_features_stage")
        labels = compute_labels(engine, plan.as_of, feats.index, strategy_name=strategy_name,
                                horizon_days=horizon_days, where_sql=pred)
        if labels is None:  # the window is not loaded: the same for every chunk
            return None
        store.write_labels(cursor, plan.as_of, labels.strategy, labels.frame, labels.params,
                           run_id, replace=not n)
        y = labels.frame["is_high_risk"].astype(bool)
        n, bad = n + len(y), bad + int(y.sum())
        if share < 1.0:
            keep = (pd.util.hash_pandas_object(feats.index, index=False).to_numpy()
                    % 10_000) < share * 10_000
            feats = feats[keep]
        kept.append((feats, y.reindex(feats.index)))
    feats = pd.concat([f for f, _ in kept]).sort_index()
    y = pd.concat([b for _, b in kept]).reindex(feats.index)
    iv = iv_table(feats, y).to_dict(orient="records")
    return _Labelled(n, bad / n if n else float("nan"), iv)


def _counts(cursor: object, as_of: dt.date) -> tuple[int, int]:
    customers, transactions = agg.count_state(cursor, as_of)
    if not customers:
        raise InputError(f"no transactions before {as_of} in raw_transactions: ingest first")
    return customers, transactions


def _finish(cursor: object, plan: incremental.Plan, labels: LabelResult | None,
            run_id: str) -> None:
    if labels is not None:
        store.write_labels(cursor, plan.as_of, labels.strategy, labels.frame, labels.params,
                           run_id)
    agg.complete_state(cursor, plan.as_of, plan.chunks, run_id)


def _result(as_of: dt.date, customers: int, transactions: int, labels: _Labelled | None,
            label_strategy: str, horizon_days: int) -> dict[str, object]:
    result = FeatureBuildResult(
        as_of=as_of.isoformat(), customers=customers, transactions=transactions,
        label_strategy=label_strategy,
    )
    if labels is None:
        result.label_note = (
            f"no labels: the {horizon_days}-day outcome window after {as_of} is not "
            "fully loaded yet"
        )
    else:
        result.labels, result.bad_rate = labels.n, round(labels.bad_rate, 4)
        result.iv = labels.iv
    log.info(
        "features as of %s: %d customers from %d transactions; %s",
        as_of, result.customers, result.transactions,
        result.label_note or f"{result.labels} labels ({label_strategy}), bad rate "
        f"{result.bad_rate:.1%}",
    )
    return result.as_dict()


def rebuild_aggregates(database_url: str) -> None:
    """Recompute every daily aggregate from ``raw_transactions`` (one transaction) and
    forget every feature state: the next build folds from the start."""

    engine = make_engine(database_url)
    try:
        check_connection(engine)
        with database_failures(engine, "rebuilding the feature aggregates"), \
                raw_cursor(engine) as cur:
            agg.rebuild(cur)
    finally:
        engine.dispose()


def default_as_of(database_url: str) -> dt.date:
    """The day after the newest loaded transaction day (features see everything loaded)."""

    engine = make_engine(database_url)
    try:
        check_connection(engine)
        latest = latest_transaction_day(engine)
    finally:
        engine.dispose()
    if latest is None:
        raise InputError("raw_transactions is empty: nothing to build features from")
    return latest + dt.timedelta(days=1)


def online_features(engine: Engine, customer_ids: list[str], as_of: dt.date) -> pd.DataFrame:
    """Features of a few customers computed on the fly (the API's path), same function."""

    tx = load_transactions(engine, before=as_of, customer_ids=customer_ids)
    return compute_features(tx, as_of)
