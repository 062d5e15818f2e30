"""Faults of the model's side: a real MLflow server down at start, broken artifacts.

Nothing is mocked: the registry is a real ``mlflow server`` process on the session's
PostgreSQL store, and broken versions are real registered versions whose artifact
files were overwritten with garbage or deleted on disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from creditrisk.model.train import train
from tests.mlflow_server import MlflowServer
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


def wait_for(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def customer(world: World) -> str:
    return str(rows(world.database_url, "SELECT customer_id FROM risk_scores"
                    " WHERE score_date = :d ORDER BY customer_id LIMIT 1", d=DAY)[0][0])


@contextlib.contextmanager
def restored_tracking_uri() -> Generator[None]:
    """The API points MLflow's process-wide URI at what it serves from: put it back."""
    import mlflow

    before = mlflow.get_tracking_uri()
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


def test_mlflow_down_at_start_is_503_until_the_server_comes_up(
    world: World, tmp_path: Path,
) -> None:
    server = MlflowServer(world.tracking_uri, os.environ["CREDITRISK_MLFLOW_ARTIFACT_ROOT"],
                          tmp_path / "mlflow.log")
    cid = customer(world)
    with restored_tracking_uri():
        try:
            started = time.monotonic()
            with serve(settings_for(world, mlflow_tracking_uri=server.url,
                                    reload_interval_s=0.5),
                       raise_server_exceptions=False) as client:
                assert time.monotonic() - started < 30  # the start-up did not hang on it
                assert client.get("/health").status_code == 200
                # no key: only the booleans, never the registry's error or URL
                public = client.get("/ready")
                assert public.status_code == 503
                assert public.json() == {"ready": False, "model_loaded": False,
                                         "warehouse_reachable": True}
                r = client.get("/ready", headers=HEADERS)
                assert r.status_code == 503
                body = r.json()
                assert body["ready"] is False and body["model_version"] is None
                assert any(x.startswith("no model loaded:") and "Error" in x
                           for x in body["reasons"]), body
                for path, payload in (("/predict", {"customer_id": cid}),
                                      ("/predict/batch", {"items": [{"customer_id": cid}]})):
                    r = client.post(path, json=payload, headers=HEADERS)
                    assert r.status_code == 503, r.text
                    assert r.json()["detail"] == "no model loaded yet"
                assert client.get("/model/info", headers=HEADERS).status_code == 503
                text = client.get("/metrics").text
                assert metric_value(text, "creditrisk_registry_up") == 0
                assert (metric_value(text, "creditrisk_registry_errors_total") or 0) >= 1

                server.start()  # on the very port the API was told about
                # no restart: the follower picks the champion up at its next check
                wait_for(lambda: client.get("/ready", headers=HEADERS).status_code == 200)
                assert client.get("/ready", headers=HEADERS).json() == {
                    **READY, "model_version": world.version, "reasons": []}
                r = client.post("/predict", json={"customer_id": cid}, headers=HEADERS)
                assert r.status_code == 200
                assert r.json()["model_version"] == world.version
                text = client.get("/metrics").text
                assert metric_value(text, "creditrisk_registry_up") == 1
                assert metric_value(text, "creditrisk_model_info", name=world.model_name,
                                    version=world.version) == 1
                assert metric_value(text, "creditrisk_api_requests_total", route="/predict",
                                    method="POST", status="500") is None
        finally:
            server.stop()


# --- broken artifacts -----------------------------------------------------------------

def artifact_dir(world: World, name: str, version: str) -> Path:
    from mlflow import MlflowClient

    uri = MlflowClient(tracking_uri=world.tracking_uri).get_model_version_download_uri(
        name, version)
    path = Path(uri.removeprefix("file://"))
    assert path.is_dir() and (path / "MLmodel").exists(), uri
    return path


def break_artifact(path: Path, how: str) -> None:
    """``deleted``: no files; ``garbage``: a model file that is no model; ``tampered``: a
    valid model of another behaviour (one PD for everyone) in place of the trained one,
    which only the recorded sha256 tells apart."""
    if how == "deleted":
        shutil.rmtree(path)
        return
    models = list(path.rglob("*.skops"))
    assert models and not list(path.rglob("*.pkl")), sorted(p.name for p in path.rglob("*"))
    for p in models:
        if how == "garbage":
            p.write_bytes(b"PK\x03\x04garbage, not a model" + os.urandom(256))
            continue
        import skops.io

        from creditrisk.model.pipeline import base_estimator
        from creditrisk.registry import SKOPS_TRUSTED_TYPES

        forged = skops.io.load(p, trusted=SKOPS_TRUSTED_TYPES)
        base_estimator(forged).coef_[:] = 0.0
        skops.io.dump(forged, p)


