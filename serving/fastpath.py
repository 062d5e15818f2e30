"""``POST /predict`` served below FastAPI: the checkout's hot path as pure ASGI.

Measured here (``benchmarks/serving.py``, 2 cores): a FastAPI endpoint that only checks
a key, parses a two-field body and answers costs about 230 us of server CPU per request;
the same endpoint as a bare ASGI callable on the same uvicorn costs about 50 us. The
difference is FastAPI's and Starlette's per-request machinery (routing, the Request
object, dependency resolution, the body's JSON, the response classes), paid before and
after any work of ours. This middleware answers a well-formed, authorised ``/predict``
call itself, with the route's own pieces:

* the same body parsing as FastAPI (``json.loads`` of the bytes, then the
  ``PredictRequest`` model, so the same bodies are accepted);
* the same key check and rate limit (:func:`serving.deps.authorize`), before anything
  is scored, and the same model lookup;
* the same answer (:func:`serving.routes.predict.answer_predict`), bytes and headers.

Anything else goes to FastAPI untouched, with the body replayed: another method or
path, no ``Content-Length`` (a chunked body: the size limit counts it there), a content
type other than JSON, and any body that does not parse or validate, so every 4xx about
the body (and its order after the key check) is FastAPI's own. A refused key, a missing
model or a failed scoring is answered here exactly as the app's handler answers the
same ``HTTPException`` (a test compares both paths, byte for byte, over every case).
It sits inside the envelope and the request timeout: ids, logs, metrics and the
timeout apply as to any route.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from serving.deps import authorize
from serving.routes.predict import answer_predict
from serving.schemas import PredictRequest

PATH = "/predict"
_JSON = (b"application/json", b"application/json; charset=utf-8")


class PredictFastPath:
    """Pure ASGI: answer well-formed ``POST /predict`` calls; pass the rest to ``app``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._route: Any = None

    def route(self, scope: Any) -> Any:
        """The ``/predict`` APIRoute (the metrics and the log label requests by it)."""
        if self._route is None:
            self._route = next(r for r in scope["app"].routes
                               if getattr(r, "path", None) == PATH
                               and "POST" in getattr(r, "methods", ()))
        return self._route

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST"
                or not scope["app"].state.fast_predict):
            await self.app(scope, receive, send)
            return
        length = content_type = key = None
        for name, value in scope["headers"]:  # one pass over the headers
            if name == b"content-length":
                length = value
            elif name == b"content-type":
                content_type = value
            elif name == b"x-api-key" and key is None:  # the first, as request.headers
                key = value.decode("latin-1")
        if length is None or content_type is None or content_type.lower() not in _JSON:
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        try:
            body = PredictRequest.model_validate(json.loads(raw))
        except Exception:  # FastAPI answers it: 401 first without a key, else its 4xx
            await self.app(scope, _replay(raw, receive), send)
            return
        scope["route"] = self.route(scope)
        state = scope["state"]
        app_state = scope["app"].state
        try:
            client = scope.get("client")
            authorize(app_state, client[0] if client else "unknown", key)
            model = app_state.holder.current
            if model is None:
                raise StarletteHTTPException(503, "no model loaded yet")
            answer = await answer_predict(app_state, state, body, model)
        except StarletteHTTPException as exc:  # as the app's http_error handler answers
            refused = JSONResponse({"detail": exc.detail, "request_id": state["request_id"]},
                                   status_code=exc.status_code,
                                   headers=getattr(exc, "headers", None))
            await refused(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-length", str(len(answer)).encode()),
            (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})


def _replay(raw: bytes, receive: Any) -> Any:
    """``receive`` that gives the body already read once, then the client's messages."""
    sent = False

    async def replayed() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replayed
