"""Every real-time decision is traceable: decision_log rows written off the hot path.

And every batch decision is traceable through risk_scores (model version, run id, and
score_date = the as-of date of the features scored).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from tests.serving.conftest import (
    DAY,
    HEADERS,
    World,
    metric_value,
    rows,
    serve,
    settings_for,
    stored_features,
)

pytestmark = pytest.mark.slow

LOGGED = ("client_request_id, item, request_id, customer_id, model_name, model_version,"
          " feature_source, feature_as_of_date, amount, product_category, thin_file,"
          " probability_of_default, credit_score, risk_band, decision, recommended_limit,"
          " recommended_term_days, reason_codes, route, decided_at")


def logged_rows(url: str, request_ids: list[str]) -> list[dict[str, Any]]:
    """Rows logged under the clients' X-Request-IDs, oldest first."""
    names = [c.strip() for c in LOGGED.split(",")]
    got = rows(url, f"SELECT {LOGGED} FROM decision_log WHERE client_request_id = ANY(:ids)"
                    " ORDER BY decided_at, item", ids=request_ids)
    return [dict(zip(names, r, strict=True)) for r in got]


def logged(url: str, request_ids: list[str]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["client_request_id"], r["item"]): r for r in logged_rows(url, request_ids)}


def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def newest_as_of(world: World, customer_id: str) -> dt.date:
    return rows(world.database_url, "SELECT max(as_of_date) FROM customer_features"
                " WHERE customer_id = :c", c=customer_id)[0][0]


