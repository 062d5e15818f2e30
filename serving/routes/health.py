"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.deps import KeyDep
from serving.schemas import Ready

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready", response_model=Ready, responses={503: {"model": Ready}})
async def ready(request: Request, _key: KeyDep) -> JSONResponse:
    """Readiness: 200 only with a model loaded and the feature store reachable."""
    state = request.app.state
    reasons = []
    model = state.holder.current
    if model is None:
        reasons.append("no model loaded" + (f": {state.holder.last_error}"
                                            if state.holder.last_error else ""))
    elif state.holder.last_error:
        reasons.append(f"registry unreachable, serving v{model.ref.version}: "
                       f"{state.holder.last_error}")
    if state.store is None:
        reasons.append("feature store not configured (DATABASE_URL)")
    else:
        problem = await asyncio.to_thread(state.store.ping)
        if problem:
            reasons.append(problem)
    # A registry outage alone keeps serving the loaded model: ready, with the reason shown.
    blocking = [r for r in reasons if not r.startswith("registry unreachable")]
    body = Ready(ready=not blocking, model_version=model.ref.version if model else None,
                 reasons=reasons)
    return JSONResponse(body.model_dump(), status_code=200 if not blocking else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus exposition."""
    return Response(generate_latest(request.app.state.metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)
