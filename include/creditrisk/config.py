"""Process settings: one pydantic-settings object, read from the environment.

Importing this module reads nothing and creates nothing; call :func:`get_settings`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from creditrisk.errors import InputError


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
