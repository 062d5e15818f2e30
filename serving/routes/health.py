"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.deps import AUTH_RESPONSES, KeyDep
from serving.schemas import Ready

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready", response_model=Ready, responses={
    **AUTH_RESPONSES, 503: {"model": Ready, "description": "Not ready: the reasons say why"}})
async def ready(request: Request, _key: KeyDep) -> JSONResponse:
    """Readiness: 200 only with a model loaded and the feature store reachable."""
    state = request.app.state
    holder = state.holder
    reasons: list[str] = []
    blocking = False
    model = holder.current
    if model is None:
        blocking = True
        why = holder.last_load_error or holder.last_error
        reasons.append("no model loaded" + (f": {why}" if why else ""))
    else:
        # Registry outage or a broken new version alone: the loaded model keeps serving,
        # ready, with the reason shown.
        if holder.last_load_error:
            reasons.append(f"{holder.alias} {holder.last_load_error};"
                           f" serving v{model.ref.version}")
        if holder.last_error:
            reasons.append(f"registry unreachable, serving v{model.ref.version}: "
                           f"{holder.last_error}")
    if state.store is None:
        blocking = True
        reasons.append("feature store not configured (DATABASE_URL)")
    else:
        problem = await asyncio.to_thread(state.store.ping)
        if problem:
            blocking = True
            reasons.append(problem)
    body = Ready(ready=not blocking, model_version=model.ref.version if model else None,
                 reasons=reasons)
    return JSONResponse(body.model_dump(), status_code=503 if blocking else 200)


@router.get("/metrics", response_class=Response, responses={
    200: {"content": {"text/plain": {"schema": {"type": "string"}}},
          "description": "Prometheus text exposition"}})
async def metrics(request: Request) -> Response:
    """Prometheus exposition."""
    return Response(generate_latest(request.app.state.metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)
