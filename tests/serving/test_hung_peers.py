"""The API against a warehouse and a registry that accept connections and never answer.

The bounds are the production defaults (serving.settings.ServingSettings, and the
MLflow client bounds of creditrisk.config.Settings): nothing here shortens them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from creditrisk.config import Settings
from tests.hung_peer import hung_peer
from tests.serving.conftest import DAY, HEADERS, World, rows, serve, settings_for, stored_features

pytestmark = pytest.mark.slow

SLACK_S = 3.0  # a loaded 2-core machine; far below any unbounded wait


@contextlib.contextmanager
def restored_tracking_uri() -> Generator[None]:
    """The API points MLflow's process-wide URI at what it serves from: put it back."""
    import mlflow

    before = mlflow.get_tracking_uri()
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


def customer(world: World) -> str:
    return str(rows(world.database_url, "SELECT customer_id FROM risk_scores"
                    " WHERE score_date = :d ORDER BY customer_id LIMIT 1", d=DAY)[0][0])


def timed(client: TestClient, path: str, payload: Any = None) -> tuple[int, Any, float]:
    started = time.monotonic()
    r = (client.post(path, json=payload, headers=HEADERS) if payload is not None
         else client.get(path, headers=HEADERS))
    return r.status_code, r.json(), time.monotonic() - started


def test_a_hung_warehouse_costs_an_id_lookup_a_bounded_503_and_inline_features_still_answer(
    world: World,
) -> None:
    cid = customer(world)
    inline = {"features": stored_features(world, cid)}
    with hung_peer() as peer:
        settings = settings_for(world, database_url=peer.postgres_url())
        limit = settings.request_timeout_s
        with serve(settings, raise_server_exceptions=False) as client:
            status, body, elapsed = timed(client, "/predict", {"customer_id": cid})
            assert status == 503, body
            assert body["detail"] == "feature store unavailable"
            # the connect timeout (2 s) answers it, inside the request timeout
            assert elapsed < settings.db_connect_timeout_s + SLACK_S < limit + SLACK_S

            status, body, elapsed = timed(client, "/predict", inline)
            assert status == 200, body
            assert body["model_version"] == world.version
            assert elapsed < SLACK_S

            # more lookups at once than threads to wait in: each is still answered by
            # the request timeout at the latest, and inline requests keep answering
            with ThreadPoolExecutor(16) as pool:
                lookups = [pool.submit(timed, client, "/predict", {"customer_id": cid})
                           for _ in range(16)]
                time.sleep(0.5)
                status, body, elapsed = timed(client, "/predict", inline)
                answers = [f.result() for f in lookups]
            assert status == 200 and elapsed < SLACK_S, (status, elapsed)
            assert {s for s, _, _ in answers} == {503}
            assert max(e for _, _, e in answers) < limit + SLACK_S, answers
            details = {b["detail"] for _, b, _ in answers}
            assert details <= {"feature store unavailable",
                               f"request not answered within {limit:g} s: try again"}, details
        assert peer.accepted >= 1


def test_a_hung_registry_neither_hangs_start_up_nor_holds_up_requests(world: World) -> None:
    bounds = Settings().mlflow_http_bounds()
    cid = customer(world)
    with hung_peer() as peer, restored_tracking_uri():
        settings = settings_for(world, mlflow_tracking_uri=peer.http_url, reload_interval_s=0.5)
        started = time.monotonic()
        with serve(settings, raise_server_exceptions=False) as client:
            startup = time.monotonic() - started
            # start-up waits for the first load no longer than the MLflow bound (17.5 s)
            # or startup_load_timeout_s, whichever ends first, then serves unready
            assert startup < min(bounds.worst_case_s(), settings.startup_load_timeout_s) \
                + SLACK_S, startup
            assert peer.accepted >= bounds.retries + 1
            status, body, elapsed = timed(client, "/ready")
            assert status == 503 and body["ready"] is False, body
            assert any("timed out" in r for r in body["reasons"]), body
            # the follower is asking the hung registry again meanwhile: no request waits
            deadline = time.monotonic() + 10
            while peer.accepted < bounds.retries + 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert peer.accepted >= bounds.retries + 2, "no re-check reached the registry"
            for path, payload in (("/health", None), ("/predict", {"customer_id": cid})):
                status, body, elapsed = timed(client, path, payload)
                assert status == (200 if path == "/health" else 503), body
                assert elapsed < 1.0 + SLACK_S, (path, elapsed)


def test_a_registry_that_hangs_while_serving_keeps_the_loaded_model_answering(
    world: World,
) -> None:
    bounds = Settings().mlflow_http_bounds()
    cid = customer(world)
    with hung_peer() as peer, restored_tracking_uri(), \
            serve(settings_for(world, reload_interval_s=600)) as client:
        holder = client.app.state.holder  # type: ignore[attr-defined]
        good_uri = holder.tracking_uri
        holder.tracking_uri = peer.http_url
        outcome: list[bool] = []
        started = time.monotonic()
        reload = threading.Thread(target=lambda: outcome.append(holder.refresh()), daemon=True)
        reload.start()
        try:
            while peer.accepted < 1 and time.monotonic() - started < 10:
                time.sleep(0.05)
            assert reload.is_alive()  # the re-check is stuck on the registry right now
            status, body, elapsed = timed(client, "/predict", {"customer_id": cid})
            assert status == 200 and body["model_version"] == world.version, body
            assert elapsed < SLACK_S
            reload.join(bounds.worst_case_s() + SLACK_S)
            assert not reload.is_alive(), "the re-check outlived the MLflow bound"
            assert outcome == [False]
            assert holder.last_error is not None and "timed out" in holder.last_error
            assert holder.current.ref.version == world.version
        finally:
            holder.tracking_uri = good_uri
