"""The MLflow registry: every MLflow tracking and registry call of the platform goes here.

Configure the client (:func:`configure_mlflow`), resolve an alias to one version
(:func:`resolve_alias`), load exactly that version (:func:`load_pipeline`) and its
training reference (:func:`load_reference`), read and move aliases
(:func:`current_champion`, :func:`set_alias`). Aliases only, never stages: ``champion``
is what scoring and the API serve, ``challenger`` is the newest candidate.

Trust (docs/operations.md, "Registry trust"): each process talks to MLflow as its role's
user (:func:`configure_mlflow`: the ``reader`` by default, the ``trainer`` for training and
promotion); :func:`provision` creates those users and makes the trainer own the experiment
and the registered model. Every model is stored as skops, never as a pickle; the trainer
records the sha256 of the model's files (:func:`artifact_digest`) and of ``reference.json``
as tags, and :func:`load_pipeline` and :func:`load_reference` download, verify and only
then read, refusing an artifact whose hash differs or was never recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from creditrisk.errors import (
    ArtifactIntegrityError,
    CreditRiskError,
    InputError,
    ServiceUnavailableError,
)

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from creditrisk.config import MlflowHttpBounds, Settings

log = logging.getLogger(__name__)

EXPERIMENT = "creditrisk-pd"
CHAMPION = "champion"
CHALLENGER = "challenger"

Role = Literal["reader", "trainer"]
READER: Role = "reader"
TRAINER: Role = "trainer"

#: Every class a registered pipeline holds that skops does not trust by default (it trusts
#: sklearn's public estimators and transformers, numpy arrays and ufuncs such as the
#: ``arcsinh`` of the logistic rungs). The trainer saves with this list and every loader
#: loads with exactly this list, never with the list the artifact's own MLmodel names.
SKOPS_TRUSTED_TYPES = [
    "creditrisk.model.scorecard.WoEBinner",  # the WoE scorecard's binning
    "sklearn.calibration._CalibratedClassifier",  # CalibratedClassifierCV's fitted map
    "sklearn.calibration._SigmoidCalibration",  # its sigmoid (Platt) calibrator
    "xgboost.core.Booster",  # restored from xgboost's own binary model format, not a pickle
    "xgboost.sklearn.XGBClassifier",
]
MODEL_SHA256_TAG = "artifact_sha256"
REFERENCE_SHA256_TAG = "reference_sha256"
#: written by MLflow's client into a download of ``models:/name/version``, never stored
_CLIENT_SIDE_FILES = frozenset({"registered_model_meta"})


@dataclass(frozen=True)
class ModelRef:
    """One registered model version, as resolved from an alias."""

    name: str
    version: str
    run_id: str
    alias: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def describe_uri(uri: str | None) -> str:
    """A tracking URI safe to print: a password in it is masked."""
    from urllib.parse import urlsplit, urlunsplit

    if not uri:
        return "<unset>"
    try:
        parts = urlsplit(uri)
        if parts.password is None:
            return uri
        user = parts.username or ""
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
    except ValueError:
        return "<unparseable URI>"


def _unreachable_reason(exc: BaseException) -> str | None:
    """Why the registry could not be reached, if that is what ``exc`` is; else None.

    MLflow wraps a failed HTTP request (refused, timed out, retries exhausted) into a
    plain ``MlflowException`` whose context is the ``requests`` error; a store URI that
    is a database fails with SQLAlchemy's ``OperationalError``.
    """
    import re

    import requests
    import sqlalchemy as sa

    seen: set[int] = set()
    err: BaseException | None = exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, requests.exceptions.RequestException | sa.exc.OperationalError
                      | ConnectionError | TimeoutError):
            text = str(err)
            errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
            if errno:
                return errno.group(1).strip()
            if isinstance(err, requests.exceptions.Timeout) or "timed out" in text.lower():
                return "timed out"
            lines = text.strip().splitlines()
            return f"{type(err).__name__}: {lines[0][:160]}" if lines else type(err).__name__
        err = err.__cause__ or err.__context__
    return None


@contextlib.contextmanager
def registry_errors(tracking_uri: str | None, what: str) -> Generator[None]:
    """Turn an unreachable MLflow registry into a one-line :class:`ServiceUnavailableError`.

    The message names the tracking URI (password masked) and what was being done, so
    the failed task's log says which server to bring back; the task's retries do the rest.
    """
    try:
        yield
    except CreditRiskError:
        raise
    except Exception as exc:
        reason = _unreachable_reason(exc)
        if reason is None:
            raise
        raise _unreachable(tracking_uri, reason, what) from exc


def _unreachable(tracking_uri: str | None, reason: str, what: str) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        f"the MLflow registry at {describe_uri(tracking_uri)} is unreachable ({reason}) "
        f"while {what}: nothing was written; re-run once the tracking server is up"
    )


def resolve_alias(tracking_uri: str | None, name: str, alias: str) -> ModelRef:
    """Resolve ``models:/name@alias`` to a version, once."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        with registry_errors(tracking_uri, f"resolving {name}@{alias}"):
            configure_mlflow(tracking_uri)
            mv = MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(
            exc
        ).lower():
            raise InputError(_no_alias_reason(name, alias)) from None
        raise ServiceUnavailableError(
            f"MLflow registry at {describe_uri(tracking_uri)} failed resolving {name}@{alias}: "
            f"{str(exc).strip().splitlines()[0][:200]}"
        ) from exc
    except OSError as exc:
        raise ServiceUnavailableError(
            f"MLflow registry at {describe_uri(tracking_uri)} unavailable: {exc}"
        ) from exc
    return ModelRef(name=name, version=str(mv.version), run_id=str(mv.run_id), alias=alias)


