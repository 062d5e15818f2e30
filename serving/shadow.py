"""The API's shadow sample: a share of ``/predict`` calls also scored by the challenger.

Off the request path, on purpose: the handler draws one random number and, for a sampled
call, puts the request on a bounded queue without waiting (``put_nowait``); one daemon
thread takes it, scores it with the ``challenger`` (the same :func:`score_items` as the
answer, so the same features and policy) and queues a ``shadow`` row to ``decision_log``
under the request's own id. The answer never waits for it and never fails because of it:
a full queue drops the sample, a failed scoring is counted; both in
``creditrisk_shadow_total{outcome}``. No challenger, or one that is the champion: nothing
is scored (``no_challenger``).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from serving.decision_log import DecisionLog
from serving.features import FeatureStore
from serving.model import ModelHolder
from serving.predictor import score_items
from serving.schemas import PredictRequest

log = logging.getLogger("serving.shadow")


@dataclass(frozen=True)
class Sample:
    """One sampled call: what the challenger needs to decide it again."""

    item: PredictRequest
    request_id: str
    client_request_id: str | None
    champion_version: str


class ShadowSampler:
    """A bounded queue of sampled calls and the thread that scores them."""

    def __init__(self, rate: float, challenger: ModelHolder, store: FeatureStore | None,
                 policy: dict[str, Any], decisions: DecisionLog | None, *,
                 queue_size: int = 1000, on_outcome: Callable[[str], None] | None = None,
                 draw: Callable[[], float] = random.random) -> None:  # nosec B311 - sampling
        self.rate, self.challenger, self.store = rate, challenger, store
        self.policy, self.decisions = policy, decisions
        self._queue: queue.Queue[Sample | None] = queue.Queue(maxsize=queue_size)
        self._on_outcome = on_outcome or (lambda outcome: None)
        self._draw = draw
        self._thread = threading.Thread(target=self._run, name="shadow-sample", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def offer(self, item: PredictRequest, request_id: str, client_request_id: str | None,
              champion_version: str) -> None:
        """On the request path: sample the call or not; never blocks, never raises."""
        if self.rate <= 0.0 or self._draw() >= self.rate:
            return
        try:
            self._queue.put_nowait(Sample(item, request_id, client_request_id,
                                          champion_version))
        except queue.Full:
            self._on_outcome("queue_full")

    def pending(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            sample = self._queue.get()
            if sample is None:
                return
            try:
                self._on_outcome(self.score(sample))
            except Exception as exc:  # never let the thread die; never reaches a client
                log.warning("shadow scoring failed", extra={"error": repr(exc)[:200]})
                self._on_outcome("failed")

    def score(self, sample: Sample) -> str:
        """Score one sample with the challenger and queue its shadow row; the outcome."""
        model = self.challenger.current
        if model is None or model.ref.version == sample.champion_version:
            return "no_challenger"
        outcome = score_items([sample.item], model, self.store, self.policy)[0]
        if outcome.body is None:
            return "failed"
        if self.decisions is not None:
            item = sample.item
            self.decisions.record(sample.request_id, sample.client_request_id, 0, "/predict",
                                  outcome.body,
                                  "warehouse" if item.features is None else "request",
                                  item.amount, item.product_category, shadow=True)
        return "scored"

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the thread; samples still queued are not scored."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread.is_alive():
            self._thread.join(timeout_s)
