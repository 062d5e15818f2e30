"""Registry trust against a real ``mlflow server --app-name basic-auth`` (no mocks).

The server runs as ``./platform up`` runs it (the runner's auth config, artifacts served by
the server), provisioned by :func:`creditrisk.registry.provision`. The trainer trains and
promotes through the platform's own code; the reader (the API's and scoring's identity) may
only read; nobody anonymous gets anything; a tampered artifact is refused while the loaded
champion keeps serving.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from creditrisk.config import get_settings
from creditrisk.errors import ArtifactIntegrityError
from creditrisk.model.promote import promote_version
from creditrisk.model.train import train
from creditrisk.registry import (
    MODEL_SHA256_TAG,
    REFERENCE_SHA256_TAG,
    ModelRef,
    artifact_digest,
    configure_mlflow,
    file_sha256,
    load_pipeline,
    load_reference,
    provision,
    resolve_alias,
)
from tests.mlflow_server import MlflowServer, authenticated_server
from tests.serving.conftest import fast_config
from tests.warehouse import load_generated

pytestmark = pytest.mark.slow
END, DAY = dt.date(2019, 2, 13), dt.date(2019, 2, 14)
ROLE_VARS = ("CREDITRISK_MLFLOW_TRAINER_PASSWORD", "CREDITRISK_MLFLOW_READER_PASSWORD",
             "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
             "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")


@dataclass(frozen=True)
class Trust:
    server: MlflowServer
    warehouse: str
    model: str
    users: dict[str, tuple[str, str]]
    champion: str
    artifacts: Path

    def auth(self, role: str) -> tuple[str, str]:
        return self.users[role]


@pytest.fixture(scope="module")
def trust(warehouse_copy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trust]:  # type: ignore[no-untyped-def]
    """An authenticated server, provisioned; one version trained and promoted by the trainer."""
    folder = tmp_path_factory.mktemp("registry-trust")
    server, users = authenticated_server(folder)
    model = f"credit-risk-pd-trust-{uuid.uuid4().hex[:6]}"
    saved = {k: os.environ.get(k) for k in ROLE_VARS}
    os.environ.update(CREDITRISK_MLFLOW_TRAINER_PASSWORD=users["trainer"][1],
                      CREDITRISK_MLFLOW_READER_PASSWORD=users["reader"][1],
                      MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="20")
    get_settings.cache_clear()
    server.start()
    try:
        provision(server.url, model, admin=users["admin"], trainer=users["trainer"],
                  reader=users["reader"])
        with warehouse_copy(f"crtest_trust_{uuid.uuid4().hex[:6]}") as url:
            load_generated(url, tmp_path_factory.mktemp("trust-landing"), customers=300,
                           days=75, end_date=END, seed=31)
            res = train(DAY, database_url=url, tracking_uri=server.url, model_name=model,
                        run_id="trust-train", promote=False, config=fast_config())
            promote_version(database_url=url, tracking_uri=server.url, model_name=model,
                            version=res["version"], decided_by="test:trainer")
            yield Trust(server, url, model, users, str(res["version"]), folder / "artifacts")
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


def _api(trust: Trust, method: str, path: str, role: str | None, **kw: object
         ) -> requests.Response:
    auth = trust.auth(role) if role else None
    return requests.request(method, f"{trust.server.url}{path}", auth=auth, timeout=30, **kw)  # type: ignore[arg-type]


def _stored_model_file(trust: Trust, version: str, name: str = "model.skops") -> Path:
    """The file of a version's model as the artifact store holds it (on disk here)."""
    from mlflow import MlflowClient

    configure_mlflow(trust.server.url)
    mv = MlflowClient().get_model_version(trust.model, version)
    model_id = getattr(mv, "model_id", None) or mv.source.removeprefix("models:/")
    found = [p for p in trust.artifacts.rglob(name)
             if p.parent.parent.name == model_id and p.parent.name == "artifacts"]
    assert len(found) == 1, found
    return found[0]


def test_anonymous_and_wrong_password_requests_are_refused(trust: Trust) -> None:
    calls = [
        ("GET", "/api/2.0/mlflow/experiments/search?max_results=5", None),
        ("GET", f"/api/2.0/mlflow/registered-models/alias?name={trust.model}&alias=champion",
         None),
        ("POST", "/api/2.0/mlflow/model-versions/create",
         {"name": trust.model, "source": "file:///tmp/evil"}),
        ("POST", "/api/2.0/mlflow/registered-models/alias",
         {"name": trust.model, "alias": "champion", "version": trust.champion}),
    ]
    for method, path, body in calls:
        assert _api(trust, method, path, None, json=body).status_code == 401, path
        r = requests.request(method, f"{trust.server.url}{path}", json=body, timeout=30,
                             auth=("reader", "not-the-password"))
        assert r.status_code == 401, path
    stored = _stored_model_file(trust, trust.champion)
    rel = stored.relative_to(trust.artifacts).as_posix()
    assert _api(trust, "GET", f"/api/2.0/mlflow-artifacts/artifacts/{rel}",
                None).status_code == 401
    assert _api(trust, "GET", "/health", None).status_code == 200  # the probe stays open


