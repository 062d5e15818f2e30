"""Process settings: one pydantic-settings object, read from the environment.

Importing this module reads nothing and creates nothing; call :func:`get_settings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from creditrisk.errors import InputError


@dataclass(frozen=True)
class DbTimeouts:
    """Bounds on every warehouse connection, in seconds (0 switches one off).

    ``connect_s`` is libpq's ``connect_timeout`` (client side, per host address; libpq
    treats 1 as 2); the others are set as PostgreSQL session settings on each connection,
    so the server enforces them whatever the client does.
    """

    connect_s: int
    statement_s: float
    lock_s: float
    idle_in_transaction_s: float

    def server_options(self) -> str:
        """The libpq ``options`` string: ``-c name=milliseconds`` for each server bound."""
        bounds = (("statement_timeout", self.statement_s), ("lock_timeout", self.lock_s),
                  ("idle_in_transaction_session_timeout", self.idle_in_transaction_s))
        return " ".join(f"-c {name}={round(value * 1000)}" for name, value in bounds)


@dataclass(frozen=True)
class MlflowHttpBounds:
    """MLflow client retries and timeouts (MLflow's env vars take integers).

    A request to a registry that accepts the connection and never answers costs
    ``timeout_s`` per attempt, ``retries + 1`` attempts, with urllib3 2.x's backoff
    between them: nothing before the first retry, then ``backoff_factor * 2**(n - 1)``
    plus up to ``backoff_jitter`` seconds before retry ``n``. The defaults (2 retries,
    factor 1, jitter 0.5, 5 s): 3 x 5 + 2 + 0.5 = 17.5 s against a peer that accepts and
    never answers; 32.5 s if every connect also nearly timed out.
    """

    retries: int
    backoff_factor: int
    backoff_jitter: float
    timeout_s: int

    def worst_case_s(self, *, slow_connect: bool = False) -> float:
        """Seconds one failing MLflow call can take; ``slow_connect`` adds a connect phase
        that itself nearly times out on every attempt (requests bounds connect and read
        separately)."""
        per_attempt = self.timeout_s * (2 if slow_connect else 1)
        backoff = sum(self.backoff_factor * 2 ** (n - 1) for n in range(2, self.retries + 1))
        jitter = max(0, self.retries - 1) * self.backoff_jitter
        return (self.retries + 1) * per_attempt + backoff + jitter


class Settings(BaseSettings):
    """Everything a process of the platform is configured with.

    Names are the environment variables of ARCHITECTURE.md; the local runner and
    the compose stack set the same names.
    """

    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", populate_by_name=True, frozen=True
    )

    env: Literal["dev", "test", "prod"] = Field(
        default="dev",
        validation_alias=AliasChoices("CREDITRISK_ENV", "env"),
        description="dev/test allow placeholder secrets; prod refuses them.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="SQLAlchemy URL of the warehouse database (a secret: it may hold the "
                    "password); read it with require_database_url() or warehouse_url().",
    )
    mlflow_tracking_uri: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "mlflow_tracking_uri"),
        description="MLflow tracking server (or store) URI (a secret: a store URI or "
                    "https://user:<password>@ may hold credentials); read it with tracking_uri().",
    )
    # MLflow identities, one per role (docs/operations.md, "Registry trust"): the trainer
    # registers versions and moves aliases, the reader (API, batch scoring) only reads, the
    # admin only provisions users. A role whose password is unset leaves MLflow's own
    # MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (or none) in force.
    mlflow_reader_username: str = Field(
        default="reader",
        validation_alias=AliasChoices("CREDITRISK_MLFLOW_READER_USERNAME",
                                      "mlflow_reader_username"),
        description="MLflow user of the API and batch scoring (READ only).",
    )
    mlflow_reader_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("CREDITRISK_MLFLOW_READER_PASSWORD",
                                      "mlflow_reader_password"),
        description="Password of the reader MLflow user.",
    )
    mlflow_trainer_username: str = Field(
        default="trainer",
        validation_alias=AliasChoices("CREDITRISK_MLFLOW_TRAINER_USERNAME",
                                      "mlflow_trainer_username"),
        description="MLflow user of training and promotion (owns the experiment and model).",
    )
    mlflow_trainer_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("CREDITRISK_MLFLOW_TRAINER_PASSWORD",
                                      "mlflow_trainer_password"),
        description="Password of the trainer MLflow user.",
    )
    mlflow_admin_username: str = Field(
        default="admin",
        validation_alias=AliasChoices("CREDITRISK_MLFLOW_ADMIN_USERNAME",
                                      "mlflow_admin_username"),
        description="MLflow admin: creates the other users (creditrisk registry init only).",
    )
    mlflow_admin_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("CREDITRISK_MLFLOW_ADMIN_PASSWORD",
                                      "mlflow_admin_password"),
        description="Password of the MLflow admin (give it to no long-running service).",
    )
    model_name: str = Field(
        default="credit-risk-pd",
        validation_alias=AliasChoices("CREDITRISK_MODEL_NAME", "model_name"),
        description="Registered model name in the MLflow registry.",
    )
    model_alias: str = Field(
        default="champion",
        validation_alias=AliasChoices("CREDITRISK_MODEL_ALIAS", "model_alias"),
        description="Registry alias that batch scoring and the API load.",
    )
    landing_dir: Path = Field(
        default=Path("landing"),
        validation_alias=AliasChoices("CREDITRISK_LANDING_DIR", "landing_dir"),
        description="Folder that receives the daily Xente CSV drops.",
    )
    quarantine_threshold: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        validation_alias=AliasChoices("CREDITRISK_QUARANTINE_THRESHOLD", "quarantine_threshold"),
        description="Largest share of a file's rows that may be quarantined before it fails.",
    )
    ingest_batch_mb: int = Field(
        default=256,
        ge=1,
        validation_alias=AliasChoices("CREDITRISK_INGEST_BATCH_MB", "ingest_batch_mb"),
        description="Landing CSV (MB) an ingestion run reads, validates and loads at a time: "
                    "bounds its memory on a long backfill.",
    )
    api_keys: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("CREDITRISK_API_KEYS", "api_keys"),
        description="Comma-separated API keys accepted by the serving API.",
    )

    alert_webhook_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("CREDITRISK_ALERT_WEBHOOK_URL", "alert_webhook_url"),
        description="Slack-compatible incoming-webhook URL for operator alerts (a secret).",
    )

    db_connect_timeout_s: int = Field(
        default=10, ge=0,
        validation_alias=AliasChoices("CREDITRISK_DB_CONNECT_TIMEOUT_S", "db_connect_timeout_s"),
        description="libpq connect_timeout: longest wait to open a warehouse connection.",
    )
    db_statement_timeout_s: float = Field(
        default=600.0, ge=0,
        validation_alias=AliasChoices("CREDITRISK_DB_STATEMENT_TIMEOUT_S",
                                      "db_statement_timeout_s"),
        description="statement_timeout: ~10x the whole measured 1M-row scoring job (65 s).",
    )
    db_lock_timeout_s: float = Field(
        default=60.0, ge=0,
        validation_alias=AliasChoices("CREDITRISK_DB_LOCK_TIMEOUT_S", "db_lock_timeout_s"),
        description="lock_timeout: longest wait for a lock, advisory locks included.",
    )
    db_idle_in_transaction_timeout_s: float = Field(
        default=600.0, ge=0,
        validation_alias=AliasChoices("CREDITRISK_DB_IDLE_IN_TRANSACTION_TIMEOUT_S",
                                      "db_idle_in_transaction_timeout_s"),
        description="idle_in_transaction_session_timeout: a stuck client's locks are freed.",
    )
    mlflow_http_retries: int = Field(
        default=2, ge=0, le=10,
        validation_alias=AliasChoices("CREDITRISK_MLFLOW_HTTP_RETRIES", "mlflow_http_retries"),
        description="Retries of one MLflow HTTP request (MLflow's default is 7).",
    )
    mlflow_http_backoff_factor: int = Field(
        default=1, ge=0,
        validation_alias=AliasChoices("CREDITRISK_MLFLOW_HTTP_BACKOFF_FACTOR",
                                      "mlflow_http_backoff_factor"),
        description="urllib3 backoff factor between MLflow retries (MLflow's default is 2).",
    )
    mlflow_http_backoff_jitter: float = Field(
        default=0.5, ge=0,
        validation_alias=AliasChoices("CREDITRISK_MLFLOW_HTTP_BACKOFF_JITTER",
                                      "mlflow_http_backoff_jitter"),
        description="Random seconds (at most) added to each MLflow backoff.",
    )
    mlflow_http_timeout_s: int = Field(
        default=5, ge=1,
        validation_alias=AliasChoices("CREDITRISK_MLFLOW_HTTP_TIMEOUT_S", "mlflow_http_timeout_s"),
        description="Connect and read timeout of one MLflow request (MLflow's default is 120).",
    )

    def db_timeouts(self) -> DbTimeouts:
        """The bounds every warehouse connection of this process is opened with."""
        return DbTimeouts(self.db_connect_timeout_s, self.db_statement_timeout_s,
                          self.db_lock_timeout_s, self.db_idle_in_transaction_timeout_s)

    def mlflow_http_bounds(self) -> MlflowHttpBounds:
        """The MLflow client's retries and timeouts for this process."""
        return MlflowHttpBounds(self.mlflow_http_retries, self.mlflow_http_backoff_factor,
                                self.mlflow_http_backoff_jitter, self.mlflow_http_timeout_s)

    def require_database_url(self) -> str:
        """Return the warehouse URL or raise a one-line error saying how to set it."""
        url = self.warehouse_url()
        if not url:
            raise InputError(
                "DATABASE_URL is not set: export it (e.g. postgresql://user@host/db) "
                "or run through ./platform, which sets it"
            )
        return url

    def warehouse_url(self) -> str | None:
        """The warehouse URL as plain text (for an engine), or None when it is not set."""
        return _plain(self.database_url)

    def tracking_uri(self) -> str | None:
        """The MLflow tracking URI as plain text (for the client), or None when not set."""
        return _plain(self.mlflow_tracking_uri)

    def mlflow_credentials(self, role: Literal["reader", "trainer", "admin"]
                           ) -> tuple[str, str] | None:
        """The MLflow (username, password) of ``role``, or None when its password is unset."""
        password = getattr(self, f"mlflow_{role}_password")
        if password is None or not password.get_secret_value():
            return None
        return str(getattr(self, f"mlflow_{role}_username")), password.get_secret_value()

    def api_key_list(self) -> list[str]:
        """The configured API keys, split and stripped; empty when none are set."""
        if self.api_keys is None:
            return []
        return [k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()]


def _plain(secret: SecretStr | None) -> str | None:
    if secret is None:
        return None
    return secret.get_secret_value() or None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first call."""
    return Settings()
