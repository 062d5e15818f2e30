"""The HTTP contract of ARCHITECTURE.md, route by route, on a real warehouse and registry."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from creditrisk.catalogue import CATALOGUE, FEATURE_NAMES
from creditrisk.scoring.decide import load_policy
from serving.observability import JsonFormatter
from tests.serving.conftest import (
    API_KEY,
    DAY,
    HEADERS,
    READY,
    World,
    metric_value,
    rows,
    stored_features,
)

pytestmark = pytest.mark.slow

RESPONSE_FIELDS = {
    "customer_id", "probability_of_default", "credit_score", "risk_band", "decision",
    "recommended_limit", "recommended_term_days", "reason_codes", "model_name",
    "model_version", "features_as_of", "thin_file", "request_id", "latency_ms",
}


def scored(world: World, decision: str | None = None, limit: int = 3) -> list[dict[str, Any]]:
    """Model-scored rows of risk_scores for DAY (optionally of one decision), as dicts."""
    where = "AND segment = 'scored'" + (" AND decision = :dec" if decision else "")
    got = rows(world.database_url,
               "SELECT customer_id, probability_of_default, credit_score, decision, risk_band,"
               " recommended_limit, recommended_term_days, model_version, reason_codes"
               f" FROM risk_scores WHERE score_date = :d {where}"
               " ORDER BY customer_id LIMIT :n", d=DAY, dec=decision, n=limit)
    keys = ("customer_id", "probability_of_default", "credit_score", "decision", "risk_band",
            "recommended_limit", "recommended_term_days", "model_version", "reason_codes")
    return [dict(zip(keys, r, strict=True)) for r in got]


def predict(client: TestClient, body: dict[str, Any], **headers: str) -> Any:
    return client.post("/predict", json=body, headers={**HEADERS, **headers})


# --- health, metrics, auth ------------------------------------------------------------

def test_health_needs_no_key(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["X-Request-ID"]


def test_metrics_need_no_key_and_expose_the_api_series(
    client: TestClient, world: World
) -> None:
    customer = scored(world, limit=1)[0]
    assert predict(client, {"customer_id": customer["customer_id"]}).status_code == 200
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert (metric_value(text, "creditrisk_api_requests_total", route="/predict",
                         method="POST", status="200") or 0) >= 1
    assert (metric_value(text, "creditrisk_api_request_seconds_count", route="/predict",
                         method="POST") or 0) >= 1
    assert (metric_value(text, "creditrisk_predictions_total", decision=customer["decision"],
                         band=customer["risk_band"]) or 0) >= 1
    assert metric_value(text, "creditrisk_model_info", name=world.model_name,
                        version=world.version) == 1
    assert (metric_value(text, "creditrisk_model_reloads_total") or 0) >= 1
    assert metric_value(text, "creditrisk_registry_up") == 1


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong-key-0123456789abcdef"},
                                     {"X-API-Key": ""}, {"X-API-Key": API_KEY + "x"}])
@pytest.mark.parametrize("method,path", [("POST", "/predict"), ("POST", "/predict/batch"),
                                         ("GET", "/model/info")])
def test_401_without_a_valid_key(
    client: TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    body = ({"items": [{"customer_id": "C1"}]} if path.endswith("batch")
            else {"customer_id": "C1"})
    r = client.request(method, path, headers=headers,
                       json=body if method == "POST" else None)
    assert r.status_code == 401
    assert r.json()["detail"] == "missing or invalid X-API-Key"
    assert r.headers["WWW-Authenticate"] == "ApiKey"
    assert API_KEY not in r.text


# --- ready, model info ----------------------------------------------------------------

def test_ready_needs_no_key_and_reveals_nothing_without_one(client: TestClient) -> None:
    for headers in ({}, {"X-API-Key": ""}):
        r = client.get("/ready", headers=headers)
        assert r.status_code == 200
        assert r.json() == READY  # no version, no reasons, no URL
    # a key that is sent must be valid: no oracle for guessing keys
    wrong = client.get("/ready", headers={"X-API-Key": "wrong-key-0123456789abcdef"})
    assert wrong.status_code == 401 and "ready" not in wrong.json()


def test_ready_with_model_and_feature_store(client: TestClient, world: World) -> None:
    r = client.get("/ready", headers=HEADERS)
    assert r.status_code == 200
    assert r.json() == {**READY, "model_version": world.version, "reasons": []}


def test_model_info(client: TestClient, world: World) -> None:
    r = client.get("/model/info", headers=HEADERS)
    assert r.status_code == 200
    info = r.json()
    assert info["name"] == world.model_name and info["version"] == world.version
    assert info["alias"] == "champion" and info["run_id"] == world.run_id
    assert info["candidate"] == "logistic_regression"
    assert info["trained_as_of"] == DAY.isoformat()
    assert {"roc_auc", "ks"} <= set(info["metrics"])
    assert all(0 <= v <= 1 for k, v in info["metrics"].items() if k in ("roc_auc", "ks"))
    assert len(info["features"]) == len(CATALOGUE)
    assert [f["name"] for f in info["features"]] == list(FEATURE_NAMES)
    assert all(f["meaning"] and f["unit"] for f in info["features"])
    assert info["features"] == [{"name": f.name, "meaning": f.meaning, "unit": f.unit}
                                for f in CATALOGUE]
    dt.datetime.fromisoformat(info["loaded_at"])


# --- predict --------------------------------------------------------------------------

def test_predict_by_customer_id_returns_every_field(client: TestClient, world: World) -> None:
    customer = scored(world, limit=1)[0]
    r = predict(client, {"customer_id": customer["customer_id"]}, **{"X-Request-ID": "rq-1"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == RESPONSE_FIELDS
    assert body["customer_id"] == customer["customer_id"]
    assert 0 < body["probability_of_default"] < 1
    assert 300 <= body["credit_score"] <= 850
    assert body["risk_band"] in {"A", "B", "C", "D", "E"}
    assert body["decision"] in {"APPROVE", "REVIEW", "DECLINE"}
    assert body["recommended_limit"] >= 0 and body["recommended_term_days"] >= 0
    assert body["model_name"] == world.model_name and body["model_version"] == world.version
    assert body["features_as_of"] == DAY.isoformat() and body["thin_file"] is False
    assert body["request_id"] == "rq-1" == r.headers["X-Request-ID"]
    assert body["latency_ms"] >= 0
    for code in body["reason_codes"]:
        assert code["feature"] in FEATURE_NAMES and code["contribution"] > 0
        assert code["code"] == code["feature"].upper() and code["text"]


def test_predict_matches_batch_scoring_of_the_same_day_and_version(
    client: TestClient, world: World
) -> None:
    """PARITY: the API answers what risk_scores holds for the customer, date and version."""
    customers = [c for d in ("APPROVE", "REVIEW", "DECLINE") for c in scored(world, d, 4)]
    assert len({c["decision"] for c in customers}) >= 2, "want more than one decision"
    for row in customers:
        body = predict(client, {"customer_id": row["customer_id"]}).json()
        assert body["model_version"] == row["model_version"] == world.version
        assert body["features_as_of"] == DAY.isoformat()
        assert body["probability_of_default"] == pytest.approx(row["probability_of_default"],
                                                               abs=1e-9)
        assert body["credit_score"] == row["credit_score"]
        assert body["decision"] == row["decision"]
        assert body["risk_band"] == row["risk_band"]
        assert body["recommended_limit"] == float(row["recommended_limit"])
        assert body["recommended_term_days"] == row["recommended_term_days"]
        assert [c["code"] for c in body["reason_codes"]] == \
            [c["code"] for c in row["reason_codes"]]


def test_explicit_features_equal_the_customer_id_path(client: TestClient, world: World) -> None:
    for row in scored(world, limit=3):
        by_id = predict(client, {"customer_id": row["customer_id"]}).json()
        by_features = predict(client, {"features": stored_features(world, row["customer_id"])})
        assert by_features.status_code == 200
        body = by_features.json()
        assert body["customer_id"] is None and body["features_as_of"] is None
        assert body["thin_file"] is False
        skip = {"customer_id", "features_as_of", "request_id", "latency_ms"}
        assert {k: v for k, v in body.items() if k not in skip} == \
            {k: v for k, v in by_id.items() if k not in skip}


def test_unknown_customer_gets_the_thin_file_answer(client: TestClient, world: World) -> None:
    thin = load_policy()["thin_file"]
    r = predict(client, {"customer_id": "CustomerId_never_seen_42", "amount": 1000})
    assert r.status_code == 200
    body = r.json()
    assert body["decision"] == thin["decision"] == "REVIEW"
    assert body["thin_file"] is True and body["risk_band"] == "THIN_FILE"
    assert [c["code"] for c in body["reason_codes"]] == ["THIN_FILE"]
    assert body["probability_of_default"] is None and body["credit_score"] is None
    assert body["recommended_limit"] == thin["limit"]
    assert body["recommended_term_days"] == thin["term_days"]
    assert body["model_version"] == world.version


def test_basket_amount_over_the_limit_turns_approve_into_review(
    client: TestClient, world: World
) -> None:
    row = next(r for r in scored(world, "APPROVE", 50) if float(r["recommended_limit"]) > 0)
    limit = float(row["recommended_limit"])
    cid = row["customer_id"]
    within = predict(client, {"customer_id": cid, "amount": limit}).json()
    assert within["decision"] == "APPROVE"
    assert "BASKET_OVER_LIMIT" not in [c["code"] for c in within["reason_codes"]]
    over = predict(client, {"customer_id": cid, "amount": limit + 1}).json()
    assert over["decision"] == "REVIEW"
    assert over["reason_codes"][0]["code"] == "BASKET_OVER_LIMIT"
    assert over["recommended_limit"] == limit


def test_review_categories_turn_approve_into_review(client: TestClient, world: World) -> None:
    cid = scored(world, "APPROVE", 1)[0]["customer_id"]
    review = load_policy()["basket"]["review_categories"]
    assert review
    for category in review:
        body = predict(client, {"customer_id": cid, "product_category": category}).json()
        assert body["decision"] == "REVIEW"
        assert body["reason_codes"][0]["code"] == "CATEGORY_REVIEW"
    plain = predict(client, {"customer_id": cid, "product_category": "airtime"}).json()
    assert "airtime" not in review and plain["decision"] == "APPROVE"


def test_a_decline_stays_a_decline_whatever_the_basket(client: TestClient, world: World) -> None:
    declined = scored(world, "DECLINE", 1)
    if not declined:
        pytest.skip("no DECLINE in this world")
    body = predict(client, {"customer_id": declined[0]["customer_id"], "amount": 10**6,
                            "product_category": "financial_services"}).json()
    assert body["decision"] == "DECLINE" and body["recommended_limit"] == 0


# --- 422 ------------------------------------------------------------------------------

def _features(value: float = 424242.125) -> dict[str, float]:
    return dict.fromkeys(FEATURE_NAMES, value)


def _raw_nan() -> str:
    feats = _features()
    text = json.dumps(feats)
    return '{"features": ' + text.replace(f'"{FEATURE_NAMES[3]}": 424242.125',
                                          f'"{FEATURE_NAMES[3]}": NaN') + "}"


INVALID: list[tuple[str, Any, str, str, str]] = [
    # (case, body (dict, or raw JSON text), field, words in the error, a value not echoed)
    ("nothing to score", {"amount": 424242.125}, "body", "customer_id", "424242"),
    ("missing feature",
     {"features": {k: v for k, v in _features().items() if k != FEATURE_NAMES[0]}},
     "body.features", FEATURE_NAMES[0], "424242"),
    ("unknown feature", {"features": {**_features(), "credit_limit_hack": 424242.125}},
     "body.features", "credit_limit_hack", "424242"),
    ("non-finite feature", _raw_nan(), "body.features", FEATURE_NAMES[3], "424242"),
    ("negative amount", {"customer_id": "C1", "amount": -987654.125}, "body.amount", "",
     "987654"),
    ("bad category", {"customer_id": "C1", "product_category": "yachts_424242"},
     "body.product_category", "", "yachts_424242"),
    ("extra field", {"customer_id": "C1", "discount": 424242.125}, "body.discount", "",
     "424242"),
    ("bad customer id", {"customer_id": "x' OR 1=1 -- 424242"}, "body.customer_id", "",
     "OR 1=1"),
    ("string feature", {"features": {**_features(), FEATURE_NAMES[1]: "lots-424242"}},
     f"body.features.{FEATURE_NAMES[1]}", "", "lots-424242"),
]


@pytest.mark.parametrize("case,body,field,words,secret", INVALID,
                         ids=[c[0] for c in INVALID])
def test_422_names_the_field_and_does_not_echo_the_input(
    client: TestClient, case: str, body: Any, field: str, words: str, secret: str
) -> None:
    if isinstance(body, str):
        r = client.post("/predict", content=body,
                        headers={**HEADERS, "Content-Type": "application/json"})
    else:
        r = predict(client, body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert field in [d["field"] for d in detail], detail
    assert words in " ".join(d["error"] for d in detail if d["field"] == field)
    assert secret not in r.text
    assert r.json()["request_id"] == r.headers["X-Request-ID"]


def test_422_in_a_batch_names_the_item(client: TestClient) -> None:
    r = client.post("/predict/batch", headers=HEADERS, json={"items": [
        {"customer_id": "C1"}, {"customer_id": "C2", "amount": -5.5}]})
    assert r.status_code == 422
    assert "body.items.1.amount" in [d["field"] for d in r.json()["detail"]]


# --- batch ----------------------------------------------------------------------------

def test_batch_answers_every_item_in_order(client: TestClient, world: World) -> None:
    a, b, c = scored(world, limit=3)
    items = [
        {"customer_id": a["customer_id"]},
        {"features": stored_features(world, b["customer_id"])},
        {"customer_id": "CustomerId_unknown_batch"},
        {"customer_id": c["customer_id"], "amount": float(c["recommended_limit"]) + 1},
    ]
    r = client.post("/predict/batch", headers={**HEADERS, "X-Request-ID": "batch-1"},
                    json={"items": items})
    assert r.status_code == 200
    body = r.json()
    assert body["model_name"] == world.model_name and body["model_version"] == world.version
    assert body["processing_time_ms"] >= 0 and body["request_id"] == "batch-1"
    results = body["results"]
    assert len(results) == 4 and all(x["ok"] and x["error"] is None for x in results)
    res = [x["result"] for x in results]
    assert {x["model_version"] for x in res} == {world.version}
    assert res[0]["customer_id"] == a["customer_id"]
    assert res[0]["probability_of_default"] == pytest.approx(a["probability_of_default"],
                                                             abs=1e-9)
    assert res[0]["decision"] == a["decision"]
    assert res[1]["customer_id"] is None
    assert res[1]["probability_of_default"] == pytest.approx(b["probability_of_default"],
                                                             abs=1e-9)
    assert res[2]["thin_file"] is True and res[2]["decision"] == "REVIEW"
    assert res[3]["decision"] in ("REVIEW", "DECLINE")
    if c["decision"] != "DECLINE":
        assert res[3]["reason_codes"][0]["code"] == "BASKET_OVER_LIMIT"


def test_batch_over_the_cap_is_422_naming_the_items(client: TestClient) -> None:
    cap = client.app.state.settings.batch_cap  # type: ignore[attr-defined]
    ok = client.post("/predict/batch", headers=HEADERS,
                     json={"items": [{"customer_id": f"C{i}"} for i in range(cap)]})
    assert ok.status_code == 200 and len(ok.json()["results"]) == cap
    r = client.post("/predict/batch", headers=HEADERS,
                    json={"items": [{"customer_id": f"C{i}"} for i in range(cap + 1)]})
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["detail"]] == ["body.items"]
    empty = client.post("/predict/batch", headers=HEADERS, json={"items": []})
    assert empty.status_code == 422
    assert "body.items" in [d["field"] for d in empty.json()["detail"]]


# --- 500 ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_an_internal_error_is_a_generic_500_with_the_request_id(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    import serving.routes.predict

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret-internal-detail: password=hunter2")

    monkeypatch.setattr(serving.routes.predict, "score_items", boom)
    before = metric_value(client.get("/metrics").text, "creditrisk_api_requests_total",
                          route=path, method="POST", status="500") or 0
    body = ({"items": [{"customer_id": "C1"}]} if path.endswith("batch")
            else {"customer_id": "C1"})
    r = client.post(path, json=body, headers={**HEADERS, "X-Request-ID": "req-500-abc"})
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error", "request_id": "req-500-abc"}
    assert "secret" not in r.text and "hunter2" not in r.text
    assert r.headers["X-Request-ID"] == "req-500-abc"
    after = metric_value(client.get("/metrics").text, "creditrisk_api_requests_total",
                         route=path, method="POST", status="500")
    assert after == before + 1
    monkeypatch.undo()
    assert client.post(path, json=body, headers=HEADERS).status_code == 200


def test_model_that_raises_is_a_500_too(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = client.app.state.holder.current  # type: ignore[attr-defined]

    def broken(X: Any) -> Any:
        raise FloatingPointError("overflow in model internals")

    monkeypatch.setattr(model, "predict", broken)
    r = client.post("/predict", json={"features": _features(1.0)},
                    headers={**HEADERS, "X-Request-ID": "req-500-model"})
    assert r.status_code == 500 and r.headers["X-Request-ID"] == "req-500-model"
    assert "overflow" not in r.text


# --- logs -----------------------------------------------------------------------------

def test_a_prediction_logs_ids_version_latency_decision_but_no_features_or_key(
    client: TestClient, world: World
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("serving")
    logger.addHandler(handler)
    try:
        row = scored(world, limit=1)[0]
        feats = stored_features(world, row["customer_id"])
        feats["monetary_total"] = 73519.86420
        r1 = predict(client, {"features": feats, "amount": 64123.5},
                     **{"X-Request-ID": "log-req-1"})
        r2 = predict(client, {"customer_id": row["customer_id"]},
                     **{"X-Request-ID": "log-req-2"})
        bad = predict(client, {"features": {**feats, "sneaky": 1.0}},
                      **{"X-Request-ID": "log-req-3"})
    finally:
        logger.removeHandler(handler)
    assert r1.status_code == r2.status_code == 200 and bad.status_code == 422
    text = stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    by_id = {line.get("request_id"): line for line in lines if line["msg"] == "request"}
    for rid, response in (("log-req-1", r1), ("log-req-2", r2)):
        line = by_id[rid]
        assert line["route"] == "/predict" and line["status"] == 200
        assert line["model_version"] == world.version
        assert line["decision"] == response.json()["decision"]
        assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0
    assert by_id["log-req-3"]["status"] == 422
    assert by_id["log-req-2"]["customer_id"] == row["customer_id"]
    assert API_KEY not in text
    assert "73519" not in text and "64123" not in text  # no feature values, no basket
    for name in ("monetary_total", "spend_last_30d", "features"):
        assert name not in text
