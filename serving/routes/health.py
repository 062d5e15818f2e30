"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.deps import require_key
from serving.schemas import ErrorResponse, Ready

router = APIRouter(tags=["health"])
PING_TIMEOUT_S = 2.0  # a hung warehouse answers "unreachable" after this, never hangs /ready
PING_REUSE_S = 1.0  # probes within this share one ping: /ready costs the warehouse little


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


class _WarehouseProbe:
    """One ping of the feature store at a time, its answer reused for ``PING_REUSE_S``."""

    def __init__(self) -> None:
        self._task: asyncio.Future[str | None] | None = None
        self._at = -1e9
        self._last: str | None = None

    async def check(self, store: Any) -> str | None:
        if self._task is None and time.monotonic() - self._at >= PING_REUSE_S:
            self._task = asyncio.ensure_future(asyncio.to_thread(store.ping))
        if self._task is not None:
            try:
                self._last = await asyncio.wait_for(asyncio.shield(self._task),
                                                    PING_TIMEOUT_S)
            except TimeoutError:  # the ping goes on; the next probe waits for it again
                return f"feature store unreachable: no answer within {PING_TIMEOUT_S:.0f} s"
            self._task, self._at = None, time.monotonic()
        return self._last


@router.get("/ready", response_model=Ready, response_model_exclude_none=True, responses={
    401: {"model": ErrorResponse, "description": "An X-API-Key was sent and is invalid"},
    429: {"model": ErrorResponse, "description": "Over the key's or the address's limit"},
    503: {"model": Ready, "description": "Not ready: no model can answer"}})
async def ready(request: Request) -> JSONResponse:
    """Readiness, no key needed: 200 while a model is loaded, 503 while none is.

    ``warehouse_reachable`` says whether ``customer_id`` lookups work (null: no warehouse
    configured); requests with inline features are answered either way, so it does not
    make the process unready. With a valid X-API-Key the answer also names the model
    version and the reasons; without one it reveals nothing else.
    """
    # The key is optional here, so it is read by hand: declaring it as a security
    # scheme would tell clients (and the OpenAPI document) that the probe needs it.
    key = request.headers.get("x-api-key")
    detailed = bool(key) and bool(await require_key(request, key))
    state = request.app.state
    holder = state.holder
    model = holder.current
    reasons: list[str] = []
    if model is None:
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
    reachable: bool | None = None
    if state.store is None:
        reasons.append("feature store not configured (DATABASE_URL): inline features only")
    else:
        if getattr(state, "warehouse_probe", None) is None:
            state.warehouse_probe = _WarehouseProbe()
        problem = await state.warehouse_probe.check(state.store)
        reachable = problem is None
        if problem:
            reasons.append(f"{problem}: inline features only")
    body = Ready(ready=model is not None, model_loaded=model is not None,
                 warehouse_reachable=reachable,
                 model_version=(model.ref.version if model else None) if detailed else None,
                 reasons=reasons if detailed else None)
    content = body.model_dump(exclude={"model_version", "reasons"} if not detailed else None)
    return JSONResponse(content, status_code=200 if model is not None else 503)


@router.get("/metrics", response_class=Response, responses={
    200: {"content": {"text/plain": {"schema": {"type": "string"}}},
          "description": "Prometheus text exposition"}})
async def metrics(request: Request) -> Response:
    """Prometheus exposition."""
    return Response(generate_latest(request.app.state.metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)
