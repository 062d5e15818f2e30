"""Settings of the API process: the platform's settings plus the serving knobs."""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field, model_validator

from creditrisk.config import Settings

PLACEHOLDER_KEYS = {"", "changeme", "change-me", "dev-key", "test", "secret"}


class ServingSettings(Settings):
    """One object per API process, from the environment."""

    reload_interval_s: float = Field(
        default=30.0, gt=0, validation_alias=AliasChoices("CREDITRISK_RELOAD_INTERVAL_S"),
        description="How often the champion alias is re-checked.",
    )
    startup_load_timeout_s: float = Field(
        default=60.0, gt=0, validation_alias=AliasChoices("CREDITRISK_STARTUP_LOAD_TIMEOUT_S"),
        description="How long start-up waits for the first model load before serving unready.",
    )
    feature_cache_ttl_s: float = Field(
        default=60.0, ge=0, validation_alias=AliasChoices("CREDITRISK_FEATURE_CACHE_TTL_S"),
    )
    feature_cache_size: int = Field(
        default=100_000, ge=0, validation_alias=AliasChoices("CREDITRISK_FEATURE_CACHE_SIZE"),
    )
    batch_cap: int = Field(
        default=1000, ge=1, validation_alias=AliasChoices("CREDITRISK_BATCH_CAP"),
    )
    rate_limit_per_minute: int = Field(
        default=30_000, ge=1, validation_alias=AliasChoices("CREDITRISK_RATE_LIMIT_PER_MINUTE"),
        description="Decisions per minute per API key and process (a batch of n items"
                    " costs n; a minute's worth may be spent at once). See docs/api.md.",
    )
    auth_failures_per_minute: int = Field(
        default=30, ge=1, validation_alias=AliasChoices("CREDITRISK_AUTH_FAILURES_PER_MINUTE"),
        description="Missing or invalid API keys per minute per client address and"
                    " process; past it the address gets 429 without its keys being checked.",
    )
    max_body_bytes: int = Field(
        default=1_000_000, ge=1024, validation_alias=AliasChoices("CREDITRISK_MAX_BODY_BYTES"),
    )
    decision_log_enabled: bool = Field(
        default=True, validation_alias=AliasChoices("CREDITRISK_DECISION_LOG_ENABLED"),
        description="Write every decision to decision_log (needs DATABASE_URL).",
    )
    decision_log_flush_interval_s: float = Field(
        default=0.2, gt=0,
        validation_alias=AliasChoices("CREDITRISK_DECISION_LOG_FLUSH_INTERVAL_S"),
        description="How often queued decisions are written.",
    )
    decision_log_batch_rows: int = Field(
        default=500, ge=1, validation_alias=AliasChoices("CREDITRISK_DECISION_LOG_BATCH_ROWS"),
        description="Rows per write; a full batch is written without waiting.",
    )
    decision_log_max_pending: int = Field(
        default=100_000, ge=1,
        validation_alias=AliasChoices("CREDITRISK_DECISION_LOG_MAX_PENDING"),
        description="Most rows queued for decision_log; a decision beyond it is dropped"
                    " (counted as queue_full) instead of growing the queue.",
    )
    decision_log_retry_max_s: float = Field(
        default=30.0, gt=0,
        validation_alias=AliasChoices("CREDITRISK_DECISION_LOG_RETRY_MAX_S"),
        description="Longest wait between failed decision_log writes (the backoff doubles"
                    " from the flush interval up to this; a success resets it).",
    )

    shadow_sample: float = Field(
        default=0.0, ge=0.0, le=1.0, validation_alias=AliasChoices("CREDITRISK_SHADOW_SAMPLE"),
        description="Share of /predict calls also scored by the challenger, off the request"
                    " path, into decision_log as shadow rows (0: none; see docs/api.md).",
    )
    shadow_queue_size: int = Field(
        default=1000, ge=1, validation_alias=AliasChoices("CREDITRISK_SHADOW_QUEUE_SIZE"),
        description="Most sampled calls waiting for the challenger; a sample beyond it is"
                    " dropped (creditrisk_shadow_total{outcome=\"queue_full\"}).",
    )
    shadow_batch_max: int = Field(
        default=256, ge=1, validation_alias=AliasChoices("CREDITRISK_SHADOW_BATCH_MAX"),
        description="Most sampled calls the challenger scores in one call.",
    )
    shadow_batch_wait_s: float = Field(
        default=0.2, ge=0.0, validation_alias=AliasChoices("CREDITRISK_SHADOW_BATCH_WAIT_S"),
        description="How long the shadow thread lets samples gather before one scoring call.",
    )

    request_timeout_s: float = Field(
        default=5.0, gt=0, validation_alias=AliasChoices("CREDITRISK_REQUEST_TIMEOUT_S"),
        description="A request not answered by then gets a 503 (see serving/timeout.py).",
    )
    # The warehouse bounds of the API: tighter than the batch jobs', and each under the
    # request timeout, so a hung warehouse costs a request one 503, not the whole budget.
    db_connect_timeout_s: int = Field(
        default=2, ge=0, validation_alias=AliasChoices("CREDITRISK_DB_CONNECT_TIMEOUT_S"),
        description="libpq connect_timeout in the API (libpq's minimum is 2 s).",
    )
    db_statement_timeout_s: float = Field(
        default=2.0, ge=0, validation_alias=AliasChoices("CREDITRISK_DB_STATEMENT_TIMEOUT_S"),
        description="statement_timeout in the API: a lookup is one indexed row.",
    )
    db_lock_timeout_s: float = Field(
        default=1.0, ge=0, validation_alias=AliasChoices("CREDITRISK_DB_LOCK_TIMEOUT_S"),
        description="lock_timeout in the API.",
    )
    db_idle_in_transaction_timeout_s: float = Field(
        default=10.0, ge=0,
        validation_alias=AliasChoices("CREDITRISK_DB_IDLE_IN_TRANSACTION_TIMEOUT_S"),
        description="idle_in_transaction_session_timeout in the API.",
    )

    @model_validator(mode="after")
    def _keys_required_outside_dev(self) -> ServingSettings:
        keys = self.api_key_list()
        if self.env == "prod" and (not keys or any(k.lower() in PLACEHOLDER_KEYS
                                                    or len(k) < 16 for k in keys)):
            raise ValueError(
                "CREDITRISK_API_KEYS must hold real keys (16+ characters) in prod"
            )
        return self


@lru_cache(maxsize=1)
def get_serving_settings() -> ServingSettings:
    """The process-wide serving settings."""
    return ServingSettings()