def _no_alias_reason(name: str, alias: str) -> str:
    """One line for an operator: why nothing carries ``alias``, and what to do next."""
    from mlflow import MlflowClient

    versions: list[Any] = []
    with contextlib.suppress(Exception):  # best effort: the plain message still helps
        versions = MlflowClient().search_model_versions(f"name = '{name}'")
    if not versions:
        return (f"no version of {name} has the alias {alias!r}: no model is registered yet; "
                "next: train one (creditrisk train --as-of D --promote, or the train_model DAG)")
    newest = max(versions, key=lambda v: int(v.version))
    tags = dict(newest.tags or {})
    if tags.get("promotion_decision") == "rejected":
        failed = [r[6:] for r in tags.get("promotion_reasons", "").split(" | ")
                  if r.startswith("FAIL: ")]
        return (f"no version of {name} has the alias {alias!r}: the promotion gate refused "
                f"version {newest.version} ({'; '.join(failed) or 'see model_promotions'}); "
                "next: load more history and retrain, or review the version in the MLflow UI "
                f"and promote it by hand (creditrisk promote --version {newest.version})")
    return (f"no version of {name} has the alias {alias!r}: version {newest.version} is "
            f"{tags.get('promotion_decision', 'not judged by the gate')}; next: promote a "
            "version (creditrisk promote --version N, or move the alias in the MLflow UI)")


