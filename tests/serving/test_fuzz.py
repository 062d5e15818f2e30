"""Schemathesis (v4) against the app's own OpenAPI document, every route, a valid key.

The app runs its real lifespan (a champion from the real registry, the real warehouse);
schemathesis reaches it in-process over ASGI. Every default check of schemathesis runs
on every answer: no 5xx (``not_a_server_error``), every status code and body documented
(``status_code_conformance``, ``response_schema_conformance``, content type and
headers), bodies valid by the schema accepted (``positive_data_acceptance``), invalid
ones refused with a 4xx (``negative_data_rejection``), and the key actually enforced
(``ignored_auth``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.responses import JSONResponse
from hypothesis import HealthCheck, settings

from serving.app import create_app
from serving.settings import ServingSettings
from tests.serving.conftest import API_KEY, HEADERS, World, serve, settings_for

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 30  # per operation and generation phase: the file stays well under a minute
BATCH_CAP = 25


class _Proxy:
    """The ASGI app schemathesis calls: HTTP goes to the app the fixture is serving.

    Built at import (schemathesis' pytest loader needs the schema then; its lazy
    ``from_fixture`` loader does not run on pytest 9), when it serves the OpenAPI
    document of an app configured like the fixture's. Lifespan events are answered
    here: the served app's lifespan is the TestClient's, and schemathesis would
    otherwise run a second one (a second model load and decision-log writer) and keep
    it running for the rest of the session.
    """

    def __init__(self) -> None:
        # building the document connects nothing: no lifespan needed for it
        self.document = create_app(ServingSettings(api_keys=API_KEY,
                                                   batch_cap=BATCH_CAP)).openapi()
        self.target: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if self.target is None:
            assert scope["path"] == "/openapi.json", "no app served"
            await JSONResponse(self.document)(scope, receive, send)
            return
        await self.target(scope, receive, send)


PROXY = _Proxy()
schema = schemathesis.openapi.from_asgi("/openapi.json", PROXY)


@pytest.fixture(scope="module")
def served(world: World) -> Iterator[None]:
    """The real app (champion, warehouse) behind the proxy for this module."""
    with serve(settings_for(world, batch_cap=BATCH_CAP), raise_server_exceptions=False) as client:
        PROXY.target = client.app
        try:
            yield
        finally:
            PROXY.target = None


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_api_conforms_to_its_schema_and_never_fails(
    served: None, case: schemathesis.Case
) -> None:
    case.call_and_validate(headers=HEADERS)
