"""The FastAPI app: ``uvicorn serving.app:app`` (``./platform up`` starts it on port 8000).

At start-up the lifespan resolves ``models:/<name>@<alias>`` to a version and loads it
(``/ready`` answers 503 until then); a background task re-checks the alias every
``CREDITRISK_RELOAD_INTERVAL_S`` and swaps in a new version atomically. If the registry
is down, the loaded model keeps serving and ``/ready`` and ``/metrics`` show it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from creditrisk.registry import CHALLENGER, CHAMPION
from creditrisk.scoring.decide import load_policy
from serving.alias_audit import AliasAudit
from serving.batcher import MicroBatcher
from serving.decision_log import DecisionLog
from serving.fastpath import PredictFastPath
from serving.features import FeatureStore
from serving.model import ModelHolder
from serving.observability import Metrics, configure_logging
from serving.routes import health, model, predict, root
from serving.security import KeyChecker, RateLimiter
from serving.settings import ServingSettings, get_serving_settings
from serving.shadow import ShadowSampler
from serving.timeout import RequestTimeout

log = logging.getLogger("serving.app")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


class _BodyLimit:
    """Pure ASGI: count the body's bytes as they arrive, so a chunked body without a
    Content-Length cannot slip past the size limit either."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = scope["app"].state.settings.max_body_bytes
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise StarletteHTTPException(413, f"request body over {limit} bytes")
            return message

        await self.app(scope, counted, send)


class _Envelope:
    """Pure ASGI, outermost: request id, the Content-Length limit, 500s, metrics, the log.

    A ``BaseHTTPMiddleware`` (``@app.middleware``) cost about a quarter of a millisecond
    per request here; this does the same work on the raw ASGI messages.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        # A client's id is kept when it is a sane token: it lands in logs and decision_log
        # (client_request_id). The server's own id keys the audit rows: clients reuse ids.
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        client_id = given if _REQUEST_ID.fullmatch(given) else None
        server_id = uuid.uuid4().hex
        request_id = client_id or server_id
        state = scope.setdefault("state", {})
        state["request_id"], state["log_extra"] = request_id, {}
        state["server_request_id"], state["client_request_id"] = server_id, client_id
        app_state = scope["app"].state
        status = 500
        tag = (b"x-request-id", request_id.encode("latin-1"))

        async def tagged(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), tag]
            await send(message)

        limit = app_state.settings.max_body_bytes
        length = headers.get(b"content-length", b"")
        try:
            if length.isdigit() and int(length) > limit:
                too_big = JSONResponse({"detail": f"request body over {limit} bytes",
                                        "request_id": request_id}, status_code=413)
                await too_big(scope, receive, tagged)
            else:
                await self.app(scope, receive, tagged)
        except Exception as exc:  # answered here so the 500 is counted, logged and tagged
            log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
            crashed = JSONResponse({"detail": "internal error", "request_id": request_id},
                                   status_code=500)
            await crashed(scope, receive, tagged)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            elapsed = time.perf_counter() - started
            method = scope["method"]
            app_state.metrics.observe_request(path, method, status, elapsed)
            if path not in ("/health", "/metrics"):
                log.info("request", extra={"request_id": request_id, "route": path,
                                           "method": method, "status": status,
                                           "latency_ms": round(elapsed * 1000, 3),
                                           **state.get("log_extra", {})})


def _shadow_sampler(app: FastAPI, cfg: ServingSettings,
                    decisions: DecisionLog | None) -> ShadowSampler | None:
    """The challenger's holder and the shadow sampler, when a share is configured."""
    if cfg.shadow_sample <= 0:
        return None
    metrics = app.state.metrics
    challenger = ModelHolder(cfg.tracking_uri(), cfg.model_name, CHALLENGER, optional=True)
    sampler = ShadowSampler(cfg.shadow_sample, challenger, app.state.store, app.state.policy,
                            decisions, queue_size=cfg.shadow_queue_size,
                            batch_max=cfg.shadow_batch_max,
                            batch_wait_s=cfg.shadow_batch_wait_s,
                            on_outcome=lambda outcome: metrics.shadow.labels(outcome).inc())
    threading.Thread(target=challenger.refresh, name="challenger-load", daemon=True).start()
    sampler.start()
    return sampler


