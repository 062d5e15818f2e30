"""Rollback and the shadow sample in a real uvicorn process (issue 17, items 1 and 5).

The API runs as deployed (``uvicorn serving.app:app``) with every ``/predict`` call
sampled for the challenger (CREDITRISK_SHADOW_SAMPLE=1). Champion history in
``model_promotions``: v_old, then v_new. Under steady load, ``creditrisk promote
--previous`` (the function behind it) moves ``champion`` back to v_old. What must hold:
no request fails; the API serves v_old within its poll interval (plus one load); the
rollback has its audit row; while v_new was champion the challenger (v_old) scored the
sampled calls into decision_log as shadow rows under the answered request's own id.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import httpx
import pytest

from creditrisk.model.promote import promote_version
from creditrisk.storage.db import make_engine
from creditrisk.storage.promotions import promotions
from devstack.process import Child, free_port
from tests.serving.conftest import HEADERS, World, metric_value, rows
from tests.serving.test_lifecycle import customers, register_copy

pytestmark = pytest.mark.slow

POLL_S = 0.5
CONNECTIONS = 8


def set_challenger(world: World, name: str, version: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=world.tracking_uri).set_registered_model_alias(
        name, "challenger", version)


async def _load(base: str, ids: list[str], seconds: float, rollback_at: float,
                rollback: object) -> tuple[list[tuple[float, int, str]], float]:
    """(received, status, version) of every answer; when the rollback returned."""
    out: list[tuple[float, int, str]] = []
    done_at = 0.0

    async def connection(client: httpx.AsyncClient, k: int, until: float) -> None:
        i = k
        while time.monotonic() < until:
            i += 1
            try:
                r = await client.post("/predict", json={"customer_id": ids[i % len(ids)]},
                                      headers=HEADERS)
            except httpx.HTTPError as exc:
                out.append((time.monotonic(), -1, type(exc).__name__))
                continue
            version = str(r.json()["model_version"]) if r.status_code == 200 else r.text[:200]
            out.append((time.monotonic(), r.status_code, version))

    async with httpx.AsyncClient(base_url=base, timeout=30.0) as client:
        until = time.monotonic() + seconds
        tasks = [asyncio.create_task(connection(client, k, until)) for k in range(CONNECTIONS)]
        await asyncio.sleep(rollback_at)
        await asyncio.to_thread(rollback)  # type: ignore[arg-type]
        done_at = time.monotonic()
        await asyncio.gather(*tasks)
    return out, done_at


def test_rollback_is_followed_within_the_poll_interval_and_the_challenger_shadows(
    world: World, tmp_path: Path,
) -> None:
    name = "credit-risk-pd-serving-rollback"
    old, new = register_copy(world, name), register_copy(world, name)
    for version in (old, new):  # the champion history the rollback reads
        promote_version(database_url=world.database_url, tracking_uri=world.tracking_uri,
                        model_name=name, version=version, decided_by="test")
    set_challenger(world, name, old)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITRISK_")}
    env.update({
        "DATABASE_URL": world.database_url, "MLFLOW_TRACKING_URI": world.tracking_uri,
        "CREDITRISK_MLFLOW_ARTIFACT_ROOT": os.environ.get("CREDITRISK_MLFLOW_ARTIFACT_ROOT", ""),
        "CREDITRISK_MODEL_NAME": name, "CREDITRISK_API_KEYS": HEADERS["X-API-Key"],
        "CREDITRISK_RELOAD_INTERVAL_S": str(POLL_S), "CREDITRISK_SHADOW_SAMPLE": "1",
        "CREDITRISK_RATE_LIMIT_PER_MINUTE": "100000000", "PYTHONUNBUFFERED": "1",
    })
    api = Child.start("api", [sys.executable, "-m", "uvicorn", "serving.app:app",
                              "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
                      env, tmp_path / "api.log")
    base = f"http://127.0.0.1:{port}"
    try:
        api.wait_http(f"{base}/health", timeout=120)
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/model/info", headers=HEADERS).status_code != 200:
            assert time.monotonic() < deadline, api.tail()
            time.sleep(0.2)
        ids = customers(world, 8)
        answers, rolled_at = asyncio.run(_load(base, ids, 8.0, 3.0, lambda: promote_version(
            database_url=world.database_url, tracking_uri=world.tracking_uri,
            model_name=name, version=None, previous=True, decided_by="test-rollback")))
        time.sleep(1.0)  # the writer thread flushes the queued rows
        metrics = httpx.get(f"{base}/metrics").text
    finally:
        api.stop()

    failures = [a for a in answers if a[1] != 200]
    assert not failures, (len(failures), failures[:3], api.tail())
    assert {a[2] for a in answers} == {old, new}
    first_old = min(a[0] for a in answers if a[2] == old)
    assert first_old >= rolled_at - 1.0  # not before the rollback
    # followed within the poll interval (and one load of the version)
    assert first_old - rolled_at < POLL_S + 3.0, f"followed after {first_old - rolled_at:.1f} s"
    assert not [a for a in answers if a[0] > first_old + 0.5 and a[2] == new]
    row = promotions(make_engine(world.database_url), name)[-1]
    assert (row["model_version"], row["previous_champion"], row["decision"],
            row["decided_by"]) == (old, new, "rollback", "test-rollback")
    shadow = rows(world.database_url,
                  "SELECT s.model_version AS shadow_v, a.model_version AS answered_v,"
                  " s.customer_id = a.customer_id AS same FROM decision_log s JOIN decision_log a"
                  " ON a.request_id = s.request_id AND a.item = s.item AND NOT a.shadow"
                  " WHERE s.shadow AND s.model_name = :n", n=name)
    assert shadow, "no shadow rows"
    assert {(r[0], r[1], r[2]) for r in shadow} == {(old, new, True)}
    assert (metric_value(metrics, "creditrisk_shadow_total", outcome="scored") or 0) >= len(shadow)
    # after the rollback champion == challenger: nothing more to shadow
    assert (metric_value(metrics, "creditrisk_shadow_total", outcome="no_challenger") or 0) > 0
    assert metric_value(metrics, "creditrisk_alias_unexplained") == 0.0
