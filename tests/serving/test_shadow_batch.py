"""The batched shadow sample (issue 17 item 1): what it records, and what it drops.

No warehouse and no registry: the challenger is a pipeline fitted here, the decision log
writes to a list, and the feature store is one that must never be asked (the challenger
scores the features the answered call used, carried with the sample).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np
import pytest

from creditrisk.catalogue import FEATURE_NAMES
from creditrisk.registry import ModelRef
from creditrisk.scoring.decide import load_policy
from serving.decision_log import DecisionLog
from serving.model import LoadedModel, ModelHolder
from serving.predictor import score_items
from serving.schemas import PredictRequest
from serving.shadow import Sample, ShadowSampler
from tests.serving.test_fast_scorer import fitted, synthetic_rows

# decision_log row fields (serving/decision_log.py, DecisionLog.record)
REQUEST_ID, ITEM, VERSION, SOURCE, AS_OF, PD, DECISION, SHADOW = 0, 2, 7, 8, 9, 13, 16, 20


class NeverAsked:
    """A feature store that fails the test if the shadow path looks anything up again."""

    def lookup(self, customer_id: str) -> Any:
        raise AssertionError(f"the shadow path looked {customer_id} up again")


def challenger(version: str = "2") -> ModelHolder:
    holder = ModelHolder(None, "m", "challenger", optional=True)
    holder.current = LoadedModel(ref=ModelRef(name="m", version=version, run_id="r",
                                              alias="challenger"),
                                 pipeline=fitted("rfm_logistic", "sigmoid"), loaded_at="now")
    return holder


@pytest.fixture(scope="module")
def holder() -> ModelHolder:
    return challenger()


def samples(n: int) -> list[Sample]:
    """n sampled calls: customer ids with the features their answer used, and inline ones."""
    rows = synthetic_rows(n, seed=21)
    rows["purchase_recency_days"] = np.linspace(0, 12, n)  # in the scoring population
    out = []
    for k, row in enumerate(rows.to_numpy()):
        if k % 4 == 3:  # inline features
            item = PredictRequest(features=dict(zip(FEATURE_NAMES, row.tolist(), strict=True)),
                                  amount=100.0 * k)
            out.append(Sample(item, f"req-{k}", None, "1"))
        else:
            item = PredictRequest(customer_id=f"C{k}", amount=100.0 * k)
            out.append(Sample(item, f"req-{k}", f"client-{k}", "1",
                              (row, dt.date(2019, 2, 14) - dt.timedelta(days=k % 3))))
    return out


def test_sampled_calls_are_scored_in_batches_into_shadow_rows_on_their_own_features(
    holder: ModelHolder,
) -> None:
    written: list[tuple[Any, ...]] = []
    decisions = DecisionLog("unused", writer=lambda rows: written.extend(rows) or len(rows))
    outcomes: list[str] = []
    sampler = ShadowSampler(1.0, holder, NeverAsked(), load_policy(), decisions,  # type: ignore[arg-type]
                            queue_size=100, batch_max=256, batch_wait_s=0.3,
                            on_outcome=outcomes.append)
    sampler.start()
    given = samples(24)
    try:
        for s in given:  # as the handler does, right after answering
            sampler.offer(s.item, s.request_id, s.client_request_id, s.champion_version,
                          s.lookup)
        deadline = time.monotonic() + 30
        while len(outcomes) < len(given):
            assert time.monotonic() < deadline, outcomes
            time.sleep(0.02)
    finally:
        sampler.close()
    assert outcomes == ["scored"] * len(given)
    assert sampler.batches < len(given) / 4, "not batched"  # 24 samples within 0.3 s
    decisions.flush()
    assert len(written) == len(given)
    # what the challenger says for each call's own features, scored one by one
    expected = {s.request_id: score_items([s.item], holder.current, NeverAsked(),  # type: ignore[arg-type]
                                          load_policy(), resolved=[s.lookup])[0].body
                for s in given}
    by_request = {r[REQUEST_ID]: r for r in written}
    assert set(by_request) == set(expected)
    for s in given:
        row, want = by_request[s.request_id], expected[s.request_id]
        assert want is not None
        assert row[SHADOW] is True and row[ITEM] == 0
        assert row[VERSION] == "2"  # the challenger's, not the champion's
        assert row[PD] == want["probability_of_default"]
        assert row[DECISION] == want["decision"]
        if s.item.features is None:
            assert (row[SOURCE], row[AS_OF]) == ("warehouse", s.lookup[1].isoformat())
        else:
            assert (row[SOURCE], row[AS_OF]) == ("request", None)


def test_a_full_queue_drops_samples_and_counts_them(holder: ModelHolder) -> None:
    outcomes: list[str] = []
    sampler = ShadowSampler(1.0, holder, NeverAsked(), load_policy(), None,  # type: ignore[arg-type]
                            queue_size=3, on_outcome=outcomes.append)
    # not started: nothing drains the queue, as when the thread is behind
    for s in samples(5):
        sampler.offer(s.item, s.request_id, s.client_request_id, s.champion_version, s.lookup)
    assert outcomes == ["queue_full", "queue_full"]
    assert sampler.pending() == 3
    sampler.close()


def test_unsampled_calls_and_a_challenger_that_is_the_champion_record_nothing() -> None:
    written: list[tuple[Any, ...]] = []
    decisions = DecisionLog("unused", writer=lambda rows: written.extend(rows) or len(rows))
    draws = iter([0.5, 0.01])
    sampler = ShadowSampler(0.05, challenger(version="1"), NeverAsked(), load_policy(),  # type: ignore[arg-type]
                            decisions, draw=lambda: next(draws))
    s1, s2 = samples(2)
    sampler.offer(s1.item, s1.request_id, None, "1", s1.lookup)  # 0.5 >= 0.05: not sampled
    sampler.offer(s2.item, s2.request_id, None, "1", s2.lookup)  # 0.01: sampled
    assert sampler.pending() == 1
    assert sampler.score_batch([s2]) == ["no_challenger"]  # challenger v1 is the champion
    decisions.flush()
    assert written == []
    sampler.close()
