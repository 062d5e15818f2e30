"""Hot swap in a real uvicorn process, under sustained concurrent load.

The API runs as it is deployed (``uvicorn serving.app:app``, one worker, settings from
the environment) against the session's real warehouse and registry. 32 keep-alive
connections send requests back to back for 30 s; 10 s in, ``champion`` moves to a
second version. What must hold:

- every answer is a 200 (no error, refusal or dropped connection during the swap);
- both versions answered, and one batch answer never mixes them;
- no request *sent* after the first answer from the new version is answered by the
  old one: once the process has swapped, nobody gets the old model again.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from creditrisk.model.train import train
from devstack.process import Child, free_port
from tests.serving.conftest import DAY, HEADERS, World, fast_config
from tests.serving.test_lifecycle import customers, register_copy, set_champion

pytestmark = pytest.mark.slow

CONNECTIONS = 32
DURATION_S = 30.0
SWAP_AT_S = 10.0
BATCH_CONNECTIONS = 4  # of the 32, these send /predict/batch


@dataclass(frozen=True)
class Answer:
    sent: float  # monotonic, just before the request was written
    received: float
    status: int
    versions: tuple[str, ...]  # the model version of every decision in the answer


def _versions(path: str, body: dict[str, object]) -> tuple[str, ...]:
    if path == "/predict":
        return (str(body["model_version"]),)
    results = body["results"]
    assert isinstance(results, list)
    return tuple(str(x["result"]["model_version"]) for x in results)


async def _connection(client: httpx.AsyncClient, worker: int, ids: list[str],
                      until: float, out: list[Answer]) -> None:
    """One keep-alive connection's closed loop: send, wait for the answer, send again."""
    i = worker
    while time.monotonic() < until:
        i += 1
        if worker < BATCH_CONNECTIONS:
            path, payload = "/predict/batch", {"items": [{"customer_id": c} for c in ids]}
        else:
            path, payload = "/predict", {"customer_id": ids[i % len(ids)]}
        sent = time.monotonic()
        try:
            r = await client.post(path, json=payload, headers=HEADERS)
        except httpx.HTTPError as exc:  # a dropped connection counts as a failure
            out.append(Answer(sent, time.monotonic(), -1, (type(exc).__name__,)))
            continue
        received = time.monotonic()
        versions = _versions(path, r.json()) if r.status_code == 200 else (r.text[:200],)
        out.append(Answer(sent, received, r.status_code, versions))


async def _load(base_url: str, ids: list[str], swap: object) -> tuple[list[Answer], float]:
    """Run the 32 connections for DURATION_S; call ``swap`` at SWAP_AT_S (in a thread)."""
    out: list[Answer] = []
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) as client:
        start = time.monotonic()
        until = start + DURATION_S
        workers = [asyncio.create_task(_connection(client, w, ids, until, out))
                   for w in range(CONNECTIONS)]
        await asyncio.sleep(SWAP_AT_S)
        moved_at = time.monotonic()
        await asyncio.to_thread(swap)  # type: ignore[arg-type]
        await asyncio.gather(*workers)
    return out, moved_at


@pytest.fixture(scope="module")
def two_versions(world: World) -> tuple[str, str, str]:
    """A model of its own with two versions (the world's model, then one with C=0.01)."""
    name = "credit-risk-pd-serving-hotswap"
    old = register_copy(world, name)
    set_champion(world, name, old)
    res = train(DAY, database_url=world.database_url, tracking_uri=world.tracking_uri,
                model_name=name, run_id="serving-hotswap-2", promote=False,
                config=fast_config(C=0.01))
    assert res["version"] != old
    return name, old, str(res["version"])


def test_hot_swap_in_real_uvicorn_under_32_connections_for_30_s(
    world: World, two_versions: tuple[str, str, str], tmp_path: Path
) -> None:
    name, old, new = two_versions
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITRISK_")}
    env.update({
        "DATABASE_URL": world.database_url, "MLFLOW_TRACKING_URI": world.tracking_uri,
        "CREDITRISK_MLFLOW_ARTIFACT_ROOT": os.environ.get("CREDITRISK_MLFLOW_ARTIFACT_ROOT", ""),
        "CREDITRISK_MODEL_NAME": name, "CREDITRISK_API_KEYS": HEADERS["X-API-Key"],
        "CREDITRISK_RELOAD_INTERVAL_S": "0.2",
        # a load test, not a limit test: the limiter must not answer 429
        "CREDITRISK_RATE_LIMIT_PER_MINUTE": "100000000",
        "PYTHONUNBUFFERED": "1",
    })
    api = Child.start("api", [sys.executable, "-m", "uvicorn", "serving.app:app",
                              "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
                      env, tmp_path / "api.log")
    try:
        api.wait_http(f"http://127.0.0.1:{port}/health", timeout=120)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/model/info", headers=HEADERS).status_code != 200:
            assert time.monotonic() < deadline, api.tail()
            time.sleep(0.2)
        assert httpx.get(f"{base}/model/info", headers=HEADERS).json()["version"] == old
        ids = [*customers(world, 8), "CustomerId_unknown_swap"]
        # The client is made and used once before the load: the move itself is then one
        # short registry write. (Building a client inside the load held the GIL long
        # enough to starve the load's own event loop past uvicorn's 5 s keep-alive.)
        from mlflow import MlflowClient

        registry = MlflowClient(tracking_uri=world.tracking_uri)
        assert str(registry.get_model_version_by_alias(name, "champion").version) == old
        answers, moved_at = asyncio.run(_load(
            base, ids, lambda: registry.set_registered_model_alias(name, "champion", new)))
    finally:
        api.stop()

    failures = [a for a in answers if a.status != 200]
    assert not failures, (len(failures), failures[:3], api.tail(60))
    span = max(a.received for a in answers) - min(a.sent for a in answers)
    assert span >= DURATION_S - 1, f"the load ran {span:.1f} s"
    assert len(answers) >= 30 * CONNECTIONS, f"only {len(answers)} answers in {span:.0f} s"
    assert all(len(set(a.versions)) == 1 for a in answers), "a batch mixed two versions"
    served = {v for a in answers for v in a.versions}
    assert served == {old, new}, served
    first_new = min(a.received for a in answers if a.versions[0] == new)
    assert first_new >= moved_at, "the new version answered before the alias moved"
    late_old = [a for a in answers if a.sent > first_new and a.versions[0] == old]
    assert not late_old, (f"{len(late_old)} requests sent after the swap were answered "
                          f"by the old version v{old}")
    # the swap followed the alias within a few poll intervals, even under load
    assert first_new - moved_at < 10.0, f"swap took {first_new - moved_at:.1f} s"
