"""Dependencies of the route handlers, as Annotated aliases (one place).

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in the thread
pool, and four such hops per request cost more than the scoring itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from serving.features import FeatureStore
from serving.model import LoadedModel
from serving.security import KeyChecker


def _state(request: Request) -> Any:
    return request.app.state


async def require_key(request: Request) -> str:
    """401 without a valid X-API-Key; 429 over the key's rate limit."""
    state = _state(request)
    key = request.headers.get("x-api-key")
    if not state.keys.valid(key):
        raise HTTPException(status_code=401, detail="missing or invalid X-API-Key",
                            headers={"WWW-Authenticate": "ApiKey"})
    assert key is not None
    ok, retry = state.limiter.allow(KeyChecker.fingerprint(key))
    if not ok:
        raise HTTPException(status_code=429, detail="rate limit exceeded for this key",
                            headers={"Retry-After": f"{max(1, round(retry))}"})
    return KeyChecker.fingerprint(key)


async def current_model(request: Request) -> LoadedModel:
    """The loaded model, taken once per request; 503 before the first load."""
    model = _state(request).holder.current
    if model is None:
        raise HTTPException(status_code=503, detail="no model loaded yet")
    return model


async def feature_store(request: Request) -> FeatureStore | None:
    return _state(request).store


async def policy(request: Request) -> dict[str, Any]:
    return _state(request).policy


KeyDep = Annotated[str, Depends(require_key)]
ModelDep = Annotated[LoadedModel, Depends(current_model)]
StoreDep = Annotated[FeatureStore | None, Depends(feature_store)]
PolicyDep = Annotated[dict[str, Any], Depends(policy)]
