"""The request timeout: a request not answered in ``CREDITRISK_REQUEST_TIMEOUT_S`` gets a 503.

Pure ASGI, inside the envelope (so the 503 carries the request id and is counted and
logged like any answer). The handler runs as a task; when the time is up before it
started its response, the client gets a JSON 503 at once and the task is cancelled
without waiting for it: a sync endpoint or an ``asyncio.to_thread`` call runs in a
thread, which no cancellation can stop, and waiting for it is the hang this bounds.
The thread finishes on its own (every wait of the API has its own bound: the
warehouse's connect and statement timeouts, the registry's HTTP timeout), and its
late answer is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi.responses import JSONResponse

log = logging.getLogger("serving.timeout")


def _reap(task: asyncio.Task[Any]) -> None:
    """Collect an abandoned handler's outcome, so no error goes unretrieved."""
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


class RequestTimeout:
    """Answer 503 when the app has not started its response within the timeout.

    ``timeout_s`` is fixed when given; otherwise it is read per request from
    ``app.state.settings.request_timeout_s`` (set by the lifespan).
    """

    def __init__(self, app: Any, timeout_s: float | None = None) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.timeout_s or scope["app"].state.settings.request_timeout_s
        started = timed_out = False

        async def guarded(message: Any) -> None:
            nonlocal started
            if timed_out:
                return  # the client has had its 503
            started = started or message["type"] == "http.response.start"
            await send(message)

        # asyncio.wait({task}, timeout=limit), without its sets and per-call bookkeeping
        # (every request pays this): one future, woken by the task or by the timer
        loop = asyncio.get_running_loop()
        task = loop.create_task(self.app(scope, receive, guarded))
        waiter = loop.create_future()

        def wake(_: Any = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        task.add_done_callback(wake)
        timer = loop.call_later(limit, wake)
        try:
            await waiter
        finally:
            timer.cancel()
        if task.done() or started:
            await task  # finished, or already answering: let it complete
            return
        timed_out = True
        task.cancel()
        task.add_done_callback(_reap)
        request_id = scope.get("state", {}).get("request_id")
        log.warning("request timed out", extra={"request_id": request_id,
                                                "timeout_s": limit, "path": scope.get("path")})
        answer = JSONResponse(
            {"detail": f"request not answered within {limit:g} s: try again",
             "request_id": request_id},
            status_code=503, headers={"Retry-After": "1"})
        await answer(scope, receive, send)
