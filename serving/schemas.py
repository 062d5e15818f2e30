"""Request and response bodies of the HTTP contract (never ORM rows)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, create_model, model_validator

from creditrisk.catalogue import CATALOGUE, FEATURE_NAMES
from creditrisk.schema import PRODUCT_CATEGORIES

# Plausible range of a feature by its unit: wide enough for any real customer, narrow
# enough that no input can overflow the model or the policy into a non-finite answer.
UNIT_RANGES: dict[str, tuple[float, float]] = {
    "days": (0.0, 36_500.0),
    "count": (0.0, 1e9),
    "UGX": (0.0, 1e13),
    "fraction": (0.0, 1.0),
    "log ratio": (-50.0, 50.0),
}
FEATURE_RANGES: dict[str, tuple[float, float]] = {f.name: UNIT_RANGES[f.unit]
                                                  for f in CATALOGUE}


class _FeaturesBase(BaseModel):
    # strict: a JSON true or "1.5" is not a number (lax mode would score them)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _exact_features(cls, value: Any) -> Any:
        # one error naming every missing/unknown/non-finite feature, on body.features
        if not isinstance(value, dict):
            return value
        missing = [f for f in FEATURE_NAMES if f not in value]
        extra = [f for f in value if f not in FEATURE_RANGES]
        if missing:
            raise ValueError(f"missing features: {', '.join(missing[:5])}"
                             + (" ..." if len(missing) > 5 else ""))
        if extra:
            raise ValueError(f"unknown features: {', '.join(sorted(map(str, extra))[:5])}")
        bad = [k for k, v in value.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise ValueError(f"features must be finite numbers: {', '.join(bad[:5])}")
        return value

    def row(self) -> list[float]:
        """The values in catalogue order."""
        return [getattr(self, f) for f in FEATURE_NAMES]


#: Every catalogue feature, required, each bounded by its unit's range (see /model/info).
Features: type[_FeaturesBase] = create_model(  # type: ignore[call-overload]
    "Features", __base__=_FeaturesBase,
    **{f.name: (float, Field(ge=FEATURE_RANGES[f.name][0], le=FEATURE_RANGES[f.name][1],
                             allow_inf_nan=False, description=f"{f.meaning} ({f.unit})"))
       for f in CATALOGUE},
)


class PredictRequest(BaseModel):
    """One checkout: a customer id (features looked up) and/or explicit features."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        # what _something_to_score checks, stated for clients and schema-driven tools
        "anyOf": [
            {"required": ["customer_id"], "properties": {"customer_id": {"type": "string"}}},
            {"required": ["features"], "properties": {"features": {"type": "object"}}},
        ],
        "examples": [
            {"customer_id": "CustomerId_4406", "amount": 2500.0,
             "product_category": "airtime"},
            {"customer_id": "CustomerId_4406"},
        ],
    })

    customer_id: str | None = Field(default=None, min_length=1, max_length=64,
                                    pattern=r"^[A-Za-z0-9_\-]+$")
    features: Features | None = Field(  # type: ignore[valid-type]
        default=None, description="Every catalogue feature by name (see /model/info)."
    )
    amount: float | None = Field(default=None, ge=0, le=1e9, allow_inf_nan=False,
                                 description="Basket amount, UGX")
    product_category: Literal[PRODUCT_CATEGORIES] | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _something_to_score(self) -> PredictRequest:
        if self.customer_id is None and self.features is None:
            raise ValueError("give customer_id or features")
        return self


class ReasonCode(BaseModel):
    code: str
    text: str
    feature: str | None = None
    #: the catalogue group of correlated features this reason stands for
    group: str | None = None
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
    """Several checkouts in one call; ``customers`` is accepted as another name of ``items``."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [
            {"items": [{"customer_id": "CustomerId_4406", "amount": 2500.0},
                       {"customer_id": "CustomerId_1234"}]},
        ],
    })

    # a client written from the original brief posts {"customers": [...]}
    items: list[PredictRequest] = Field(
        min_length=1, validation_alias=AliasChoices("items", "customers"),
        description="The checkouts to decide (also accepted as ``customers``).")


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


class FieldError(BaseModel):
    field: str = Field(description="Dotted location, e.g. body.items.1.amount")
    error: str


class ValidationErrorResponse(BaseModel):
    """422: every offending field by name; the submitted values are never echoed."""

    detail: list[FieldError]
    request_id: str | None


class ErrorResponse(BaseModel):
    detail: str
    request_id: str | None


class Ready(BaseModel):
    """Readiness. Without a key only the three booleans; with a valid key the details."""

    ready: bool = Field(description="A model is loaded: /predict can answer")
    model_loaded: bool
    warehouse_reachable: bool | None = Field(
        description="customer_id lookups work; null when no warehouse is configured."
                    " Inline features are answered either way")
    model_version: str | None = Field(default=None,
                                      description="Only with a valid X-API-Key")
    reasons: list[str] | None = Field(default=None, description="Only with a valid X-API-Key")