def test_every_decision_is_logged_with_model_features_date_and_request_id(
    world: World,
) -> None:
    customers = [r[0] for r in rows(world.database_url,
                                     "SELECT customer_id FROM risk_scores WHERE score_date = :d"
                                     " ORDER BY customer_id LIMIT 5", d=DAY)]
    run = uuid.uuid4().hex[:8]
    bodies: list[dict[str, Any]] = [
        {"customer_id": customers[0]},
        {"customer_id": customers[1], "amount": 12_345.5, "product_category": "airtime"},
        {"customer_id": customers[2], "amount": 10**8},
        {"features": stored_features(world, customers[3])},
        {"customer_id": f"CustomerId_unknown_{run}"},
    ]
    sent: dict[tuple[str, int], tuple[dict[str, Any], dict[str, Any]]] = {}
    with serve(settings_for(world)) as client:
        for i, body in enumerate(bodies):
            rid = f"dl-{run}-{i}"
            r = client.post("/predict", json=body, headers={**HEADERS, "X-Request-ID": rid})
            assert r.status_code == 200, r.text
            sent[(rid, 0)] = (body, r.json())
        batch = [{"customer_id": customers[4]}, {"features": stored_features(world, customers[0])},
                 {"customer_id": customers[1], "amount": 5.0}]
        rid = f"dl-{run}-batch"
        r = client.post("/predict/batch", json={"items": batch},
                        headers={**HEADERS, "X-Request-ID": rid})
        assert r.status_code == 200
        for i, (item, res) in enumerate(zip(batch, r.json()["results"], strict=True)):
            sent[(rid, i)] = (item, res["result"])
        ids = sorted({k[0] for k in sent})
        # written by the background writer, while the app runs (not only at shutdown)
        wait_until(lambda: len(logged(world.database_url, ids)) == len(sent))
        text = client.get("/metrics").text
        assert (metric_value(text, "creditrisk_decision_log_written_total") or 0) >= len(sent)
        assert metric_value(text, "creditrisk_decision_log_dropped_total",
                            reason="warehouse_error") in (None, 0)

    got = logged(world.database_url, ids)
    assert set(got) == set(sent)
    for key, (request, answer) in sent.items():
        row = got[key]
        assert row["client_request_id"] == answer["request_id"] == key[0]
        # the audit key is the server's own id, not the client's
        assert len(row["request_id"]) == 32 and row["request_id"] != key[0]
        assert row["route"] == ("/predict/batch" if key[0].endswith("batch") else "/predict")
        assert row["model_name"] == answer["model_name"] == world.model_name
        assert row["model_version"] == answer["model_version"] == world.version
        for field in ("decision", "risk_band", "credit_score", "recommended_term_days",
                      "thin_file", "customer_id"):
            assert row[field] == answer[field], (key, field)
        assert row["recommended_limit"] == pytest.approx(answer["recommended_limit"])
        if answer["probability_of_default"] is None:
            assert row["probability_of_default"] is None
        else:
            assert row["probability_of_default"] == pytest.approx(
                answer["probability_of_default"], abs=1e-12)
        assert [{k: v for k, v in c.items() if v is not None} for c in row["reason_codes"]] \
            == [{k: v for k, v in c.items() if v is not None} for c in answer["reason_codes"]]
        assert row["amount"] == request.get("amount")
        assert row["product_category"] == request.get("product_category")
        assert abs(row["decided_at"] - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
        if "features" in request:
            assert row["feature_source"] == "request" and row["feature_as_of_date"] is None
            assert answer["features_as_of"] is None
        elif answer["thin_file"]:
            assert row["feature_source"] == "warehouse" and row["feature_as_of_date"] is None
        else:
            assert row["feature_source"] == "warehouse"
            # the as-of date of the customer_features row the API used
            assert row["feature_as_of_date"] == newest_as_of(world, request["customer_id"])
            assert row["feature_as_of_date"].isoformat() == answer["features_as_of"]


def test_what_is_queued_is_written_at_shutdown(world: World) -> None:
    rid = f"dl-shutdown-{uuid.uuid4().hex[:8]}"
    features = stored_features(world, rows(world.database_url,
                                           "SELECT customer_id FROM risk_scores"
                                           " WHERE score_date = :d LIMIT 1", d=DAY)[0][0])
    # a flush interval far beyond the test: only the shutdown flush can write the rows
    with serve(settings_for(world, decision_log_flush_interval_s=3600,
                            decision_log_batch_rows=10_000)) as client:
        r = client.post("/predict/batch", headers={**HEADERS, "X-Request-ID": rid},
                        json={"items": [{"features": features}] * 7})
        assert r.status_code == 200
        time.sleep(0.3)
        assert logged(world.database_url, [rid]) == {}
        assert metric_value(client.get("/metrics").text,
                            "creditrisk_decision_log_pending") == 7
    assert sorted(logged(world.database_url, [rid])) == [(rid, i) for i in range(7)]


def test_a_reused_request_id_stores_every_decision_under_its_own_server_key(
    world: World,
) -> None:
    rid = f"dl-dup-{uuid.uuid4().hex[:8]}"
    features = stored_features(world, rows(world.database_url,
                                           "SELECT customer_id FROM risk_scores"
                                           " WHERE score_date = :d LIMIT 1", d=DAY)[0][0])
    with serve(settings_for(world)) as client:
        first = client.post("/predict", json={"features": features, "amount": 1.0},
                            headers={**HEADERS, "X-Request-ID": rid})
        wait_until(lambda: len(logged_rows(world.database_url, [rid])) == 1)
        again = client.post("/predict", json={"features": features, "amount": 2.0},
                            headers={**HEADERS, "X-Request-ID": rid})
        batch = client.post("/predict/batch", json={"items": [{"features": features,
                                                                "amount": 3.0}] * 2},
                            headers={**HEADERS, "X-Request-ID": rid})
        assert first.status_code == again.status_code == batch.status_code == 200
        assert first.json()["request_id"] == again.json()["request_id"] == rid  # echoed
        wait_until(lambda: len(logged_rows(world.database_url, [rid])) == 4)
        text = client.get("/metrics").text
        assert sum(metric_value(text, "creditrisk_decision_log_dropped_total", reason=x) or 0
                   for x in ("duplicate", "queue_full", "warehouse_error")) == 0
    got = logged_rows(world.database_url, [rid])
    assert [(r["amount"], r["item"], r["route"]) for r in got] == [
        (1.0, 0, "/predict"), (2.0, 0, "/predict"), (3.0, 0, "/predict/batch"),
        (3.0, 1, "/predict/batch")]
    # three requests, three server ids; both batch items share theirs
    assert len({r["request_id"] for r in got}) == 3
    assert got[2]["request_id"] == got[3]["request_id"]


def test_a_warehouse_outage_keeps_serving_and_counts_every_unwritten_decision(
    world: World, db_url: str, pg_admin_url: str,
) -> None:
    """A warehouse of its own (a fresh copy) taken down and brought back under load."""
    database = sa.engine.make_url(db_url).database
    features = stored_features(world, rows(world.database_url,
                                           "SELECT customer_id FROM risk_scores"
                                           " WHERE score_date = :d LIMIT 1", d=DAY)[0][0])
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")

    def set_down(down: bool) -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS '
                                 f'{"false" if down else "true"}'))
            if down:
                conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                     " WHERE datname = :d"), {"d": database})

    run = uuid.uuid4().hex[:8]
    answered: list[str] = []
    try:
        with serve(settings_for(world, database_url=db_url, decision_log_max_pending=20,
                                decision_log_flush_interval_s=0.05,
                                decision_log_retry_max_s=1.0)) as client:
            def predict(i: int) -> None:
                rid = f"dl-out-{run}-{i}"
                started = time.perf_counter()
                r = client.post("/predict", json={"features": features},
                                headers={**HEADERS, "X-Request-ID": rid})
                assert r.status_code == 200, r.text
                assert time.perf_counter() - started < 2.0  # the outage never blocks a request
                answered.append(rid)

            for i in range(10):
                predict(i)
            wait_until(lambda: len(logged(db_url, answered)) == 10)
            set_down(True)
            for i in range(10, 110):
                predict(i)
                time.sleep(0.005)

            def dropped() -> float:
                text = client.get("/metrics").text
                return sum(metric_value(text, "creditrisk_decision_log_dropped_total",
                                        reason=reason) or 0
                           for reason in ("warehouse_error", "queue_full"))

            # a customer_id lookup cannot reach the warehouse either: a 503, never a 500
            r = client.post("/predict", json={"customer_id": f"C_outage_{run}"},
                            headers=HEADERS)
            assert r.status_code == 503 and r.json()["detail"] == "feature store unavailable"
            # at most max_pending rows are kept for a retry; the rest are counted
            wait_until(lambda: dropped() >= 100 - 20)
            assert metric_value(client.get("/metrics").text,
                                "creditrisk_decision_log_pending") <= 20
            set_down(False)
            for i in range(110, 120):
                predict(i)

            def settled() -> bool:
                t = client.get("/metrics").text
                done = (metric_value(t, "creditrisk_decision_log_written_total") or 0) + sum(
                    metric_value(t, "creditrisk_decision_log_dropped_total", reason=x) or 0
                    for x in ("warehouse_error", "queue_full"))
                return done == len(answered)

            wait_until(settled)  # every decision is either written or counted as dropped
            text = client.get("/metrics").text
            written = metric_value(text, "creditrisk_decision_log_written_total")
    finally:
        set_down(False)
        admin.dispose()
    got = logged(db_url, answered)
    assert len(got) == written
    assert {(f"dl-out-{run}-{i}", 0) for i in [*range(10), *range(110, 120)]} <= set(got)
    assert len(answered) == 120


def test_batch_decisions_are_traceable_through_risk_scores(world: World) -> None:
    """risk_scores carries model version and run; score_date is the features' as-of date."""
    got = rows(world.database_url,
               "SELECT count(*), count(DISTINCT s.model_version), min(s.model_version),"
               " min(s.model_name), min(s.run_id), max(s.run_id),"
               " count(*) FILTER (WHERE f.customer_id IS NULL)"
               " FROM risk_scores s LEFT JOIN customer_features f"
               " ON f.customer_id = s.customer_id AND f.as_of_date = s.score_date"
               " WHERE s.score_date = :d", d=DAY)[0]
    n, versions, version, name, run_min, run_max, unmatched = got
    assert n > 0
    assert (versions, version, name) == (1, world.version, world.model_name)
    assert run_min == run_max == "serving-score"
    assert unmatched == 0  # every score row has the customer_features row it scored
