"""The framework's ceiling for ``benchmarks/serving.py``: a minimal FastAPI app.

It does what any authenticated JSON endpoint must and nothing else: checks an
``X-API-Key`` (constant-time, against ``CREDITRISK_API_KEYS``), parses a pydantic body
with a customer id and an amount, and answers a JSON body of ``HELLO_BODY_BYTES`` bytes
(the benchmark sets it to the size of the API's own ``/predict`` answer). No model, no
features, no logging, no metrics. Served by the same ``uvicorn`` command line as the API:
``uvicorn --app-dir benchmarks _hello_app:app``.
"""

from __future__ import annotations

import hmac
import os
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel, ConfigDict, Field

KEYS = [k.strip().encode() for k in os.environ.get("CREDITRISK_API_KEYS", "").split(",")
        if k.strip()]
SIZE = int(os.environ.get("HELLO_BODY_BYTES", "512"))

app = FastAPI()


class Checkout(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    customer_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    amount: float | None = Field(default=None, ge=0, le=1e9, allow_inf_nan=False)


async def api_key(x_api_key: Annotated[str | None, Header()] = None) -> str:
    given = (x_api_key or "").encode()
    ok = False
    for key in KEYS:
        ok |= hmac.compare_digest(given, key)
    if not ok:
        raise HTTPException(status_code=401, detail="missing or invalid X-API-Key")
    return x_api_key or ""


def _padding(customer_id: str) -> str:
    """Filler so that the answer's JSON is SIZE bytes for this customer id."""
    # {"customer_id":"<id>","amount":null,"padding":"<pad>"} as FastAPI serialises it
    fixed = len('{"customer_id":"","amount":null,"padding":""}') + len(customer_id)
    return "x" * max(0, SIZE - fixed)


@app.post("/predict")
async def predict(body: Checkout, _key: Annotated[str, Depends(api_key)]) -> dict:
    return {"customer_id": body.customer_id, "amount": body.amount,
            "padding": _padding(body.customer_id)}
