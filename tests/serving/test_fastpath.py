"""``POST /predict``'s ASGI fast path answers exactly what the FastAPI route answers.

Two apps on the same world and settings, one with the fast path and one without
(``app.state.fast_predict``), get the same sequence of calls: valid ones of every kind
(scored, dormant, unknown, inline features, basket rules), bodies FastAPI must refuse,
other content types, missing and wrong keys, the rate limit, and no model at all. Every
answer must match in status, headers and body (the per-request id and latency aside),
the request metrics must be labelled alike, and the fast path must have answered the
valid calls itself (else this would compare FastAPI with itself).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Generator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import serving.fastpath
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

JSON = {"Content-Type": "application/json"}


def _customers(world: World) -> tuple[str, str]:
    """A scored and a dormant customer of DAY."""
    got = dict(rows(world.database_url,
                    "SELECT DISTINCT ON (segment) segment, customer_id FROM risk_scores"
                    " WHERE score_date = :d ORDER BY segment, customer_id", d=DAY))
    return got["scored"], got["dormant"]


def _calls(world: World) -> list[tuple[str, dict[str, str], bytes]]:
    scored, dormant = _customers(world)
    feats = stored_features(world, scored)
    valid = [
        {"customer_id": scored}, {"customer_id": dormant}, {"customer_id": "CustomerId_nope"},
        {"features": feats}, {"customer_id": scored, "features": feats},
        {"customer_id": scored, "amount": 1e9}, {"customer_id": scored, "amount": 10.0},
        {"customer_id": scored, "product_category": "financial_services"},
        {"features": feats, "amount": 0.0, "product_category": "airtime"},
    ]
    invalid: list[bytes] = [
        b'{"customer_id": ""}', b'{"customer_id": 5}', b"{}", b'{"amount": 3.5}',
        b'{"customer_id": "C1", "discount": 1}', b'{"features": {"tenure_days": 1}}',
        b"", b"[1, 2]", b"null", b'{"customer_id": "C1", "amount": -1}',
    ]
    # FastAPI decodes the JSON before it resolves dependencies: these are 422 (or 400)
    # even without a key, on both paths
    malformed: list[bytes] = [b'{"customer_id": "C1"', b"\xff\xfe{}"]
    calls: list[tuple[str, dict[str, str], bytes]] = []
    for body in valid:
        raw = json.dumps(body).encode()
        calls.append(("valid", {**HEADERS, **JSON}, raw))
        calls.append(("valid", {**HEADERS, "Content-Type": "application/json; charset=utf-8"},
                      raw))
        calls.append(("text/plain", {**HEADERS, "Content-Type": "text/plain"}, raw))
        calls.append(("no key", JSON, raw))
        calls.append(("wrong key", {"X-API-Key": "wrong-0123456789abcdef", **JSON}, raw))
    for raw in invalid:
        calls.append(("invalid", {**HEADERS, **JSON}, raw))
        calls.append(("invalid, no key", JSON, raw))
    for raw in malformed:
        calls.append(("malformed", {**HEADERS, **JSON}, raw))
        calls.append(("malformed", JSON, raw))
    return calls


def _answer(r: Any) -> tuple[int, list[tuple[str, str]], Any]:
    headers = [(k, v) for k, v in r.headers.items()
               if k not in ("x-request-id", "content-length", "date", "retry-after")]
    try:
        body = r.json()
    except ValueError:
        body = r.text
    if isinstance(body, dict):
        assert body.pop("request_id", None) == r.headers["x-request-id"]
        body.pop("latency_ms", None)
    return r.status_code, headers, body


@contextlib.contextmanager
def _pair(world: World, **overrides: Any) -> Generator[tuple[TestClient, TestClient]]:
    with serve(settings_for(world, **overrides), raise_server_exceptions=False) as fast, \
            serve(settings_for(world, **overrides), raise_server_exceptions=False) as slow:
        slow.app.state.fast_predict = False  # type: ignore[attr-defined]
        yield fast, slow


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per call the fast path answered itself."""
    seen: list[int] = []
    real = serving.fastpath.answer_predict

    async def counted(*a: Any, **k: Any) -> bytes:
        seen.append(1)
        return await real(*a, **k)

    monkeypatch.setattr(serving.fastpath, "answer_predict", counted)
    return seen


def test_every_call_gets_the_routes_answer(world: World, answered: list[int]) -> None:
    calls = _calls(world)
    with _pair(world) as (fast, slow):
        for case, headers, raw in calls:
            got = _answer(fast.post("/predict", content=raw, headers=headers))
            want = _answer(slow.post("/predict", content=raw, headers=headers))
            assert got == want, (case, raw)
            assert got[0] == {"valid": 200, "text/plain": 422, "no key": 401,
                              "wrong key": 401, "invalid": 422,
                              "invalid, no key": 401}.get(case, got[0]), (case, raw, got)
        assert len(answered) == sum(c[0] == "valid" for c in calls)
        for status in ("200", "401", "422"):  # labelled by route, like any route's calls
            counts = [metric_value(c.get("/metrics").text, "creditrisk_api_requests_total",
                                   route="/predict", method="POST", status=status)
                      for c in (fast, slow)]
            assert counts[0] == counts[1] and counts[0], (status, counts)


def test_the_rate_limit_and_the_address_lockout_answer_alike(
    world: World, answered: list[int],
) -> None:
    body = json.dumps({"customer_id": "CustomerId_nope"}).encode()
    with _pair(world, rate_limit_per_minute=3) as (fast, slow):
        got = [_answer(c.post("/predict", content=body, headers={**HEADERS, **JSON}))
               for c in (fast, slow) for _ in range(5)]
        assert got[:5] == got[5:]
        assert [g[0] for g in got[:5]] == [200, 200, 200, 429, 429]
    assert len(answered) == 3
    wrong = {"X-API-Key": "wrong-0123456789abcdef", **JSON}
    with _pair(world, auth_failures_per_minute=2) as (fast, slow):
        got = [_answer(c.post("/predict", content=body, headers=h))
               for c in (fast, slow) for h in (wrong, wrong, wrong, {**HEADERS, **JSON})]
        assert got[:4] == got[4:]
        assert [g[0] for g in got[:4]] == [401, 401, 429, 429]  # locked out, keys unread


def test_no_model_is_the_same_503(world: World) -> None:
    body = json.dumps({"customer_id": "CustomerId_nope"}).encode()
    with _pair(world, model_name="credit-risk-pd-never-registered") as (fast, slow):
        got, want = (_answer(c.post("/predict", content=body, headers={**HEADERS, **JSON}))
                     for c in (fast, slow))
        assert got == want and got[0] == 503
        assert got[2]["detail"] == "no model loaded yet"
