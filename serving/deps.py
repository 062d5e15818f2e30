"""Dependencies of the route handlers, as Annotated aliases (one place).

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in the thread
pool, and four such hops per request cost more than the scoring itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from serving.features import FeatureStore
from serving.model import LoadedModel
from serving.schemas import ErrorResponse, ValidationErrorResponse
from serving.security import KeyChecker

# Declares the key in the OpenAPI document (securitySchemes); the check is ours below.
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                               description="One of CREDITRISK_API_KEYS")

# Every answer a route can give besides its 200, for the OpenAPI `responses`.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid X-API-Key"},
    429: {"model": ErrorResponse, "description": "Over the key's rate limit (a batch of n"
          " items costs n), or too many invalid keys from this address (Retry-After)"},
}
MODEL_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    503: {"model": ErrorResponse, "description": "No model loaded yet, or cannot score"},
}
BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    **MODEL_RESPONSES,
    400: {"model": ErrorResponse, "description": "Body is not parseable (e.g. not UTF-8)"},
    413: {"model": ErrorResponse, "description": "Body over CREDITRISK_MAX_BODY_BYTES"},
    422: {"model": ValidationErrorResponse, "description": "Invalid body: the fields named"},
}


def _state(request: Request) -> Any:
    return request.app.state


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": f"{max(1, min(3600, round(min(seconds, 3600))))}"}


def client_address(request: Request) -> str:
    """The peer's address (behind a proxy: uvicorn's ``--proxy-headers`` sets it)."""
    return request.client.host if request.client else "unknown"


async def require_key(
    request: Request, key: Annotated[str | None, Security(_api_key_header)] = None,
) -> str:
    """401 without a valid X-API-Key; 429 over the key's rate limit, or from an address
    that spent its failed-key budget (its keys are then not even checked)."""
    return check_key(request, key)


def check_key(request: Request, key: str | None) -> str:
    """:func:`require_key`'s checks, callable without FastAPI's dependency machinery."""
    return authorize(_state(request), client_address(request), key)


def authorize(state: Any, address: str, key: str | None) -> str:
    """The key checks of a request from ``address``, against the app's ``state``: the
    key's fingerprint, or the 401/429 ``HTTPException``."""
    locked = state.auth_failures.blocked(address)
    if locked:
        raise HTTPException(status_code=429, detail="too many invalid API keys from this"
                            " address", headers=_retry_after(locked))
    if key is None or not state.keys.valid(key):
        state.auth_failures.allow(address)
        raise HTTPException(status_code=401, detail="missing or invalid X-API-Key",
                            headers={"WWW-Authenticate": "ApiKey"})
    tag = KeyChecker.fingerprint(key)
    _charge(state, tag, 1)
    return tag


def charge(request: Request, key_tag: str, cost: int, paid: int = 0) -> None:
    """Spend ``cost - paid`` more decisions of the key's rate limit, or raise 429 (and
    spend nothing more). A ``cost`` the bucket can never hold is refused as such."""
    _charge(_state(request), key_tag, cost, paid)


def _charge(state: Any, key_tag: str, cost: int, paid: int = 0) -> None:
    limiter = state.limiter
    if cost > limiter.capacity:
        raise HTTPException(status_code=429, headers=_retry_after(60), detail=(
            f"{cost} items is more than this key's rate limit allows at once"
            f" ({limiter.capacity:.0f} per minute): send smaller batches"))
    if cost - paid <= 0:
        return
    ok, retry = limiter.allow(key_tag, cost - paid)
    if not ok:
        raise HTTPException(status_code=429, detail="rate limit exceeded for this key",
                            headers=_retry_after(retry))


async def current_model(request: Request) -> LoadedModel:
    """The loaded model, taken once per request; 503 before the first load."""
    model = _state(request).holder.current
    if model is None:
        raise HTTPException(status_code=503, detail="no model loaded yet")
    return model


async def keyed_model(request: Request) -> LoadedModel:
    """The key check, then the model: ``/predict``'s one dependency.

    The hot path resolves one dependency instead of three (the key, its header scheme,
    the model): each costs FastAPI about 20 us. The key is still checked before the body
    is validated, so a caller without a key learns nothing about the schema (FastAPI
    decodes the JSON first: a body that is not JSON is a 422 even without a key, as it
    always was). The route declares the scheme in its OpenAPI ``security`` itself
    (:data:`KEY_SECURITY`).
    """
    check_key(request, request.headers.get("x-api-key"))
    return await current_model(request)


#: the OpenAPI security requirement of a route that checks the key by hand
KEY_SECURITY: dict[str, Any] = {"security": [{"APIKeyHeader": []}]}


async def feature_store(request: Request) -> FeatureStore | None:
    return _state(request).store


async def policy(request: Request) -> dict[str, Any]:
    return _state(request).policy


KeyDep = Annotated[str, Depends(require_key)]
ModelDep = Annotated[LoadedModel, Depends(current_model)]
KeyedModelDep = Annotated[LoadedModel, Depends(keyed_model)]
StoreDep = Annotated[FeatureStore | None, Depends(feature_store)]
PolicyDep = Annotated[dict[str, Any], Depends(policy)]
