"""Registry trust without a server: the artifact digest, the runner's secrets and who gets
which MLflow identity (the server itself: tests/integration/test_registry_trust.py)."""

from __future__ import annotations

import configparser
import hashlib
import json
import os
from pathlib import Path

import pytest

from creditrisk.config import Settings
from creditrisk.registry import artifact_digest, file_sha256
from devstack.postgres import Databases
from devstack.stack import Layout, load_secrets, mlflow_auth_config, platform_env, services


def _model_folder(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "MLmodel").write_text("flavors: {}\n")
    (root / "model.skops").write_bytes(os.urandom(64))
    (root / "sub" / "x.json").write_text("{}")
    return root


def test_the_digest_is_the_sha256_of_the_sorted_sha256sum_manifest(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "m")
    manifest = "".join(f"{hashlib.sha256((folder / rel).read_bytes()).hexdigest()}  {rel}\n"
                       for rel in sorted(["MLmodel", "model.skops", "sub/x.json"]))
    assert artifact_digest(folder) == hashlib.sha256(manifest.encode()).hexdigest()
    assert file_sha256(folder / "MLmodel") == hashlib.sha256(b"flavors: {}\n").hexdigest()


def test_the_digest_sees_any_change_but_the_clients_own_download_note(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "m")
    before = artifact_digest(folder)
    (folder / "registered_model_meta").write_text("model_name: x\n")  # written by a download
    assert artifact_digest(folder) == before
    (folder / "extra.py").write_text("import os")
    assert artifact_digest(folder) != before
    (folder / "extra.py").unlink()
    data = bytearray((folder / "model.skops").read_bytes())
    data[10] ^= 1
    (folder / "model.skops").write_bytes(bytes(data))
    assert artifact_digest(folder) != before
    (folder / "model.skops").rename(folder / "model2.skops")
    assert artifact_digest(folder) != before


def test_each_role_has_its_own_credentials_and_none_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    for role in ("READER", "TRAINER", "ADMIN"):
        monkeypatch.delenv(f"CREDITRISK_MLFLOW_{role}_PASSWORD", raising=False)
    assert Settings().mlflow_credentials("trainer") is None
    trainer_pw, reader_pw = "trainer-pw-0123456789", "reader-pw-0123456789"  # test-only secret
    monkeypatch.setenv("CREDITRISK_MLFLOW_TRAINER_PASSWORD", trainer_pw)
    monkeypatch.setenv("CREDITRISK_MLFLOW_READER_USERNAME", "scoring")
    monkeypatch.setenv("CREDITRISK_MLFLOW_READER_PASSWORD", reader_pw)
    s = Settings()
    assert s.mlflow_credentials("trainer") == ("trainer", "trainer-pw-0123456789")
    assert s.mlflow_credentials("reader") == ("scoring", "reader-pw-0123456789")
    assert s.mlflow_credentials("admin") is None
    assert "pw-0123456789" not in repr(s)


def _layout(tmp_path: Path) -> Layout:
    return Layout(state=tmp_path / "state", airflow_port=1, mlflow_port=2, api_port=3)


def test_the_runner_generates_the_mlflow_users_once_in_a_private_file(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    layout.state.mkdir()
    # a state folder from before the registry had users: its secrets stay, the new ones join
    older = {"api_key": "old-key", "fernet_key": "f"}  # test-only secret
    layout.secrets_file.write_text(json.dumps(older))
    keys = load_secrets(layout)
    assert (keys["api_key"], keys["fernet_key"]) == ("old-key", "f")
    for name in ("mlflow_admin_password", "mlflow_trainer_password", "mlflow_reader_password",
                 "mlflow_flask_secret_key"):
        assert len(keys[name]) >= 12, name
    assert len({keys["mlflow_admin_password"], keys["mlflow_trainer_password"],
                keys["mlflow_reader_password"]}) == 3
    assert layout.secrets_file.stat().st_mode & 0o777 == 0o600
    assert load_secrets(layout) == keys  # generated once

    ini = mlflow_auth_config(layout.state / "mlflow")
    cfg = configparser.ConfigParser()
    cfg.read(ini)
    assert cfg["mlflow"]["default_permission"] == "READ"
    assert cfg["mlflow"]["database_uri"].startswith(f"sqlite:///{layout.state}")
    assert "admin_password" not in cfg["mlflow"]  # the admin's password is not on disk here
    assert ini.stat().st_mode & 0o777 == 0o600
    assert (ini.parent / "basic_auth.db").stat().st_mode & 0o777 == 0o600
    assert ini.parent.stat().st_mode & 0o777 == 0o700


def test_the_api_is_the_reader_and_the_server_has_no_client_identity(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    layout.state.mkdir()
    keys = load_secrets(layout)
    dbs = Databases("postgresql://w", "postgresql://a", "postgresql://m", embedded=True)
    env = platform_env(layout, dbs, keys, base={})
    by_name = {s.name: s for s in services(layout, dbs, env, keys)}
    mlflow, api = by_name["mlflow"], by_name["api"]
    assert mlflow.argv[mlflow.argv.index("server") + 1:][:2] == ["--app-name", "basic-auth"]
    assert mlflow.env["MLFLOW_AUTH_ADMIN_PASSWORD"] == keys["mlflow_admin_password"]
    assert not any(k.startswith(("MLFLOW_TRACKING_", "CREDITRISK_MLFLOW_")) for k in mlflow.env)
    assert api.env["MLFLOW_TRACKING_USERNAME"] == "reader"
    assert api.env["CREDITRISK_MLFLOW_READER_PASSWORD"] == keys["mlflow_reader_password"]
    assert not any("TRAINER" in k or "ADMIN" in k for k in api.env), "the API may only read"
    scheduler = by_name["airflow-scheduler"].env
    assert scheduler["CREDITRISK_MLFLOW_TRAINER_PASSWORD"] == keys["mlflow_trainer_password"]
    assert scheduler["MLFLOW_TRACKING_USERNAME"] == "reader"  # tasks start as the reader
    assert "MLFLOW_AUTH_ADMIN_PASSWORD" not in scheduler