def file_sha256(path: str | Path) -> str:
    """The sha256 of one file's bytes (what ``sha256sum`` prints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_digest(path: str | Path) -> str:
    """The sha256 of a model's artifact folder: of its ``sha256sum`` manifest, sorted by path.

    Equal to ``find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs sha256sum | sha256sum``
    run in the folder (a download's ``registered_model_meta``, written by the client, aside).
    """
    root = Path(path)
    files = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*")
                   if p.is_file() and p.relative_to(root).as_posix() not in _CLIENT_SIDE_FILES)
    manifest = "".join(f"{file_sha256(p)}  {rel}\n" for rel, p in files)
    return hashlib.sha256(manifest.encode()).hexdigest()


def recorded_digest(client: Any, ref: ModelRef, tag: str) -> str:
    """The sha256 the trainer recorded for ``ref`` under ``tag``; refuse when there is none.

    The version's own tag, else the tag of the logged model it was registered from (a
    version registered by hand from a trained model). Only the trainer may write either.
    """
    import re

    mv = client.get_model_version(ref.name, ref.version)
    value = dict(mv.tags or {}).get(tag)
    # registered from ``models:/m-<id>`` without a model id, the source still names it
    named = re.fullmatch(r"models:/(m-[0-9a-f]+)", str(mv.source or ""))
    model_id = getattr(mv, "model_id", None) or (named.group(1) if named else None)
    if not value and model_id:
        with contextlib.suppress(Exception):  # no logged model: the refusal below says so
            value = dict(client.get_logged_model(model_id).tags or {}).get(tag)
    if not value:
        raise ArtifactIntegrityError(
            f"{ref.name} v{ref.version} has no {tag} tag: an artifact whose hash the trainer "
            "did not record is never loaded; next: retrain (creditrisk train --as-of D) and "
            "promote the new version")
    return str(value)


def _refused(ref: ModelRef, what: str, actual: str, expected: str) -> ArtifactIntegrityError:
    return ArtifactIntegrityError(
        f"{ref.name} v{ref.version}: the sha256 of its {what} is {actual[:16]}, not the "
        f"{expected[:16]} recorded at training: refused (tampered with or corrupted in the "
        "artifact store); next: promote another version, or retrain")


def load_pipeline(ref: ModelRef, tracking_uri: str | None = None) -> Pipeline:
    """Load exactly the resolved version (never the alias again), verified.

    The artifact is downloaded, its digest compared with the trainer's tag, and only then
    read, by skops with :data:`SKOPS_TRUSTED_TYPES`: no pickle is ever loaded.

    Raises:
        ArtifactIntegrityError: no recorded hash, a hash that differs, or not a skops model.
    """
    import mlflow.artifacts
    from mlflow import MlflowClient

    with (registry_errors(tracking_uri, f"loading {ref.name} v{ref.version}"),
          tempfile.TemporaryDirectory(prefix="creditrisk-model-") as tmp):
        expected = recorded_digest(MlflowClient(), ref, MODEL_SHA256_TAG)
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=ref.uri, dst_path=tmp))
        actual = artifact_digest(local)
        if actual != expected:
            raise _refused(ref, "model files", actual, expected)
        return _read_skops(local, ref)


def _read_skops(local: Path, ref: ModelRef) -> Pipeline:
    import skops.io
    import yaml

    flavor = (yaml.safe_load((local / "MLmodel").read_text()).get("flavors") or {}).get(
        "sklearn") or {}
    fmt = flavor.get("serialization_format")
    if fmt != "skops":
        raise ArtifactIntegrityError(f"{ref.name} v{ref.version} is serialised as {fmt!r}, not "
                                     "skops: the platform never unpickles a model")
    path = (local / str(flavor.get("pickled_model", "model.skops"))).resolve()
    if not path.is_relative_to(local.resolve()):
        raise ArtifactIntegrityError(f"{ref.name} v{ref.version}: MLmodel names a file outside "
                                     "the model folder")
    model: Pipeline = skops.io.load(path, trusted=SKOPS_TRUSTED_TYPES)
    return model


def load_reference(ref: ModelRef, tracking_uri: str | None = None) -> dict[str, Any]:
    """The training reference distributions logged with the version's run, verified.

    Monitoring compares each scored day with it, so a reference whose hash differs (or was
    never recorded) is refused like a model: publishing with a forged one would hide drift.
    """
    import mlflow.artifacts
    from mlflow import MlflowClient

    what = f"reading the reference of {ref.name} v{ref.version}"
    with registry_errors(tracking_uri, what):
        expected = recorded_digest(MlflowClient(), ref, REFERENCE_SHA256_TAG)
    with tempfile.TemporaryDirectory(prefix="creditrisk-reference-") as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=ref.run_id, artifact_path="reference.json", dst_path=tmp)
        except Exception as exc:
            reason = _unreachable_reason(exc)
            if reason is not None:
                raise _unreachable(tracking_uri, reason, what) from exc
            raise ArtifactIntegrityError(
                f"{ref.name} v{ref.version}: its recorded reference.json cannot be read "
                f"({type(exc).__name__}): refused") from exc
        actual = file_sha256(path)
        if actual != expected:
            raise _refused(ref, "reference.json", actual, expected)
        with open(path) as fh:
            data: dict[str, Any] = json.load(fh)
    return data


def bound_mlflow_client(settings: Settings | None = None) -> MlflowHttpBounds:
    """Set MLflow's HTTP retries, backoff and timeout from the settings; return them.

    MLflow reads these environment variables at every request, so this bounds every
    MLflow call of the process from here on. Its own defaults (7 retries, backoff factor
    2, 120 s timeout) hang a task about four minutes on a registry that never answers;
    the settings' defaults fail within :meth:`MlflowHttpBounds.worst_case_s` (17.5 s).
    """
    from creditrisk.config import get_settings

    bounds = (settings or get_settings()).mlflow_http_bounds()
    os.environ.update({
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(bounds.retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(bounds.backoff_factor),
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": str(bounds.backoff_jitter),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(bounds.timeout_s),
    })
    return bounds


def use_role(role: Role) -> None:
    """Talk to MLflow as ``role``'s user from now on, in this process.

    MLflow reads MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD at each request; a
    role without a configured password leaves whatever is there (none, or the operator's).
    """
    from creditrisk.config import get_settings

    _use_identity(get_settings().mlflow_credentials(role))


def _use_identity(credentials: tuple[str, str] | None) -> None:
    if credentials is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = (
            credentials)


def configure_mlflow(tracking_uri: str | None, role: Role = READER) -> str:
    """Point MLflow at ``tracking_uri`` (from settings) as ``role``; return the experiment id.

    Only the trainer creates a missing experiment (and so owns it); for a reader a missing
    experiment is "".
    """
    import mlflow

    bound_mlflow_client()
    if not tracking_uri:
        raise InputError("MLFLOW_TRACKING_URI is not set: export it or run through ./platform")
    mlflow.set_tracking_uri(tracking_uri)
    use_role(role)
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        if role != TRAINER:
            return ""
        artifacts = os.environ.get("CREDITRISK_MLFLOW_ARTIFACT_ROOT")
        return str(mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts))
    return str(exp.experiment_id)


def current_champion(client: Any, model_name: str) -> str | None:
    """The version the ``champion`` alias points at, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model_name, CHAMPION).version)
    except MlflowException:
        return None