def test_the_trainer_owns_the_experiment_and_the_model(trust: Trust) -> None:
    """Provisioned: trainer MANAGE on both; the reader only the server's default, READ."""
    base = "/api/3.0/mlflow/users/permissions/get"
    exp = _api(trust, "GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name="
               "creditrisk-pd", "reader").json()["experiment"]["experiment_id"]
    for kind, resource in (("experiment", exp), ("registered_model", trust.model)):
        for user, expected in (("trainer", "MANAGE"), ("reader", "READ")):
            r = _api(trust, "GET", base, "admin", params={
                "username": user, "resource_type": kind, "resource_id": resource})
            assert r.status_code == 200, r.text
            assert r.json()["permission"] == expected, (kind, user, r.text)
    # provisioning again changes nothing and fails on nothing (up runs it every time)
    provision(trust.server.url, trust.model, admin=trust.auth("admin"),
              trainer=trust.auth("trainer"), reader=trust.auth("reader"))


def test_the_trainer_registered_promoted_and_recorded_the_hashes(trust: Trust) -> None:
    from mlflow import MlflowClient

    configure_mlflow(trust.server.url)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias(trust.model, "champion").version) == \
        trust.champion
    assert str(client.get_model_version_by_alias(trust.model, "challenger").version) == \
        trust.champion
    for mv in client.search_model_versions(f"name = '{trust.model}'"):
        model_dir = _stored_model_file(trust, str(mv.version)).parent
        assert mv.tags[MODEL_SHA256_TAG] == artifact_digest(model_dir)
        reference = next(trust.artifacts.rglob(f"{mv.run_id}/artifacts/reference.json"))
        assert mv.tags[REFERENCE_SHA256_TAG] == file_sha256(reference)
        meta = (model_dir / "MLmodel").read_text()
        assert "serialization_format: skops" in meta and not list(model_dir.glob("*.pkl"))


def test_the_reader_loads_the_champion(trust: Trust) -> None:
    from serving.model import ModelHolder

    configure_mlflow(trust.server.url)
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "reader"
    ref = resolve_alias(trust.server.url, trust.model, "champion")
    assert ref.version == trust.champion
    pipeline = load_pipeline(ref, trust.server.url)
    assert type(pipeline).__name__ == "Pipeline"
    assert load_reference(ref, trust.server.url)["features"]
    holder = ModelHolder(trust.server.url, trust.model, "champion")
    assert holder.refresh() and holder.current is not None
    assert holder.current.ref.version == trust.champion
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "reader"  # the API stays the reader


def test_the_reader_cannot_register_tag_or_move_an_alias(trust: Trust) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    configure_mlflow(trust.server.url)
    client = MlflowClient()
    champion = client.get_model_version(trust.model, trust.champion)
    attempts = {
        "create a version": lambda: client.create_model_version(
            trust.model, champion.source, run_id=champion.run_id),
        "move champion": lambda: client.set_registered_model_alias(
            trust.model, "champion", trust.champion),
        "delete champion": lambda: client.delete_registered_model_alias(trust.model, "champion"),
        "rewrite the hash": lambda: client.set_model_version_tag(
            trust.model, trust.champion, MODEL_SHA256_TAG, "0" * 64),
        "log to the training run": lambda: client.set_tag(champion.run_id, "x", "y"),
    }
    for what, attempt in attempts.items():
        with pytest.raises(MlflowException) as err:
            attempt()
        assert "403" in str(err.value) or "PERMISSION_DENIED" in str(err.value), what
    for method, path, body in (
        ("POST", "/api/2.0/mlflow/model-versions/create",
         {"name": trust.model, "source": champion.source}),
        ("POST", "/api/2.0/mlflow/registered-models/alias",
         {"name": trust.model, "alias": "champion", "version": trust.champion}),
    ):
        assert _api(trust, method, path, "reader", json=body).status_code == 403, path
    # nor overwrite the model's files through the server's artifact proxy
    rel = _stored_model_file(trust, trust.champion).relative_to(trust.artifacts).as_posix()
    r = _api(trust, "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{rel}", "reader",
             data=b"not a model")
    assert r.status_code == 403
    assert str(client.get_model_version_by_alias(trust.model, "champion").version) == \
        trust.champion


