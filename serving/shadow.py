"""The API's shadow sample: a share of ``/predict`` calls also scored by the challenger.

Off the request path, on purpose: the handler draws one random number and, for a sampled
call, puts the request (with the features its answer used) on a bounded queue without
waiting (``put_nowait``). One daemon thread drains the queue in batches: it takes the
first waiting sample, lets more arrive for up to ``batch_wait_s``, takes up to
``batch_max`` of them and scores them all with the ``challenger`` in **one**
:func:`score_items` call (one ``predict_proba``, one policy pass), then queues one
``shadow`` row per sample to ``decision_log`` under the request's own id. Scoring one
sample per call cost the request path ~7 ms of p99 at a sample of 1 on 2 cores (the
thread competes for the GIL); a batch pays numpy's per-call overhead once.

The challenger sees exactly the features the champion's answer used (``Outcome.lookup``:
no second lookup, so a new feature date published in between cannot split the pair).
The answer never waits for it and never fails because of it: a full queue drops the
sample, a failed scoring is counted; both in ``creditrisk_shadow_total{outcome}``. No
challenger, or one that is the champion: nothing is scored (``no_challenger``).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from serving.decision_log import DecisionLog
from serving.features import FeatureStore
from serving.model import ModelHolder
from serving.predictor import NOT_LOOKED_UP, score_items
from serving.schemas import PredictRequest

log = logging.getLogger("serving.shadow")


@dataclass(frozen=True)
class Sample:
    """One sampled call: what the challenger needs to decide it again."""

    item: PredictRequest
    request_id: str
    client_request_id: str | None
    champion_version: str
    lookup: Any = NOT_LOOKED_UP  # the features the answer used (Outcome.lookup)


class ShadowSampler:
    """A bounded queue of sampled calls and the thread that scores them in batches."""

    def __init__(self, rate: float, challenger: ModelHolder, store: FeatureStore | None,
                 policy: dict[str, Any], decisions: DecisionLog | None, *,
                 queue_size: int = 1000, batch_max: int = 256, batch_wait_s: float = 0.2,
                 on_outcome: Callable[[str], None] | None = None,
                 draw: Callable[[], float] = random.random) -> None:  # nosec B311 - sampling
        self.rate, self.challenger, self.store = rate, challenger, store
        self.policy, self.decisions = policy, decisions
        self.batch_max, self.batch_wait_s = batch_max, batch_wait_s
        self._queue: queue.Queue[Sample | None] = queue.Queue(maxsize=queue_size)
        self._on_outcome = on_outcome or (lambda outcome: None)
        self._draw = draw
        self._stop = threading.Event()
        self.batches = 0  # scoring calls made, and the samples they scored
        self.scored = 0
        self._thread = threading.Thread(target=self._run, name="shadow-sample", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def offer(self, item: PredictRequest, request_id: str, client_request_id: str | None,
              champion_version: str, lookup: Any = NOT_LOOKED_UP) -> None:
        """On the request path: sample the call or not; never blocks, never raises."""
        if self.rate <= 0.0 or self._draw() >= self.rate:
            return
        try:
            self._queue.put_nowait(Sample(item, request_id, client_request_id,
                                          champion_version, lookup))
        except queue.Full:
            self._on_outcome("queue_full")

    def pending(self) -> int:
        return self._queue.qsize()

    def _next_batch(self) -> tuple[list[Sample], bool]:
        """Wait for a sample, give others ``batch_wait_s`` to join; (batch, stop now)."""
        first = self._queue.get()
        if first is None:
            return [], True
        if self.batch_wait_s > 0:
            self._stop.wait(self.batch_wait_s)
        batch = [first]
        while len(batch) < self.batch_max:
            try:
                sample = self._queue.get_nowait()
            except queue.Empty:
                break
            if sample is None:
                return batch, True
            batch.append(sample)
        return batch, False

    def _run(self) -> None:
        while True:
            batch, stop = self._next_batch()
            if batch:
                try:
                    outcomes = self.score_batch(batch)
                except Exception as exc:  # never let the thread die; never reaches a client
                    log.warning("shadow scoring failed", extra={"error": repr(exc)[:200]})
                    outcomes = ["failed"] * len(batch)
                for outcome in outcomes:
                    self._on_outcome(outcome)
            if stop:
                return

    def score(self, sample: Sample) -> str:
        """Score one sample (a batch of one); its outcome."""
        return self.score_batch([sample])[0]

    def score_batch(self, samples: list[Sample]) -> list[str]:
        """Score ``samples`` with the challenger in one call and queue their shadow rows;
        one outcome per sample (``scored``, ``no_challenger`` or ``failed``)."""
        model = self.challenger.current
        live = [k for k, s in enumerate(samples)
                if model is not None and model.ref.version != s.champion_version]
        outcomes = ["no_challenger"] * len(samples)
        if not live or model is None:
            return outcomes
        results = score_items([samples[k].item for k in live], model, self.store, self.policy,
                              resolved=[samples[k].lookup for k in live])
        self.batches += 1
        for k, result in zip(live, results, strict=True):
            # hand the GIL back between pieces of work: a request arriving now waits for
            # one row's bookkeeping, not for the whole batch (or the 5 ms switch interval)
            time.sleep(0)
            outcomes[k] = "failed" if result.body is None else "scored"
            if result.body is None or self.decisions is None:
                continue
            s = samples[k]
            self.decisions.record(s.request_id, s.client_request_id, 0, "/predict",
                                  result.body,
                                  "warehouse" if s.item.features is None else "request",
                                  s.item.amount, s.item.product_category, shadow=True)
        self.scored += outcomes.count("scored")
        return outcomes

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the thread; samples still queued are not scored."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread.is_alive():
            self._thread.join(timeout_s)