def set_alias(client: Any, model_name: str, alias: str, version: str) -> None:
    """Point ``alias`` of ``model_name`` at ``version`` (what moving it in the MLflow UI does)."""
    client.set_registered_model_alias(model_name, alias, version)


def attach_to_version(tracking_uri: str | None, name: str, version: str, *,
                      artifact_file: str, payload: dict[str, Any],
                      tags: dict[str, str], section: tuple[str, str] | None = None) -> str:
    """Log ``payload`` as a JSON artifact on the version's run and set ``tags`` on the
    version (what the MLflow UI's version page shows); return the version's run id.

    For reports computed after training (the nightly swap-set report of a challenger):
    the run is finished, and logging to it by id does not reopen it.
    """
    from mlflow import MlflowClient

    with registry_errors(tracking_uri, f"attaching {artifact_file} to {name} v{version}"):
        # a write to the registry (an artifact on the version's run, version tags): the
        # reader may not, so the report is attached as the trainer, then the process goes
        # back to reading as the reader
        configure_mlflow(tracking_uri, role=TRAINER)
        client = MlflowClient()
        run_id = str(client.get_model_version(name, version).run_id)
        client.log_dict(run_id, payload, artifact_file)
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        if section is not None:  # (title, body): a section of the version's description
            set_description_section(client, name, version, *section)
        use_role(READER)
    return run_id


def log_report_run(tracking_uri: str | None, *, run_name: str, tags: dict[str, str],
                   metrics: dict[str, float], artifacts: dict[str, list[Path]]) -> str:
    """Log a finished run of its own in the platform's experiment: ``tags``, ``metrics``
    and each folder's files (``{artifact folder: paths}``); return its run id.

    For reports computed outside training (the outcome backtest). A write: as the
    trainer (who owns the experiment), then the process reads as the reader again. A run
    that fails half-way is ended as ``FAILED``, so it never reads as a complete report.
    """
    from mlflow import MlflowClient

    with registry_errors(tracking_uri, f"logging the run {run_name}"):
        try:
            experiment_id = configure_mlflow(tracking_uri, role=TRAINER)
            client = MlflowClient()
            run_id = str(client.create_run(experiment_id, run_name=run_name,
                                           tags=tags).info.run_id)
            try:
                for key, value in metrics.items():
                    client.log_metric(run_id, key, float(value))
                for folder, paths in artifacts.items():
                    for path in paths:
                        client.log_artifact(run_id, str(path), artifact_path=folder)
            except BaseException:
                with contextlib.suppress(Exception):
                    client.set_terminated(run_id, status="FAILED")
                raise
            client.set_terminated(run_id, status="FINISHED")
        finally:
            use_role(READER)
    return run_id


def replace_section(text: str, title: str, body: str) -> str:
    """``text`` (Markdown) with its ``### title`` section replaced by ``body`` (or added at
    the end); the text before the first section and every other section are kept."""
    import re

    head = f"### {title}\n"
    chunks = [c.strip() for c in re.split(r"(?m)^(?=### )", text or "")]
    new = head + body.strip()
    out = [new if (c + "\n").startswith(head) else c for c in chunks if c]
    return "\n\n".join(out if new in out else [*out, new])


