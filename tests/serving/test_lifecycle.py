"""The model's life in the API: no champion yet, hot swap under load, registry outage."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from creditrisk.model.train import train
from tests.serving.conftest import (
    DAY,
    HEADERS,
    READY,
    World,
    fast_config,
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


@pytest.fixture(scope="module")
def swap_versions(world: World) -> Iterator[tuple[str, str, str]]:
    """A model of its own with two versions: the world's model, then one trained with C=0.01."""
    name = "credit-risk-pd-serving-swap"
    old = register_copy(world, name)
    set_champion(world, name, old)
    res = train(DAY, database_url=world.database_url, tracking_uri=world.tracking_uri,
                model_name=name, run_id="serving-train-2", promote=False,
                config=fast_config(C=0.01))
    assert res["version"] != old
    yield name, old, res["version"]


def test_hot_swap_under_concurrent_load_has_zero_failures(
    world: World, swap_versions: tuple[str, str, str]
) -> None:
    name, old, new = swap_versions
    ids = [*customers(world, 8), "CustomerId_unknown_swap"]
    results: list[tuple[str, int, Any]] = []
    lock = threading.Lock()
    stop = threading.Event()
    with serve(settings_for(world, model_name=name, reload_interval_s=0.2)) as client:
        assert client.app.state.holder.current.ref.version == old  # type: ignore[attr-defined]
        reloads_before = metric_value(client.get("/metrics").text,
                                      "creditrisk_model_reloads_total") or 0

        def hammer(worker: int) -> None:
            i = worker
            while not stop.is_set():
                i += 1
                if worker % 3 == 2:
                    items = [{"customer_id": c} for c in ids]
                    r = client.post("/predict/batch", json={"items": items}, headers=HEADERS)
                    kind = "batch"
                else:
                    r = client.post("/predict", json={"customer_id": ids[i % len(ids)]},
                                    headers=HEADERS)
                    kind = "one"
                body = r.json() if r.status_code == 200 else r.text
                with lock:
                    results.append((kind, r.status_code, body))

        threads = [threading.Thread(target=hammer, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.8)
            set_champion(world, name, new)
            wait_for(lambda: client.app.state.holder.current.ref.version == new)  # type: ignore[attr-defined]
            time.sleep(0.8)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        reloads_after = metric_value(client.get("/metrics").text,
                                     "creditrisk_model_reloads_total") or 0
        info = client.get("/model/info", headers=HEADERS).json()

    failures = [(kind, status, body) for kind, status, body in results if status != 200]
    assert not failures, failures[:3]
    assert len(results) >= 100, f"only {len(results)} requests made"
    served: list[str] = []
    pd_by_version: dict[tuple[str, str | None], set[float | None]] = defaultdict(set)
    for kind, _, body in results:
        answers = [body] if kind == "one" else [x["result"] for x in body["results"]]
        if kind == "batch":
            assert all(x["ok"] for x in body["results"])
            assert {a["model_version"] for a in answers} == {body["model_version"]}
        for a in answers:
            served.append(a["model_version"])
            pd_by_version[(a["model_version"], a["customer_id"])].add(
                a["probability_of_default"])
    assert set(served) == {old, new}, "both versions should have answered"
    # no answer mixes versions: one PD per (version, customer)
    assert all(len(pds) == 1 for pds in pd_by_version.values())
    assert any(pd_by_version[(old, c)] != pd_by_version[(new, c)] for c in ids[:-1]
               if (old, c) in pd_by_version and (new, c) in pd_by_version)
    assert served[-1] == new
    assert reloads_after >= reloads_before + 1
    assert info["version"] == new


def test_registry_outage_keeps_the_loaded_model_serving(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fail fast instead of MLflow's default retries with backoff
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
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