@pytest.fixture(scope="module")
def broken(world: World) -> Iterator[tuple[str, str, dict[str, str]]]:
    """A model of its own: a good version (the champion) and one broken version per way."""
    import mlflow
    from mlflow import MlflowClient

    name = "credit-risk-pd-serving-broken"
    client = MlflowClient(tracking_uri=world.tracking_uri)
    with restored_tracking_uri():
        mlflow.set_tracking_uri(world.tracking_uri)
        source = client.get_model_version(world.model_name, world.version).source
        good = str(mlflow.register_model(source, name).version)
        client.set_registered_model_alias(name, "champion", good)
        bad: dict[str, str] = {}
        for how in ("garbage", "deleted", "tampered"):
            # a trained version of its own: its artifact files are nobody else's
            version = str(train(DAY, database_url=world.database_url,
                                tracking_uri=world.tracking_uri, model_name=name,
                                run_id=f"serving-broken-{how}", promote=False,
                                config=fast_config())["version"])
            break_artifact(artifact_dir(world, name, version), how)
            bad[how] = version
    yield name, good, bad


def set_champion(world: World, name: str, version: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=world.tracking_uri).set_registered_model_alias(
        name, "champion", version)


@pytest.mark.parametrize("how", ["garbage", "deleted", "tampered"])
def test_a_broken_new_champion_leaves_the_previous_one_serving(
    world: World, broken: tuple[str, str, dict[str, str]], how: str,
) -> None:
    name, good, bad = broken
    cid = customer(world)
    set_champion(world, name, good)
    with (restored_tracking_uri(),
          serve(settings_for(world, model_name=name, reload_interval_s=0.3),
                raise_server_exceptions=False) as client):
        holder = client.app.state.holder  # type: ignore[attr-defined]
        assert holder.current.ref.version == good
        set_champion(world, name, bad[how])
        wait_for(lambda: (metric_value(client.get("/metrics").text,
                                       "creditrisk_model_load_failures_total",
                                       version=bad[how]) or 0) >= 1)
        r = client.get("/ready", headers=HEADERS)
        assert r.status_code == 200, r.text  # the previous champion still serves
        body = r.json()
        assert body["model_version"] == good
        assert any(f"champion v{bad[how]} failed to load" in x and f"serving v{good}" in x
                   for x in body["reasons"]), body
        if how == "tampered":  # refused by its hash, before anything was deserialised
            assert any("sha256" in x and "refused" in x for x in body["reasons"]), body
        for _ in range(5):
            r = client.post("/predict", json={"customer_id": cid}, headers=HEADERS)
            assert r.status_code == 200 and r.json()["model_version"] == good
        r = client.post("/predict/batch", json={"items": [{"customer_id": cid}]},
                        headers=HEADERS)
        assert r.status_code == 200 and r.json()["model_version"] == good
        assert client.get("/model/info", headers=HEADERS).json()["version"] == good
        text = client.get("/metrics").text
        assert metric_value(text, "creditrisk_registry_up") == 1  # the registry answered
        assert metric_value(text, "creditrisk_model_info", name=name, version=good) == 1

        # the alias moved back: the failure is no longer reported
        set_champion(world, name, good)
        wait_for(lambda: client.get("/ready", headers=HEADERS).json()["reasons"] == [])
        assert metric_value(client.get("/metrics").text, "creditrisk_api_requests_total",
                            route="/predict", method="POST", status="500") is None


@pytest.mark.parametrize("how", ["garbage", "deleted", "tampered"])
def test_starting_on_a_broken_champion_is_503_never_500(
    world: World, broken: tuple[str, str, dict[str, str]], how: str,
) -> None:
    name, good, bad = broken
    cid = customer(world)
    set_champion(world, name, bad[how])
    try:
        with (restored_tracking_uri(),
              serve(settings_for(world, model_name=name, reload_interval_s=0.3),
                    raise_server_exceptions=False) as client):
            assert client.get("/health").status_code == 200
            r = client.get("/ready", headers=HEADERS)
            assert r.status_code == 503
            body = r.json()
            assert body["model_version"] is None
            assert any(x.startswith(f"no model loaded: v{bad[how]} failed to load")
                       for x in body["reasons"]), body
            for method, path, payload in (
                ("POST", "/predict", {"customer_id": cid}),
                ("POST", "/predict/batch", {"items": [{"customer_id": cid}]}),
                ("GET", "/model/info", None),
            ):
                r = client.request(method, path, json=payload, headers=HEADERS)
                assert r.status_code == 503, (path, r.text)
            text = client.get("/metrics").text
            assert (metric_value(text, "creditrisk_model_load_failures_total",
                                 version=bad[how]) or 0) >= 1
            # repaired by moving the alias: served without a restart
            set_champion(world, name, good)
            wait_for(lambda: client.get("/ready", headers=HEADERS).status_code == 200)
            r = client.post("/predict", json={"customer_id": cid}, headers=HEADERS)
            assert r.status_code == 200 and r.json()["model_version"] == good
            statuses = {s for s in ("500", "502", "504")
                        if metric_value(client.get("/metrics").text,
                                        "creditrisk_api_requests_total", route="/predict",
                                        method="POST", status=s) is not None}
            assert statuses == set()
    finally:
        set_champion(world, name, good)
