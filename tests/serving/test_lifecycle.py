"""The model's life in the API: no champion yet, registry outage (hot swap: test_hot_swap.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.serving.conftest import (
    DAY,
    HEADERS,
    READY,
    World,
    metric_value,
    rows,
    serve,
    settings_for,
)

pytestmark = pytest.mark.slow


def register_copy(world: World, name: str) -> str:
    """Register the world's champion model under ``name`` (no alias); return the version."""
    import mlflow
    from mlflow import MlflowClient

    source = MlflowClient(tracking_uri=world.tracking_uri).get_model_version(
        world.model_name, world.version).source
    mlflow.set_tracking_uri(world.tracking_uri)
    return str(mlflow.register_model(source, name).version)


def set_champion(world: World, name: str, version: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=world.tracking_uri).set_registered_model_alias(
        name, "champion", version)


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def customers(world: World, n: int) -> list[str]:
    return [r[0] for r in rows(world.database_url,
                               "SELECT customer_id FROM risk_scores WHERE score_date = :d"
                               " ORDER BY customer_id LIMIT :n", d=DAY, n=n)]


def test_starts_without_a_champion_then_serves_it_once_aliased(world: World) -> None:
    name = "credit-risk-pd-serving-late"
    version = register_copy(world, name)  # registered, but nothing has the alias
    with serve(settings_for(world, model_name=name)) as client:
        assert client.get("/health").status_code == 200
        r = client.get("/ready", headers=HEADERS)
        assert r.status_code == 503
        body = r.json()
        assert body["ready"] is False and body["model_version"] is None
        assert any("no model loaded" in x and "champion" in x for x in body["reasons"])
        for method, path, payload in (
            ("POST", "/predict", {"customer_id": "C1"}),
            ("POST", "/predict/batch", {"items": [{"customer_id": "C1"}]}),
            ("GET", "/model/info", None),
        ):
            r = client.request(method, path, json=payload, headers=HEADERS)
            assert r.status_code == 503, path
            assert r.json()["detail"] == "no model loaded yet"
            # no key is still a 401, model or not
            assert client.request(method, path, json=payload).status_code == 401, path
        text = client.get("/metrics").text
        assert metric_value(text, "creditrisk_registry_up") == 0
        assert (metric_value(text, "creditrisk_registry_errors_total") or 0) >= 1

        set_champion(world, name, version)
        wait_for(lambda: client.get("/ready", headers=HEADERS).status_code == 200)
        assert client.get("/ready", headers=HEADERS).json() == {
            **READY, "model_version": version, "reasons": []}
        cid = customers(world, 1)[0]
        r = client.post("/predict", json={"customer_id": cid}, headers=HEADERS)
        assert r.status_code == 200 and r.json()["model_version"] == version
        assert r.json()["model_name"] == name


def test_registry_outage_keeps_the_loaded_model_serving(world: World) -> None:
    cid = customers(world, 1)[0]
    # a long interval: only this test's refresh() calls touch the registry
    with serve(settings_for(world, reload_interval_s=600)) as client:
        holder = client.app.state.holder  # type: ignore[attr-defined]
        good_uri = holder.tracking_uri
        errors_before = metric_value(client.get("/metrics").text,
                                     "creditrisk_registry_errors_total") or 0
        holder.tracking_uri = "http://127.0.0.1:9"
        try:
            started = time.monotonic()
            assert holder.refresh() is False
            assert time.monotonic() - started < 30
            assert holder.current.ref.version == world.version

            r = client.post("/predict", json={"customer_id": cid}, headers=HEADERS)
            assert r.status_code == 200 and r.json()["model_version"] == world.version
            ready = client.get("/ready", headers=HEADERS)
            assert ready.status_code == 200  # the outage alone does not stop serving
            body = ready.json()
            assert body["model_version"] == world.version
            assert any(x.startswith("registry unreachable") and world.version in x
                       for x in body["reasons"]), body
            text = client.get("/metrics").text
            assert metric_value(text, "creditrisk_registry_up") == 0
            assert (metric_value(text, "creditrisk_registry_errors_total") or 0) > errors_before
        finally:
            holder.tracking_uri = good_uri
        assert holder.refresh() is False  # same version: nothing to swap
        assert client.get("/ready", headers=HEADERS).json() == {
            **READY, "model_version": world.version, "reasons": []}
        # the gauge is set on a swap; an unchanged alias after an outage must show it too
        assert metric_value(client.get("/metrics").text, "creditrisk_registry_up") == 1
