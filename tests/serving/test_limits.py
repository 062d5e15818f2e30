"""Request size and rate limits, configured small."""

from __future__ import annotations

import json

import pytest

from creditrisk.catalogue import FEATURE_NAMES
from tests.serving.conftest import API_KEY, DAY, World, metric_value, rows, serve, settings_for

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
