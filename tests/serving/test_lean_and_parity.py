"""The serving image's promises, checked on real processes.

- **Lean.** The API runs from an MLflow *server* (as deployed) in a process where every
  package the serving image does not install cannot be imported: Airflow, Great
  Expectations, pyarrow, the MLflow server's own stack. If a code path of the API reached
  one of them, the request would fail here before it failed in the image.
- **Parity.** ``mlflow models serve`` on ``models:/<name>@champion`` (MLflow's own
  serving), the API's ``/predict`` and the batch's ``risk_scores`` give the same PD for
  the same customer and version: the API and the table exactly (both publish 8 decimals),
  and MLflow's the same rounded to those 8 decimals (within 5e-9), once the policy's PD
  floor (``pd_floor``, which the decision layer applies and MLflow knows nothing of) is
  applied to MLflow's answer.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from creditrisk.catalogue import FEATURE_NAMES
from devstack.process import Child, free_port
from tests.mlflow_server import MlflowServer
from tests.serving.conftest import DAY, HEADERS, World, stored_features
from tests.serving.test_lifecycle import customers
from tests.warehouse import rows

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]

# Top-level packages requirements.txt installs and requirements-serving.txt does not.
NOT_IN_THE_IMAGE = ("airflow", "great_expectations", "pyarrow", "flask", "alembic",
                    "matplotlib", "gunicorn", "huey", "graphene", "skl2onnx")

_BLOCKING_RUNNER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not in the serving image")
        return None
sys.meta_path.insert(0, Block())
import uvicorn
uvicorn.run("serving.app:app", host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def _serving_requirements() -> set[str]:
    names = set()
    for line in (REPO / "requirements-serving.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(line.split(";")[0].split("==")[0].split("[")[0].strip().lower())
    return names


@pytest.fixture(scope="module")
def registry_server(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An ``mlflow server`` over the world's store: the API reaches the registry over HTTP."""
    server = MlflowServer(world.tracking_uri,
                          os.environ.get("CREDITRISK_MLFLOW_ARTIFACT_ROOT", "mlartifacts"),
                          tmp_path_factory.mktemp("mlflow") / "mlflow.log")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def scored_ids(world: World, n: int) -> list[str]:
    """Customers the batch gave a PD on DAY (in the scoring population, not dormant)."""
    ids = [r[0] for r in rows(world.database_url,
                              "SELECT customer_id FROM risk_scores WHERE score_date = :d"
                              " AND probability_of_default IS NOT NULL"
                              " ORDER BY customer_id LIMIT :n", d=DAY, n=n)]
    assert len(ids) == n
    return ids


def _wait_ok(child: Child, url: str, headers: dict[str, str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert child.proc.poll() is None, child.tail()
        try:
            if httpx.get(url, headers=headers, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, child.tail()
        time.sleep(0.3)


def test_the_serving_image_leaves_out_what_the_api_never_imports() -> None:
    serving = _serving_requirements()
    assert "pyarrow" not in serving
    assert "apache-airflow" not in serving and "great-expectations" not in serving
    assert "mlflow-skinny" in serving and "mlflow" not in serving


def test_the_api_answers_without_any_package_the_image_leaves_out(
    world: World, registry_server: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITRISK_")}
    env.update({"DATABASE_URL": world.database_url, "MLFLOW_TRACKING_URI": registry_server,
                "CREDITRISK_MODEL_NAME": world.model_name,
                "CREDITRISK_API_KEYS": HEADERS["X-API-Key"]})
    api = Child.start("api", [sys.executable, "-c", _BLOCKING_RUNNER,
                              ",".join(NOT_IN_THE_IMAGE), str(port)], env, tmp_path / "api.log")
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ok(api, f"{base}/model/info", HEADERS)
        cid = scored_ids(world, 1)[0]
        one = httpx.post(f"{base}/predict", json={"customer_id": cid}, headers=HEADERS)
        inline = httpx.post(f"{base}/predict", headers=HEADERS,
                            json={"features": stored_features(world, cid), "amount": 100.0})
        batch = httpx.post(f"{base}/predict/batch", headers=HEADERS,
                           json={"items": [{"customer_id": c} for c in customers(world, 5)]})
        metrics = httpx.get(f"{base}/metrics")
    finally:
        api.stop()
    assert one.status_code == inline.status_code == batch.status_code == 200, api.tail()
    assert metrics.status_code == 200
    assert one.json()["model_version"] == world.version
    assert one.json()["probability_of_default"] is not None
    assert abs(one.json()["probability_of_default"]
               - inline.json()["probability_of_default"]) < 1e-12
    assert "is not in the serving image" not in api.tail(200)


def test_mlflow_models_serve_the_api_and_the_batch_agree_to_1e9(
    world: World, tmp_path: Path
) -> None:
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "MLFLOW_TRACKING_URI": world.tracking_uri,
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}  # uvicorn on PATH
    served = Child.start("mlflow-serve", [
        str(bin_dir / "mlflow"), "models", "serve", "-m",
        f"models:/{world.model_name}@champion", "--env-manager", "local",
        "--host", "127.0.0.1", "-p", str(port)], env, tmp_path / "serve.log")
    ids = scored_ids(world, 5)
    try:
        _wait_ok(served, f"http://127.0.0.1:{port}/ping", {}, timeout=180)
        frame = [[stored_features(world, c)[f] for f in FEATURE_NAMES] for c in ids]
        r = httpx.post(f"http://127.0.0.1:{port}/invocations", timeout=60,
                       content=json.dumps({"dataframe_split": {"columns": list(FEATURE_NAMES),
                                                               "data": frame}}),
                       headers={"Content-Type": "application/json"})
    finally:
        served.stop()
    assert r.status_code == 200, (r.text[:500], served.tail())
    preds = r.json()["predictions"]
    mlflow_pd = [float(p[1] if isinstance(p, list) else p) for p in preds]

    from tests.serving.conftest import serve, settings_for

    with serve(settings_for(world)) as client:
        api_pd = [client.post("/predict", json={"customer_id": c},
                              headers=HEADERS).json()["probability_of_default"] for c in ids]
    batch = dict(rows(world.database_url,
                      "SELECT customer_id, probability_of_default FROM risk_scores"
                      " WHERE score_date = :d AND customer_id = ANY(:ids)", d=DAY, ids=ids))
    from creditrisk.scoring.decide import load_policy

    # the policy holds every PD within [pd_floor, 1 - pd_floor] before it decides (a model's
    # 0.0 is not a probability a lender may quote): MLflow serves the model's raw output
    floor = float(load_policy()["score"]["pd_floor"])
    for c, m, a in zip(ids, mlflow_pd, api_pd, strict=True):
        expected = min(max(m, floor), 1 - floor)
        # the API and risk_scores publish PDs to 8 decimals: equal up to that rounding
        assert abs(round(expected, 8) - a) < 1e-12, (c, m, a)
        assert abs(expected - a) <= 5e-9 + 1e-12, (c, m, a)
        assert abs(float(batch[c]) - a) < 1e-12, (c, batch[c], a)  # risk_scores: 8 too
