"""Real-time scoring at checkout."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from serving.deps import (
    BODY_RESPONSES,
    KEY_SECURITY,
    KeyDep,
    KeyedModelDep,
    ModelDep,
    PolicyDep,
    StoreDep,
    charge,
)
from serving.model import LoadedModel
from serving.predictor import score_items
from serving.schemas import BatchItem, BatchRequest, BatchResponse, PredictRequest, PredictResponse

router = APIRouter(tags=["predict"])
log = logging.getLogger("serving.predict")


def _needs_lookup(items: list[PredictRequest]) -> bool:
    return any(i.features is None for i in items)


@router.post("/predict", response_model=PredictResponse, responses=BODY_RESPONSES,
             openapi_extra=KEY_SECURITY)
async def predict(model: KeyedModelDep, body: PredictRequest, request: Request) -> Response:
    """Score one checkout: PD, credit score, band, decision, limit, term and reasons."""
    answer = await answer_predict(request.app.state, request.scope["state"], body, model)
    return Response(answer, media_type="application/json")


async def answer_predict(app_state: Any, request_state: dict[str, Any], body: PredictRequest,
                         model: LoadedModel) -> bytes:
    """The JSON answer to one valid, authorised ``/predict`` call, or a 503.

    Shared by the route above and the ASGI fast path (serving/fastpath.py), which serves
    the same call without FastAPI's request machinery: one implementation of the answer.
    ``request_state`` is the envelope's per-request dict (ids in, ``log_extra`` out).
    """
    started = time.perf_counter()
    store, policy = app_state.store, app_state.policy
    items = [body]
    if (_needs_lookup(items) and store is not None and body.customer_id is not None
            and not store.is_cached(body.customer_id)):
        # a cache miss reads PostgreSQL: keep it off the event loop
        outcome = (await asyncio.to_thread(score_items, items, model, store, policy))[0]
    else:  # scored with the other calls of this loop iteration (serving/batcher.py)
        outcome = await app_state.batcher.score(body, model, store, policy, score_items)
    if outcome.body is None:
        raise HTTPException(status_code=503, detail=outcome.error or "cannot score")
    app_state.metrics.predictions.labels(outcome.body["decision"],
                                         outcome.body["risk_band"]).inc()
    server_id, client_id = request_state["server_request_id"], request_state["client_request_id"]
    decisions = app_state.decision_log
    if decisions is not None:
        decisions.record(server_id, client_id, 0, "/predict", outcome.body,
                         "warehouse" if body.features is None else "request", body.amount,
                         body.product_category)
    shadow = app_state.shadow
    if shadow is not None:  # a sampled call is scored again by the challenger, off the path
        shadow.offer(body, server_id, client_id, model.ref.version, outcome.lookup)
    request_state["log_extra"] = {"decision": outcome.body["decision"],
                                  "model_version": model.ref.version,
                                  "customer_id": body.customer_id}
    answer = PredictResponse(**outcome.body, request_id=request_state["request_id"],
                             latency_ms=round((time.perf_counter() - started) * 1000, 3))
    # validated once, serialised once: returning the model would make FastAPI validate
    # it again against response_model (which still documents the answer)
    return answer.model_dump_json().encode()


@router.post("/predict/batch", response_model=BatchResponse, responses=BODY_RESPONSES)
async def predict_batch(_key: KeyDep, body: BatchRequest, request: Request, model: ModelDep,
                        store: StoreDep, policy: PolicyDep) -> BatchResponse:
    """Score up to the configured cap of checkouts; one result per item."""
    cap = request.app.state.settings.batch_cap
    if len(body.items) > cap:
        raise HTTPException(status_code=422, detail=[{
            "field": "body.items", "error": f"at most {cap} items per batch, got {len(body.items)}",
        }])
    charge(request, _key, len(body.items), paid=1)  # a batch of n costs n; the key paid 1
    started = time.perf_counter()
    outcomes = await asyncio.to_thread(score_items, body.items, model, store, policy)
    elapsed = round((time.perf_counter() - started) * 1000, 3)
    results = []
    decisions = request.app.state.decision_log
    server_id, client_id = request.state.server_request_id, request.state.client_request_id
    for i, (item, outcome) in enumerate(zip(body.items, outcomes, strict=True)):
        if outcome.body is None:
            results.append(BatchItem(ok=False, error=outcome.error))
            continue
        request.app.state.metrics.predictions.labels(
            outcome.body["decision"], outcome.body["risk_band"]).inc()
        if decisions is not None:
            decisions.record(server_id, client_id, i, "/predict/batch", outcome.body,
                             "warehouse" if item.features is None else "request", item.amount,
                             item.product_category)
        results.append(BatchItem(ok=True, result=PredictResponse(
            **outcome.body, request_id=request.state.request_id, latency_ms=elapsed)))
    request.state.log_extra = {"model_version": model.ref.version, "items": len(results)}
    return BatchResponse(results=results, model_name=model.ref.name,
                         model_version=model.ref.version, processing_time_ms=elapsed,
                         request_id=request.state.request_id)
