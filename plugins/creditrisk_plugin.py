"""The platform's Airflow plugin: task links, nav entries and Data Docs behind Airflow's login.

* **Extra links** on the tasks that already return what a link needs (their
  ``return_value`` XCom): ``train_model.train`` and ``score_customers.prepare`` /
  ``publish`` get "MLflow run" and "MLflow model version"; ``ingest_transactions.ingest``
  and ``ingest_loans.ingest`` get "Data Docs" (the file's validation page when the run
  validated one file; the index, which lists every suite's pages, for several);
  ``ingest_loans.backtest`` gets "MLflow run" (the check's plots and tables).
  The API server builds them (it attaches plugin links to every ``@task`` operator and
  calls ``get_link``); a link answers ``""`` (no button) on any other task.
* **Nav entries** (``external_views``): the MLflow UI, the API docs and Data Docs.
* **Data Docs** served by a FastAPI app mounted on the Airflow API server at
  ``/creditrisk/data-docs``. Airflow does not guard plugin apps: every request here
  goes through Airflow's own ``get_user`` (the ``Authorization: Bearer`` JWT, else the
  UI's ``_token`` cookie), then the auth manager must allow reading the task instances
  of ``ingest_transactions`` (whose logs already name these pages).

Settings (environment): ``CREDITRISK_MLFLOW_UI_URL`` (browser URL of the MLflow UI;
default ``MLFLOW_TRACKING_URI`` when it is http(s), else ``http://localhost:5000``),
``CREDITRISK_API_DOCS_URL`` (default ``http://localhost:8000/docs``) and the existing
``CREDITRISK_GX_DIR`` (the Great Expectations project whose Data Docs are served).

Airflow imports every file of this folder in the API server, the scheduler, the
dag-processor and the workers: the module imports only FastAPI and Airflow's plugin and
link bases; the database, auth manager and GX lookups are imported where they run.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urlsplit

from airflow.plugins_manager import AirflowPlugin
from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.sdk import BaseOperatorLink
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse

PLUGIN_NAME = "creditrisk"
MLFLOW_UI_ENV = "CREDITRISK_MLFLOW_UI_URL"
API_DOCS_ENV = "CREDITRISK_API_DOCS_URL"
DATA_DOCS_PREFIX = "/creditrisk/data-docs"
#: ``base_directory`` of the ``local_site`` Data Docs site in great_expectations.yml
DATA_DOCS_SITE = "uncommitted/data_docs/local_site"
INGEST_DAG = "ingest_transactions"
LOANS_DAG = "ingest_loans"

#: (dag_id, task_id) -> (key of the MLflow run id, key of the model version) in the
#: task's return value; the model name is under ``model_name`` (train: settings' name).
MODEL_TASKS: dict[tuple[str, str], tuple[str, str]] = {
    ("train_model", "train"): ("parent_run_id", "version"),
    ("score_customers", "prepare"): ("model_run_id", "model_version"),
    ("score_customers", "publish"): ("model_run_id", "model_version"),
    # the backtest's own run; it judges several versions, so no version link
    ("ingest_loans", "backtest"): ("mlflow_run_id", "no_single_version"),
}
DATA_DOCS_TASKS = {(INGEST_DAG, "ingest"), (LOANS_DAG, "ingest")}


# ----------------------------------------------------------------------------- settings


def mlflow_ui_url() -> str:
    """Browser URL of the MLflow UI, without a trailing slash."""
    url = os.environ.get(MLFLOW_UI_ENV, "").strip()
    if not url:
        tracking = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
        url = tracking if tracking.startswith(("http://", "https://")) else "http://localhost:5000"
    return url.rstrip("/")


def api_docs_url() -> str:
    """Browser URL of the serving API's interactive docs."""
    return os.environ.get(API_DOCS_ENV, "").strip() or "http://localhost:8000/docs"


def data_docs_root() -> Path:
    """The folder of the rendered Data Docs site (resolved at each call: it may move)."""
    from creditrisk.ingest.validate import gx_dir  # stdlib-only at import

    return gx_dir() / DATA_DOCS_SITE


def airflow_path(path: str) -> str:
    """``path`` under the path of ``[api] base_url`` (Airflow may be served below a prefix)."""
    from airflow.configuration import conf

    base = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    return base + path


# ----------------------------------------------------------------------------- URLs


def mlflow_run_url(run_id: str) -> str:
    return f"{mlflow_ui_url()}/#/runs/{quote(run_id, safe='')}"


def model_version_url(model_name: str, version: str | int) -> str:
    return (f"{mlflow_ui_url()}/#/models/{quote(model_name, safe='')}"
            f"/versions/{quote(str(version), safe='')}")


def data_docs_page(file_url: str | None) -> str:
    """The served URL of a Data Docs page GX named by its ``file://`` URL ("" if none)."""
    if not file_url:
        return ""
    path = unquote(urlsplit(file_url).path)
    marker = f"/{DATA_DOCS_SITE}/"
    if marker not in path:
        return ""
    rel = path.split(marker, 1)[1]
    return airflow_path(f"{DATA_DOCS_PREFIX}/{quote(rel)}")