def test_a_tampered_artifact_is_refused_while_the_champion_keeps_serving(trust: Trust) -> None:
    """A second version whose model file is swapped in the artifact store for another valid
    model: it would load without the hash check; with it, it is refused in one line and
    the API's holder keeps the champion."""
    import mlflow
    import skops.io
    from mlflow import MlflowClient

    from creditrisk.model.pipeline import base_estimator
    from creditrisk.model.train import log_pipeline, synthetic_example
    from serving.model import ModelHolder

    configure_mlflow(trust.server.url)
    holder = ModelHolder(trust.server.url, trust.model, "champion")
    assert holder.refresh()
    champion = load_pipeline(ModelRef(trust.model, trust.champion, "", "champion"))
    example = synthetic_example(_frame())

    exp = configure_mlflow(trust.server.url, role="trainer")
    with mlflow.start_run(experiment_id=exp, run_name="tamper"):
        logged = log_pipeline(champion, example)
    hashes = {k: v for k, v in logged.items() if k != "model_uri"}
    new = str(mlflow.register_model(logged["model_uri"], trust.model, tags=hashes).version)
    stored = _stored_model_file(trust, new)
    base_estimator(champion).coef_[:] = 0.0  # one PD for everyone, whatever they did
    skops.io.dump(champion, stored)  # a valid model: it loads fine without the hash check
    configure_mlflow(trust.server.url, role="trainer")  # a process has one identity at a time
    MlflowClient().set_registered_model_alias(trust.model, "champion", new)

    configure_mlflow(trust.server.url)  # the API's and scoring's identity from here on
    with pytest.raises(ArtifactIntegrityError) as err:
        load_pipeline(ModelRef(trust.model, new, "", "champion"), trust.server.url)
    message = str(err.value)
    assert "\n" not in message and "sha256" in message and "refused" in message
    assert not holder.refresh()  # the new champion does not load ...
    assert holder.current is not None and holder.current.ref.version == trust.champion
    assert holder.last_load_error and "sha256" in holder.last_load_error
    pd_, _ = holder.current.predict(_zeros())
    assert 0.0 <= float(pd_[0]) <= 1.0  # ... and the previous one still scores

    configure_mlflow(trust.server.url, role="trainer")
    MlflowClient().set_registered_model_alias(trust.model, "champion", trust.champion)


def test_a_version_without_a_recorded_hash_and_a_forged_reference_are_refused(
    trust: Trust,
) -> None:
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    exp = configure_mlflow(trust.server.url, role="trainer")
    champion = load_pipeline(ModelRef(trust.model, trust.champion, "", "champion"))
    with mlflow.start_run(experiment_id=exp, run_name="unhashed") as run:
        info = mlflow.sklearn.log_model(champion, name="model", serialization_format="skops",
                                        skops_trusted_types=_trusted())
    unhashed = str(mlflow.register_model(info.model_uri, trust.model).version)
    configure_mlflow(trust.server.url)
    with pytest.raises(ArtifactIntegrityError, match=f"has no {MODEL_SHA256_TAG} tag"):
        load_pipeline(ModelRef(trust.model, unhashed, run.info.run_id, ""), trust.server.url)

    ref = ModelRef(trust.model, trust.champion,
                   str(MlflowClient().get_model_version(trust.model, trust.champion).run_id),
                   "champion")
    reference = next(trust.artifacts.rglob(f"{ref.run_id}/artifacts/reference.json"))
    original = reference.read_bytes()
    try:
        data = json.loads(original)
        data["features"] = {}  # no drift can ever be found against an empty reference
        reference.write_text(json.dumps(data))
        with pytest.raises(ArtifactIntegrityError, match="reference.json"):
            load_reference(ref, trust.server.url)
    finally:
        reference.write_bytes(original)
    assert load_reference(ref, trust.server.url)["features"]


def _trusted() -> list[str]:
    from creditrisk.registry import SKOPS_TRUSTED_TYPES

    return list(SKOPS_TRUSTED_TYPES)


def _frame():  # type: ignore[no-untyped-def]
    import pandas as pd

    from creditrisk.catalogue import FEATURE_NAMES

    return pd.DataFrame([[1.0] * len(FEATURE_NAMES)] * 3, columns=list(FEATURE_NAMES))


def _zeros():  # type: ignore[no-untyped-def]
    import numpy as np

    from creditrisk.catalogue import FEATURE_NAMES

    return np.zeros((1, len(FEATURE_NAMES)))
