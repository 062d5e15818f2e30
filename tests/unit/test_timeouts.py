"""Timeouts as configured: the settings, what reaches MLflow's client, the request timeout.

The waits themselves, against a peer that accepts and never answers, are timed in
tests/integration/test_hung_peers.py and tests/serving/test_hung_peers.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from creditrisk.config import MlflowHttpBounds, Settings, get_settings
from serving.settings import ServingSettings
from serving.timeout import RequestTimeout

_NAMES = ("CREDITRISK_DB_CONNECT_TIMEOUT_S", "CREDITRISK_DB_STATEMENT_TIMEOUT_S",
          "CREDITRISK_DB_LOCK_TIMEOUT_S", "CREDITRISK_DB_IDLE_IN_TRANSACTION_TIMEOUT_S",
          "CREDITRISK_MLFLOW_HTTP_RETRIES", "CREDITRISK_MLFLOW_HTTP_BACKOFF_FACTOR",
          "CREDITRISK_MLFLOW_HTTP_BACKOFF_JITTER", "CREDITRISK_MLFLOW_HTTP_TIMEOUT_S",
          "CREDITRISK_REQUEST_TIMEOUT_S")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_batch_defaults_bound_every_wait_and_stay_over_the_measured_jobs(
    clean_env: pytest.MonkeyPatch,
) -> None:
    t = Settings().db_timeouts()
    assert (t.connect_s, t.statement_s, t.lock_s, t.idle_in_transaction_s) == (10, 600, 60, 600)
    # docs/benchmarks.md: 1M customers scored end to end in 64.7 s, 1M rows ingested in 46.5 s
    assert t.statement_s >= 5 * 64.7
    assert t.server_options() == ("-c statement_timeout=600000 -c lock_timeout=60000"
                                  " -c idle_in_transaction_session_timeout=600000")


def test_the_api_bounds_are_tighter_and_fit_inside_the_request_timeout(
    clean_env: pytest.MonkeyPatch,
) -> None:
    api, batch = ServingSettings(), Settings()
    t = api.db_timeouts()
    assert (t.connect_s, t.statement_s, t.lock_s, t.idle_in_transaction_s) == (2, 2, 1, 10)
    assert api.request_timeout_s == 5
    assert t.connect_s < api.request_timeout_s and t.statement_s < api.request_timeout_s
    assert t.statement_s < batch.db_timeouts().statement_s


def test_the_environment_names(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in zip(_NAMES, ("3", "120", "7.5", "30", "1", "0", "0", "9", "2.5"),
                           strict=True):
        clean_env.setenv(name, value)
    s = ServingSettings()
    assert s.db_timeouts().server_options() == (
        "-c statement_timeout=120000 -c lock_timeout=7500"
        " -c idle_in_transaction_session_timeout=30000")
    assert s.db_timeouts().connect_s == 3
    assert s.mlflow_http_bounds() == MlflowHttpBounds(1, 0, 0.0, 9)
    assert s.request_timeout_s == 2.5


def test_the_mlflow_worst_case_is_under_the_stated_bound(clean_env: pytest.MonkeyPatch) -> None:
    b = Settings().mlflow_http_bounds()
    assert b == MlflowHttpBounds(retries=2, backoff_factor=1, backoff_jitter=0.5, timeout_s=5)
    assert b.worst_case_s() == 17.5  # 3 attempts x 5 s + 2 s backoff + 0.5 s jitter
    assert b.worst_case_s(slow_connect=True) == 32.5
    # MLflow's own defaults, for the record: about four minutes per failing call
    assert MlflowHttpBounds(7, 2, 1.0, 120).worst_case_s() > 1000


def test_configure_mlflow_hands_the_settings_to_mlflows_client(
    clean_env: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_BACKOFF_JITTER,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    from creditrisk.registry import configure_mlflow

    # whatever was exported before (MLflow's own names included), the settings win
    for name, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7"),
                        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "120"),
                        ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "2"),
                        ("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "1.0"),
                        ("CREDITRISK_MLFLOW_ARTIFACT_ROOT", str(tmp_path / "artifacts"))):
        clean_env.setenv(name, value)
    get_settings.cache_clear()
    try:
        configure_mlflow(f"sqlite:///{tmp_path / 'mlflow.db'}")
        assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 2
        assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 5
        assert MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get() == 1
        assert MLFLOW_HTTP_REQUEST_BACKOFF_JITTER.get() == 0.5

        clean_env.setenv("CREDITRISK_MLFLOW_HTTP_TIMEOUT_S", "11")
        get_settings.cache_clear()
        configure_mlflow(f"sqlite:///{tmp_path / 'mlflow.db'}")
        assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 11
    finally:
        get_settings.cache_clear()


def _slow_app(timeout_s: float) -> FastAPI:
    app = FastAPI()

    @app.get("/sync-slow")
    def sync_slow() -> dict[str, str]:  # a sync endpoint: it runs in the threadpool
        time.sleep(3)
        return {"late": "yes"}

    @app.get("/async-slow")
    async def async_slow() -> dict[str, str]:
        await asyncio.to_thread(time.sleep, 3)
        return {"late": "yes"}

    @app.get("/fast")
    def fast() -> dict[str, str]:
        return {"ok": "yes"}

    app.add_middleware(RequestTimeout, timeout_s=timeout_s)
    return app


@pytest.mark.parametrize("path", ["/sync-slow", "/async-slow"])
def test_a_request_not_answered_in_time_gets_a_503_at_the_timeout(path: str) -> None:
    with TestClient(_slow_app(0.5)) as client:
        assert client.get("/fast").json() == {"ok": "yes"}
        started = time.monotonic()
        r = client.get(path)
        elapsed = time.monotonic() - started
        assert r.status_code == 503
        assert r.json()["detail"] == "request not answered within 0.5 s: try again"
        assert r.headers["retry-after"] == "1"
        # the handler sleeps 3 s: an answer at 0.5 s (+1.5 s slack for a loaded machine)
        # means the middleware did not wait for the thread it cannot stop
        assert elapsed < 2.0, elapsed
        assert client.get("/fast").status_code == 200  # the next request is unaffected