def ingest_link(value: Any) -> str:
    """The day's page when the run validated one file, the Data Docs index for several."""
    pages = [d.get("data_docs") for d in value or [] if isinstance(d, dict) and d.get("data_docs")]
    if len(pages) == 1:
        return data_docs_page(pages[0])
    return airflow_path(f"{DATA_DOCS_PREFIX}/index.html") if pages else ""


def model_links(dag_id: str, task_id: str, value: Any) -> tuple[str, str]:
    """(MLflow run URL, model version URL) of a model task's return value ("" when absent)."""
    keys = MODEL_TASKS.get((dag_id, task_id))
    if keys is None or not isinstance(value, dict):
        return "", ""
    run_id, version = value.get(keys[0]), value.get(keys[1])
    name = value.get("model_name") or _configured_model_name()
    return (mlflow_run_url(str(run_id)) if run_id else "",
            model_version_url(str(name), version) if version not in (None, "") else "")


def _configured_model_name() -> str:
    from creditrisk.config import get_settings

    return get_settings().model_name


# ----------------------------------------------------------------------------- links


def return_value(ti_key: Any) -> Any:
    """The ``return_value`` XCom of one task instance, read from Airflow's metadata DB."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        value = session.execute(
            XComModel.get_many(
                key="return_value", run_id=ti_key.run_id, dag_ids=ti_key.dag_id,
                task_ids=ti_key.task_id, map_indexes=ti_key.map_index,
            ).with_only_columns(XComModel.value)
        ).scalar()
    if isinstance(value, str):  # the execution API may store the JSON text itself
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    return value


class _TaskLink(BaseOperatorLink):
    # every @task is a _PythonDecoratedOperator: the link filters on dag and task id
    operators: ClassVar[list[type]] = [_PythonDecoratedOperator]
    tasks: ClassVar[set[tuple[str, str]]] = set()

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        if (ti_key.dag_id, ti_key.task_id) not in self.tasks:
            return ""
        return self.url(ti_key.dag_id, ti_key.task_id, return_value(ti_key))

    def url(self, dag_id: str, task_id: str, value: Any) -> str:
        raise NotImplementedError


class MlflowRunLink(_TaskLink):
    name = "MLflow run"
    tasks = set(MODEL_TASKS)

    def url(self, dag_id: str, task_id: str, value: Any) -> str:
        return model_links(dag_id, task_id, value)[0]


class MlflowModelVersionLink(_TaskLink):
    name = "MLflow model version"
    tasks = set(MODEL_TASKS)

    def url(self, dag_id: str, task_id: str, value: Any) -> str:
        return model_links(dag_id, task_id, value)[1]


class DataDocsLink(_TaskLink):
    name = "Data Docs"
    tasks = DATA_DOCS_TASKS

    def url(self, dag_id: str, task_id: str, value: Any) -> str:
        return ingest_link(value)


# ----------------------------------------------------------------------------- Data Docs app


async def require_ingest_reader(request: Request) -> None:
    """Airflow's login on a plugin route: a valid JWT, and read access to the ingest DAG.

    No or expired token: 401; an invalid token or a user without access: 403.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        DagAccessEntity,
        DagDetails,
    )
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPBearer

    bearer = await HTTPBearer(auto_error=False)(request)
    user = await get_user(request, _oauth_token=None, bearer_credentials=bearer)
    allowed = get_auth_manager().is_authorized_dag(
        method="GET", access_entity=DagAccessEntity.TASK_INSTANCE,
        details=DagDetails(id=INGEST_DAG), user=user,
    )
    if not allowed:
        raise HTTPException(status_code=403, detail="Forbidden")


def safe_file(root: Path, rel: str) -> Path | None:
    """``root/rel`` if it is a file inside ``root`` (no ``..``, no symlink out), else None."""
    base = root.resolve()
    try:
        target = (base / rel).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target


data_docs_app = FastAPI(
    title="Credit-risk Data Docs", dependencies=[Depends(require_ingest_reader)],
    docs_url=None, redoc_url=None, openapi_url=None,
)


@data_docs_app.get("/", include_in_schema=False)
def data_docs_home(request: Request) -> RedirectResponse:
    return RedirectResponse(str(request.url_for("data_docs_file", path="index.html")))


@data_docs_app.get("/{path:path}", include_in_schema=False)
def data_docs_file(path: str) -> FileResponse:
    target = safe_file(data_docs_root(), path)
    if target is None:
        raise HTTPException(status_code=404, detail="No such Data Docs page")
    return FileResponse(target)


# ----------------------------------------------------------------------------- plugin


class CreditRiskPlugin(AirflowPlugin):
    name = PLUGIN_NAME
    operator_extra_links = [MlflowRunLink(), MlflowModelVersionLink(), DataDocsLink()]
    fastapi_apps = [
        {"app": data_docs_app, "url_prefix": DATA_DOCS_PREFIX, "name": "Credit-risk Data Docs"},
    ]
    external_views = [
        {"name": "MLflow", "href": mlflow_ui_url(), "destination": "nav",
         "category": "Credit risk"},
        {"name": "API docs", "href": api_docs_url(), "destination": "nav",
         "category": "Credit risk"},
        {"name": "Data Docs", "href": airflow_path(f"{DATA_DOCS_PREFIX}/index.html"),
         "url_route": "data-docs", "destination": "nav", "category": "Credit risk"},
    ]