def set_description_section(client: Any, name: str, version: str, title: str,
                            body: str) -> str:
    """Put ``### title`` with ``body`` in the version's description (what the MLflow UI's
    version page shows first), replacing a section of that title. A write: as the trainer."""
    mv = client.get_model_version(name, version)
    description = replace_section(str(mv.description or ""), title, body)
    client.update_model_version(name, version, description=description)
    return description


def describe_model(client: Any, name: str, description: str) -> None:
    """Set the registered model's description (the model page's "About"). As the trainer."""
    client.update_registered_model(name, description=description)


def provision(tracking_uri: str, model_name: str, *, admin: tuple[str, str],
              trainer: tuple[str, str], reader: tuple[str, str]) -> dict[str, str]:
    """Make an authenticated MLflow server ready for the platform; safe to run again.

    As the admin: create the trainer and the reader (or reset their passwords to the given
    ones). As the trainer: create the experiment and the registered model when missing, so
    that no other user can own them (MLflow lets any user create a resource, and its creator
    manages it). As the admin again: grant the trainer MANAGE on both, which also covers
    ones created before authentication was switched on. Everyone else has the server's
    ``default_permission``, READ.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    with registry_errors(tracking_uri, "provisioning the registry's users"):
        for username, password in (trainer, reader):
            _ensure_user(tracking_uri, admin, username, password)
        mlflow.set_tracking_uri(tracking_uri)
        _use_identity(trainer)
        exp = mlflow.get_experiment_by_name(EXPERIMENT)
        # no artifact location of its own: the server's served store (--serve-artifacts), so
        # that artifact writes pass the server's permission checks as well
        experiment_id = str(exp.experiment_id) if exp is not None else str(
            mlflow.create_experiment(EXPERIMENT))
        client = MlflowClient()
        try:
            client.get_registered_model(model_name)
        except MlflowException:
            client.create_registered_model(model_name)
        for kind, resource in (("experiment", experiment_id), ("registered_model", model_name)):
            _grant_manage(tracking_uri, admin, trainer[0], kind, resource)
    return {"experiment_id": experiment_id, "model_name": model_name,
            "trainer": trainer[0], "reader": reader[0]}


def _ensure_user(tracking_uri: str, admin: tuple[str, str], username: str,
                 password: str) -> None:
    body = {"username": username, "password": password}
    resp = _admin_call(tracking_uri, admin, "POST", "/api/2.0/mlflow/users/create", body,
                       ok=(200, 400))
    if resp.status_code == 400:  # it exists: make its password the configured one
        if "RESOURCE_ALREADY_EXISTS" not in resp.text and "already exists" not in resp.text:
            raise ServiceUnavailableError(
                f"MLflow refused to create user {username}: {resp.text.strip()[:200]}")
        _admin_call(tracking_uri, admin, "PATCH", "/api/2.0/mlflow/users/update-password",
                    body)


def _grant_manage(tracking_uri: str, admin: tuple[str, str], username: str, kind: str,
                  resource: str) -> None:
    """Give ``username`` MANAGE on one resource, replacing a lower grant it may hold."""
    grant = {"username": username, "resource_type": kind, "resource_id": resource}
    base = "/api/3.0/mlflow/users/permissions"
    import requests

    held = requests.get(f"{tracking_uri.rstrip('/')}{base}/get", params=grant, auth=admin,
                        timeout=30)
    if held.status_code == 200 and held.json().get("permission") == "MANAGE":
        return
    _admin_call(tracking_uri, admin, "POST", f"{base}/revoke", grant, ok=(200, 400, 404))
    _admin_call(tracking_uri, admin, "POST", f"{base}/grant", {**grant, "permission": "MANAGE"})


def _admin_call(tracking_uri: str, admin: tuple[str, str], method: str, path: str,
                body: dict[str, str], ok: tuple[int, ...] = (200,)) -> Any:
    import requests

    resp = requests.request(method, tracking_uri.rstrip("/") + path, json=body, auth=admin,
                            timeout=30)
    if resp.status_code not in ok:
        hint = {401: "the admin password is wrong", 403: "the user is not an admin"}.get(
            resp.status_code, resp.text.strip()[:200])
        raise ServiceUnavailableError(
            f"MLflow at {describe_uri(tracking_uri)} answered {resp.status_code} to "
            f"{method} {path} as {admin[0]}: {hint}")
    return resp
