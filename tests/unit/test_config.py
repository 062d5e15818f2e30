"""Settings come from the environment, under the names ARCHITECTURE.md promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from creditrisk.config import Settings
from creditrisk.errors import InputError


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "CREDITRISK_MODEL_NAME",
                "CREDITRISK_MODEL_ALIAS", "CREDITRISK_LANDING_DIR", "CREDITRISK_API_KEYS"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.model_name == "credit-risk-pd"
    assert s.model_alias == "champion"
    assert s.landing_dir == Path("landing")
    assert s.api_key_list() == []
    with pytest.raises(InputError, match="DATABASE_URL"):
        s.require_database_url()


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("CREDITRISK_MODEL_NAME", "pd-model")
    monkeypatch.setenv("CREDITRISK_MODEL_ALIAS", "challenger")
    monkeypatch.setenv("CREDITRISK_LANDING_DIR", "/data/landing")
    monkeypatch.setenv("CREDITRISK_API_KEYS", " k1, k2 ,,")
    s = Settings()
    assert s.require_database_url() == "postgresql://u@h/db"
    assert s.tracking_uri() == "http://127.0.0.1:5000"
    assert s.warehouse_url() == "postgresql://u@h/db"
    assert (s.model_name, s.model_alias) == ("pd-model", "challenger")
    assert s.landing_dir == Path("/data/landing")
    assert s.api_key_list() == ["k1", "k2"]
    assert "k1" not in repr(s)  # secrets never show in logs or reprs


DB_PASSWORD = "pw-db-5d1e0c"  # test-only secret
TRACKING_PASSWORD = "pw-mlflow-9b7a44"  # test-only secret
KEY = "key-0123456789abcdef-api"  # test-only secret


@pytest.mark.parametrize("which", ["core", "serving"])
def test_no_url_or_key_password_shows_in_repr_str_or_a_dump(
    monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    from serving.settings import ServingSettings

    db = f"postgresql://creditrisk:{DB_PASSWORD}@db:5432/warehouse"
    tracking = f"https://trainer:{TRACKING_PASSWORD}@mlflow.internal:5000"
    monkeypatch.setenv("DATABASE_URL", db)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    monkeypatch.setenv("CREDITRISK_API_KEYS", KEY)
    monkeypatch.setenv("CREDITRISK_ALERT_WEBHOOK_URL", f"https://hooks.example/{DB_PASSWORD}")
    s = Settings() if which == "core" else ServingSettings()
    # the call sites still get the plain values
    assert s.require_database_url() == s.warehouse_url() == db
    assert s.tracking_uri() == tracking
    assert s.api_key_list() == [KEY]
    shown = [repr(s), str(s), s.model_dump_json(), str(s.model_dump()),
             repr(s.database_url), str(s.mlflow_tracking_uri), f"{s}", f"{s!r}"]
    for text in shown:
        for secret in (DB_PASSWORD, TRACKING_PASSWORD, KEY, "trainer:", "creditrisk:"):
            assert secret not in text, (secret, text[:200])
    assert "**********" in repr(s)  # masked, not dropped


def test_an_empty_url_reads_as_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    s = Settings()
    assert s.warehouse_url() is None and s.tracking_uri() is None
    with pytest.raises(InputError, match="DATABASE_URL"):
        s.require_database_url()


def test_importing_the_core_has_no_side_effects(tmp_path: Path) -> None:
    code = (
        "import creditrisk, creditrisk.config, creditrisk.cli, creditrisk.schema, "
        "creditrisk.storage.db, creditrisk.storage.migrate, creditrisk.tasks, sys; "
        "assert 'airflow' not in sys.modules and 'mlflow' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=60)
    assert list(tmp_path.iterdir()) == []
