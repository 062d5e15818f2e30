"""``/``: a browser that opens the API's address lands on its documentation."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

router = APIRouter()


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    """Redirect to the interactive OpenAPI docs (no key: the docs are public)."""
    return RedirectResponse("/docs", status_code=307)
