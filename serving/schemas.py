"""Request and response bodies of the HTTP contract (never ORM rows)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from creditrisk.features import FEATURE_NAMES
from creditrisk.schema import PRODUCT_CATEGORIES


class PredictRequest(BaseModel):
    """One checkout: a customer id (features looked up) and/or explicit features."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str | None = Field(default=None, min_length=1, max_length=64,
                                    pattern=r"^[A-Za-z0-9_\-]+$")
    features: dict[str, float] | None = Field(
        default=None, description="Every catalogue feature by name (see /model/info)."
    )
    amount: float | None = Field(default=None, ge=0, le=1e9, description="Basket amount, UGX")
    product_category: Literal[PRODUCT_CATEGORIES] | None = None  # type: ignore[valid-type]

    @field_validator("features")
    @classmethod
    def _exact_features(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return value
        missing = [f for f in FEATURE_NAMES if f not in value]
        extra = [f for f in value if f not in FEATURE_NAMES]
        if missing:
            raise ValueError(f"missing features: {', '.join(missing[:5])}"
                             + (" ..." if len(missing) > 5 else ""))
        if extra:
            raise ValueError(f"unknown features: {', '.join(sorted(extra)[:5])}")
        bad = [k for k, v in value.items() if not math.isfinite(v)]
        if bad:
            raise ValueError(f"features must be finite numbers: {', '.join(bad[:5])}")
        return value

    @model_validator(mode="after")
    def _something_to_score(self) -> PredictRequest:
        if self.customer_id is None and self.features is None:
            raise ValueError("give customer_id or features")
        return self


class ReasonCode(BaseModel):
    code: str
    text: str
    feature: str | None = None
    contribution: float | None = None


class PredictResponse(BaseModel):
    customer_id: str | None
    probability_of_default: float | None
    credit_score: int | None
    risk_band: str
    decision: Literal["APPROVE", "REVIEW", "DECLINE"]
    recommended_limit: float
    recommended_term_days: int
    reason_codes: list[ReasonCode]
    model_name: str
    model_version: str
    features_as_of: str | None = Field(description="as-of date of looked-up features")
    thin_file: bool
    request_id: str
    latency_ms: float


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[PredictRequest] = Field(min_length=1)


class BatchItem(BaseModel):
    ok: bool
    result: PredictResponse | None = None
    error: str | None = None


class BatchResponse(BaseModel):
    results: list[BatchItem]
    model_name: str
    model_version: str
    processing_time_ms: float
    request_id: str


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str
    run_id: str
    candidate: str | None
    trained_as_of: str | None
    metrics: dict[str, float]
    features: list[dict[str, str]]
    loaded_at: str


class Ready(BaseModel):
    ready: bool
    model_version: str | None
    reasons: list[str]
