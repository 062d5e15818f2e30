"""The serving API against a real warehouse and a real MLflow registry.

One session-scoped world: generated history in PostgreSQL, a fast (logistic regression
only) model registered and aliased ``champion``, and ``risk_scores`` for DAY from batch
scoring, so the API can be checked against what the batch wrote.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from creditrisk.model.train import pinned_config, train
from creditrisk.scoring.batch import score_date
from serving.app import create_app
from serving.settings import ServingSettings
from tests.warehouse import load_generated, rows

END = dt.date(2019, 2, 13)
DAY = dt.date(2019, 2, 14)
API_KEY = "test-key-0123456789abcdef"  # test-only secret
HEADERS = {"X-API-Key": API_KEY}
#: /ready's booleans with a model loaded and the warehouse reachable
READY = {"ready": True, "model_loaded": True, "warehouse_reachable": True}
DB_NAME = "crtest_serving"
MODEL_NAME = "credit-risk-pd-serving"


def fast_config(**lr: Any) -> dict[str, Any]:
    """The training config with the logistic regression as the ladder's first rung."""
    return pinned_config("logistic_regression", **lr)


@dataclass(frozen=True)
class World:
    database_url: str
    tracking_uri: str
    model_name: str
    version: str
    run_id: str


@pytest.fixture(scope="session")
def world(
    warehouse_copy, mlflow_store: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    """A warehouse with history, a champion in a real registry, and DAY batch-scored."""
    from mlflow import MlflowClient

    with warehouse_copy(DB_NAME) as url:
        load_generated(url, tmp_path_factory.mktemp("serving-landing"), customers=600, days=90,
                       end_date=END, seed=23)
        res = train(DAY, database_url=url, tracking_uri=mlflow_store, model_name=MODEL_NAME,
                    run_id="serving-train", promote=False, config=fast_config())
        client = MlflowClient(tracking_uri=mlflow_store)
        client.set_registered_model_alias(MODEL_NAME, "champion", res["version"])
        scored = score_date(DAY, database_url=url, tracking_uri=mlflow_store,
                            model_name=MODEL_NAME, alias="champion", run_id="serving-score")
        assert scored["model_version"] == res["version"]
        run_id = str(client.get_model_version(MODEL_NAME, res["version"]).run_id)
        yield World(url, mlflow_store, MODEL_NAME, res["version"], run_id)


def settings_for(world: World, **overrides: Any) -> ServingSettings:
    values: dict[str, Any] = {
        "database_url": world.database_url, "mlflow_tracking_uri": world.tracking_uri,
        "model_name": world.model_name, "api_keys": API_KEY, "reload_interval_s": 0.5,
        "rate_limit_per_minute": 100_000, "auth_failures_per_minute": 100_000,
        "batch_cap": 25,
    }
    values.update(overrides)
    return ServingSettings(**values)


@contextlib.contextmanager
def serve(settings: ServingSettings, **client_kwargs: Any) -> Generator[TestClient]:
    """A TestClient with the lifespan running; the process's logging is put back after.

    The lifespan points the ``serving`` and ``creditrisk`` loggers at a JSON handler and
    stops them propagating: undo that so other tests' ``caplog`` keeps working.
    """
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level,
                    logging.getLogger(name).propagate) for name in ("serving", "creditrisk")}
    try:
        with TestClient(create_app(settings), **client_kwargs) as client:
            yield client
    finally:
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    """The API on the world's champion (one app per test module)."""
    with serve(settings_for(world), raise_server_exceptions=False) as c:
        yield c


def stored_features(world: World, customer_id: str) -> dict[str, float]:
    """The customer's DAY features by name, as the warehouse holds them."""
    from creditrisk.catalogue import FEATURE_NAMES

    got = rows(world.database_url,
               f"SELECT {', '.join(FEATURE_NAMES)} FROM customer_features"
               " WHERE customer_id = :c AND as_of_date = :d", c=customer_id, d=DAY)
    assert got, customer_id
    return {name: float(v) for name, v in zip(FEATURE_NAMES, got[0], strict=True)}


def metric_value(text: str, metric: str, /, **labels: str) -> float | None:
    """The value of one sample of a Prometheus exposition, or None when absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                return float(sample.value)
    return None
