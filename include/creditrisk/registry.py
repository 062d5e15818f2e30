"""The MLflow registry: every MLflow tracking and registry call of the platform goes here.

Configure the client (:func:`configure_mlflow`), resolve an alias to one version
(:func:`resolve_alias`), load exactly that version (:func:`load_pipeline`) and its
training reference (:func:`load_reference`), read and move aliases
(:func:`current_champion`, :func:`set_alias`). Aliases only, never stages: ``champion``
is what scoring and the API serve, ``challenger`` is the newest candidate.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from creditrisk.errors import CreditRiskError, InputError, ServiceUnavailableError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from creditrisk.config import MlflowHttpBounds, Settings

log = logging.getLogger(__name__)

EXPERIMENT = "creditrisk-pd"
CHAMPION = "champion"
CHALLENGER = "challenger"


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


def load_pipeline(ref: ModelRef, tracking_uri: str | None = None) -> Pipeline:
    """Load exactly the resolved version (never the alias again)."""
    import mlflow.sklearn

    with registry_errors(tracking_uri, f"loading {ref.name} v{ref.version}"):
        model: Pipeline = mlflow.sklearn.load_model(ref.uri)
    return model


def load_reference(ref: ModelRef, tracking_uri: str | None = None) -> dict[str, Any] | None:
    """The training reference distributions logged with the version's run, if any.

    A version without one gives monitoring without PSI; an unreachable registry is an
    error (publishing without the reference would silently drop the drift check).
    """
    import mlflow.artifacts

    try:
        path = mlflow.artifacts.download_artifacts(run_id=ref.run_id,
                                                   artifact_path="reference.json")
    except Exception as exc:
        reason = _unreachable_reason(exc)
        if reason is not None:
            raise _unreachable(tracking_uri, reason,
                               f"reading the reference of {ref.name} v{ref.version}") from exc
        log.warning("model %s v%s has no reference.json: PSI not computed", ref.name,
                    ref.version)
        return None
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


def configure_mlflow(tracking_uri: str | None) -> str:
    """Point MLflow at ``tracking_uri`` (from settings) and return the experiment id."""
    import mlflow

    bound_mlflow_client()
    if not tracking_uri:
        raise InputError("MLFLOW_TRACKING_URI is not set: export it or run through ./platform")
    mlflow.set_tracking_uri(tracking_uri)
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is None:
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
                      tags: dict[str, str]) -> str:
    """Log ``payload`` as a JSON artifact on the version's run and set ``tags`` on the
    version (what the MLflow UI's version page shows); return the version's run id.

    For reports computed after training (the nightly swap-set report of a challenger):
    the run is finished, and logging to it by id does not reopen it.
    """
    from mlflow import MlflowClient

    with registry_errors(tracking_uri, f"attaching {artifact_file} to {name} v{version}"):
        configure_mlflow(tracking_uri)
        client = MlflowClient()
        run_id = str(client.get_model_version(name, version).run_id)
        client.log_dict(run_id, payload, artifact_file)
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
    return run_id