def create_app(settings: ServingSettings | None = None) -> FastAPI:
    """Build the app; nothing connects until the lifespan starts."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None]:
        cfg = settings or get_serving_settings()
        configure_logging()
        metrics = Metrics()
        app.state.settings = cfg
        app.state.metrics = metrics
        app.state.policy = load_policy()
        app.state.keys = KeyChecker(cfg.api_key_list())
        app.state.limiter = RateLimiter(cfg.rate_limit_per_minute)
        app.state.auth_failures = RateLimiter(cfg.auth_failures_per_minute)
        warehouse = cfg.warehouse_url()
        app.state.store = (FeatureStore(warehouse, cfg.feature_cache_ttl_s,
                                        cfg.feature_cache_size, cfg.db_timeouts())
                           if warehouse else None)

        def on_reload(previous: str | None, version: str) -> None:
            metrics.reloads.inc()
            metrics.model_info.clear()
            metrics.model_info.labels(cfg.model_name, version).set(1)
            log.info("model swapped", extra={"previous": previous, "model_version": version})

        def on_error() -> None:
            metrics.registry_errors.inc()

        def on_load_error(version: str) -> None:
            metrics.model_load_failures.labels(version).inc()

        audit = (AliasAudit(warehouse, cfg.model_name, metrics.alias_unexplained,
                            cfg.db_timeouts())
                 if warehouse and cfg.model_alias == CHAMPION else None)
        holder = ModelHolder(cfg.tracking_uri(), cfg.model_name, cfg.model_alias,
                             on_reload=on_reload, on_error=on_error,
                             on_load_error=on_load_error, on_check=audit)
        app.state.holder = holder
        # up again as soon as an alias check succeeds, with or without a swap
        metrics.registry_up.set_function(lambda: 0.0 if holder.last_error else 1.0)
        decisions = None
        if cfg.decision_log_enabled and warehouse:
            decisions = DecisionLog(
                warehouse, flush_interval_s=cfg.decision_log_flush_interval_s,
                batch_rows=cfg.decision_log_batch_rows,
                max_pending=cfg.decision_log_max_pending,
                retry_max_s=cfg.decision_log_retry_max_s, timeouts=cfg.db_timeouts(),
                on_written=metrics.decisions_logged.inc,
                on_dropped=lambda reason, n: metrics.decisions_dropped.labels(reason).inc(n))
            metrics.decisions_pending.set_function(decisions.pending)
            decisions.start()
        app.state.decision_log = decisions
        app.state.batcher = MicroBatcher(on_batch=metrics.observe_microbatch)
        app.state.fast_predict = True  # False: every /predict through FastAPI (tests)
        app.state.shadow = _shadow_sampler(app, cfg, decisions)
        # A slow or hanging registry must not hold the process out of service forever:
        # past the timeout the app starts unready and the load finishes in the background.
        first = asyncio.ensure_future(asyncio.to_thread(holder.refresh))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(first), cfg.startup_load_timeout_s)
        followers = [asyncio.create_task(h.follow(cfg.reload_interval_s))
                     for h in (holder, getattr(app.state.shadow, "challenger", None)) if h]
        try:
            yield
        finally:
            for follower in followers:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            if app.state.shadow is not None:
                await asyncio.to_thread(app.state.shadow.close)
            if audit is not None:
                audit.close()
            if decisions is not None:
                await asyncio.to_thread(decisions.close)
            if app.state.store is not None:
                app.state.store.close()

    # Swagger UI at /docs and ReDoc at /redoc from assets the API serves itself
    app = FastAPIOffline(
        static_url="/docs-static",
        title="creditrisk scoring API",
        version="1",
        description="Real-time BNPL credit decisions from the MLflow champion model.",
        lifespan=lifespan,
    )

    def openapi() -> dict[str, Any]:
        # The batch cap is configuration: state it in the schema a client reads.
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            cfg = getattr(app.state, "settings", None) or settings
            if cfg is not None:
                items = schema["components"]["schemas"]["BatchRequest"]["properties"]["items"]
                items["maxItems"] = cfg.batch_cap
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(_BodyLimit)
    # /predict first: the router tries routes in order, and it is the hot path
    app.include_router(predict.router)
    app.include_router(root.router)
    app.include_router(health.router)
    app.include_router(model.router)

    # well-formed POST /predict calls are answered below FastAPI (serving/fastpath.py)
    app.add_middleware(PredictFastPath)
    app.add_middleware(RequestTimeout)  # inside the envelope: its 503 is tagged and counted
    app.add_middleware(_Envelope)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Name the field and the problem; never echo the submitted values back.
        errors = [{"field": _field(e.get("loc", ())), "error": e.get("msg", "invalid")}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors, "request_id": request.state.request_id},
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.detail, "request_id": getattr(request.state, "request_id", None)},
            status_code=exc.status_code, headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None)
        log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
        return JSONResponse({"detail": "internal error", "request_id": request_id},
                            status_code=500)

    return app


app = create_app()
