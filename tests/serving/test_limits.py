"""Request size and rate limits, configured small."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from creditrisk.catalogue import FEATURE_NAMES
from serving.settings import ServingSettings
from tests.serving.conftest import (
    API_KEY,
    DAY,
    READY,
    World,
    metric_value,
    rows,
    serve,
    settings_for,
    stored_features,
)

pytestmark = pytest.mark.slow
OTHER_KEY = "other-key-0123456789abcdef"


def test_a_body_over_max_body_bytes_is_413(world: World) -> None:
    with serve(settings_for(world, max_body_bytes=2048)) as client:
        headers = {"X-API-Key": API_KEY, "X-Request-ID": "big-1"}
        big = {"items": [{"customer_id": f"CustomerId_{i}"} for i in range(80)]}
        assert len(json.dumps(big)) > 2048
        r = client.post("/predict/batch", json=big, headers=headers)
        assert r.status_code == 413
        assert r.json() == {"detail": "request body over 2048 bytes", "request_id": "big-1"}
        assert r.headers["X-Request-ID"] == "big-1"
        # checked before anything else: even without a key, and on /predict
        padded = {"customer_id": "C1", "pad": "x" * 3000}
        assert client.post("/predict", json=padded).status_code == 413
        # a full feature vector fits under the limit
        features = dict.fromkeys(FEATURE_NAMES, 0.123456789012)  # in every feature's range
        assert len(json.dumps({"features": features})) < 2048
        ok = client.post("/predict", json={"features": features},
                         headers={"X-API-Key": API_KEY})
        assert ok.status_code == 200
        text = client.get("/metrics").text
        assert metric_value(text, "creditrisk_api_requests_total", route="unmatched",
                            method="POST", status="413") == 2


def test_over_the_per_key_rate_limit_is_429_with_retry_after(world: World) -> None:
    cid = rows(world.database_url, "SELECT customer_id FROM risk_scores WHERE score_date = :d"
                                   " LIMIT 1", d=DAY)[0][0]
    settings = settings_for(world, rate_limit_per_minute=5, api_keys=f"{API_KEY},{OTHER_KEY}")
    with serve(settings) as client:
        mine = {"X-API-Key": API_KEY}
        for _ in range(5):
            assert client.post("/predict", json={"customer_id": cid},
                               headers=mine).status_code == 200
        r = client.post("/predict", json={"customer_id": cid}, headers=mine)
        assert r.status_code == 429
        assert r.json()["detail"] == "rate limit exceeded for this key"
        assert 1 <= int(r.headers["Retry-After"]) <= 60 / 5
        assert API_KEY not in r.text
        # the limit counts every authenticated route of the key
        assert client.get("/model/info", headers=mine).status_code == 429
        # another key has its own bucket; a wrong key is still a 401; health is free
        other = client.post("/predict", json={"customer_id": cid},
                            headers={"X-API-Key": OTHER_KEY})
        assert other.status_code == 200
        wrong = client.post("/predict", json={"customer_id": cid},
                            headers={"X-API-Key": "nope-0123456789abcdef"})
        assert wrong.status_code == 401
        assert client.get("/health").status_code == 200
        text = client.get("/metrics").text
        assert metric_value(text, "creditrisk_api_requests_total", route="/predict",
                            method="POST", status="429") == 1


def test_a_chunked_body_over_the_limit_is_413_too(world: World) -> None:
    """No Content-Length: the bytes are counted as they arrive."""
    with serve(settings_for(world, max_body_bytes=2048)) as client:
        body = json.dumps({"customer_id": "C1", "pad": "x" * 5000}).encode()

        def chunks():  # type: ignore[no-untyped-def]
            for i in range(0, len(body), 1000):
                yield body[i:i + 1000]

        r = client.post("/predict", content=chunks(),
                        headers={"X-API-Key": API_KEY, "Content-Type": "application/json"})
        assert "content-length" not in {k.lower() for k in r.request.headers}
        assert r.status_code == 413
        assert "2048 bytes" in r.json()["detail"]


def test_cors_is_closed(world: World) -> None:
    """No CORS headers at all: a browser on another origin cannot call the API."""
    with serve(settings_for(world)) as client:
        pre = client.options("/predict", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in {k.lower() for k in pre.headers}
        r = client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in {k.lower() for k in r.headers}


def _customer(world: World) -> str:
    return str(rows(world.database_url, "SELECT customer_id FROM risk_scores"
                                        " WHERE score_date = :d LIMIT 1", d=DAY)[0][0])


def test_a_batch_of_n_items_costs_n_decisions_of_the_key_limit(world: World) -> None:
    cid = _customer(world)
    mine = {"X-API-Key": API_KEY}
    with serve(settings_for(world, rate_limit_per_minute=10, batch_cap=25)) as client:
        six = {"items": [{"customer_id": cid}] * 6}
        assert client.post("/predict/batch", json=six, headers=mine).status_code == 200
        # 4 left: a second batch of 6 is refused (its own item is spent, the rest is not)
        r = client.post("/predict/batch", json=six, headers=mine)
        assert r.status_code == 429, r.text
        assert r.json()["detail"] == "rate limit exceeded for this key"
        assert int(r.headers["Retry-After"]) >= 1
        for _ in range(3):
            assert client.post("/predict", json={"customer_id": cid},
                               headers=mine).status_code == 200
        assert client.post("/predict", json={"customer_id": cid},
                           headers=mine).status_code == 429
    with serve(settings_for(world, rate_limit_per_minute=10, batch_cap=25)) as client:
        # more items than the bucket ever holds: refused at once, and said so
        r = client.post("/predict/batch", json={"items": [{"customer_id": cid}] * 11},
                        headers=mine)
        assert r.status_code == 429
        assert "11 items is more than this key's rate limit allows at once" in r.json()["detail"]
        # nothing but the request's own item was spent
        assert client.post("/predict/batch", json={"items": [{"customer_id": cid}] * 9},
                           headers=mine).status_code == 200


def test_failed_keys_are_limited_per_client_address(world: World) -> None:
    cid = _customer(world)
    guesser = ("203.0.113.7", 40000)
    with serve(settings_for(world, auth_failures_per_minute=3), client=guesser) as client:
        for i in range(3):
            r = client.post("/predict", json={"customer_id": cid},
                            headers={"X-API-Key": f"guess-{i}-0123456789abcdef"})
            assert r.status_code == 401
        r = client.post("/predict", json={"customer_id": cid},
                        headers={"X-API-Key": "guess-3-0123456789abcdef"})
        assert r.status_code == 429
        assert r.json()["detail"] == "too many invalid API keys from this address"
        assert 1 <= int(r.headers["Retry-After"]) <= 20
        assert client.get("/model/info").status_code == 429  # no key at all: the same
        # while locked out no key from the address is checked, not even a valid one:
        # a guess that happened to be right would look the same as a wrong one
        assert client.post("/predict", json={"customer_id": cid},
                           headers={"X-API-Key": API_KEY}).status_code == 429
        # another address (same app and state) is not affected, for good keys or bad
        other = TestClient(client.app, client=("198.51.100.9", 40000))
        assert other.post("/predict", json={"customer_id": cid},
                          headers={"X-API-Key": API_KEY}).status_code == 200
        assert other.post("/predict", json={"customer_id": cid},
                          headers={"X-API-Key": "nope-0123456789abcdef"}).status_code == 401
        # liveness and readiness stay open to the probe
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 200
        text = client.get("/metrics").text
        assert metric_value(text, "creditrisk_api_requests_total", route="/predict",
                            method="POST", status="429") == 2


def test_valid_keys_spend_nothing_of_the_address_budget(world: World) -> None:
    """Behind one NAT, a client with a good key never locks its neighbours out."""
    features = dict.fromkeys(FEATURE_NAMES, 0.5)
    with serve(settings_for(world, auth_failures_per_minute=2)) as client:
        for _ in range(20):
            assert client.post("/predict", json={"features": features},
                               headers={"X-API-Key": API_KEY}).status_code == 200
        assert client.get("/model/info", headers={"X-API-Key": "x" * 20}).status_code == 401


def test_the_default_limit_lets_a_full_batch_and_a_checkout_peak_through() -> None:
    defaults = ServingSettings(api_keys=API_KEY)
    assert defaults.rate_limit_per_minute >= defaults.batch_cap
    assert defaults.rate_limit_per_minute / 60 >= 500  # decisions per second per key
    assert defaults.auth_failures_per_minute <= 60


def test_ready_without_a_key_says_model_and_warehouse_apart(world: World) -> None:
    """A warehouse that cannot be reached leaves the process ready: inline features work."""
    dead = "postgresql+psycopg2://nobody@127.0.0.1:9/creditrisk"
    features = stored_features(world, _customer(world))
    with serve(settings_for(world, database_url=dead)) as client:
        r = client.get("/ready")
        assert r.status_code == 200
        assert r.json() == {**READY, "warehouse_reachable": False}
        assert "127.0.0.1" not in r.text and "nobody" not in r.text
        detailed = client.get("/ready", headers={"X-API-Key": API_KEY}).json()
        assert any(x.startswith("feature store unreachable") for x in detailed["reasons"])
        assert client.post("/predict", json={"features": features},
                           headers={"X-API-Key": API_KEY}).status_code == 200
    with serve(settings_for(world, database_url=None)) as client:
        r = client.get("/ready")
        assert r.status_code == 200
        assert r.json() == {**READY, "warehouse_reachable": None}
