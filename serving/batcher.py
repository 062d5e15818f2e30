"""Micro-batching of ``/predict``: the calls that reach the event loop together are scored
in one :func:`score_items` call.

Under concurrency, the requests whose bytes arrived in the same event-loop iteration run
their handlers one after the other before the loop polls again. Each would pay the
fixed cost of a scoring call (the PD's numpy operations, the policy's set-up: ~80 µs
for one row, ~30 µs a row in a batch of five) for its one row. Here the first of them
schedules one flush with ``call_soon`` and every handler of that iteration waits on its
own future; the flush scores them together and answers each. At one connection a batch
is one request (the cost is one future, a few µs); at 16 it is as many as arrived
together.

Exactness: a row's answer never depends on the rows scored with it (the fast path and
the policy are row-wise; reason groups are summed row by row, see
``creditrisk.scoring.decide._by_group``), and a test checks one row alone against the
same row in a batch. Only models on the numpy fast path are batched: the others go
through sklearn/xgboost, whose matrix products may pick a summation order by shape.
Nothing here does I/O: cache misses (a PostgreSQL read) never come here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from serving.features import FeatureStore
from serving.model import LoadedModel
from serving.predictor import Outcome, score_items
from serving.schemas import PredictRequest

Scorer = Callable[..., list[Outcome]]
_Pending = tuple[PredictRequest, LoadedModel, Any, dict[str, Any], "asyncio.Future[Outcome]",
                 Scorer]


class MicroBatcher:
    """Collects the calls of one loop iteration; scores them per (model, store, policy)."""

    def __init__(self, max_items: int = 256,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.max_items = max_items
        self._on_batch = on_batch or (lambda n: None)
        self._pending: list[_Pending] = []
        self._scheduled = False
        self.batches = 0  # flushes that scored something, and the items they scored
        self.items = 0

    async def score(self, item: PredictRequest, model: LoadedModel,
                    store: FeatureStore | None, policy: dict[str, Any],
                    scorer: Scorer = score_items) -> Outcome:
        """``item``'s outcome, scored by ``scorer`` with the others of this iteration."""
        if not model.fast:
            return scorer([item], model, store, policy)[0]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._pending.append((item, model, store, policy, future, scorer))
        if len(self._pending) >= self.max_items:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self.flush)
        return await future

    def flush(self) -> None:
        """Score everything pending (runs on the loop, between handlers)."""
        self._scheduled = False
        pending, self._pending = self._pending, []
        groups: dict[tuple[int, ...], list[_Pending]] = {}
        for p in pending:
            if not p[4].done():  # a timed-out request's future is already cancelled
                groups.setdefault((id(p[1]), id(p[2]), id(p[3]), id(p[5])), []).append(p)
        for batch in groups.values():
            _, model, store, policy, _, scorer = batch[0]
            try:
                outcomes = scorer([p[0] for p in batch], model, store, policy)
            except Exception as exc:  # each waiting handler raises it, as it would alone
                for p in batch:
                    p[4].set_exception(exc)
                continue
            self.batches += 1
            self.items += len(batch)
            self._on_batch(len(batch))
            for p, outcome in zip(batch, outcomes, strict=True):
                p[4].set_result(outcome)
