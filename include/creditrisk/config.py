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
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="SQLAlchemy URL of the warehouse database.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "mlflow_tracking_uri"),
        description="MLflow tracking server (or store) URI.",
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
        if not self.database_url:
            raise InputError(
                "DATABASE_URL is not set: export it (e.g. postgresql://user@host/db) "
                "or run through ./platform, which sets it"
            )
        return self.database_url

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first call."""
    return Settings()
