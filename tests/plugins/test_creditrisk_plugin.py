"""plugins/creditrisk_plugin.py, loaded by Airflow's own plugin manager and served by its API.

The links, nav entries and the Data Docs app are exercised through the Airflow API
server app (``create_app``) on the session's metadata DB: the DAGs are synced as the
dag-processor does, runs and ``return_value`` XComs are written with Airflow's models,
and tokens are minted by the active auth manager.
"""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PLUGIN_FILE = REPO / "plugins" / "creditrisk_plugin.py"
LINK_NAMES = {"MLflow run", "MLflow model version", "Data Docs"}


@pytest.fixture(scope="module")
def plugin() -> Any:
    from airflow import plugins_manager

    plugins_manager.ensure_plugins_loaded()
    plugins, errors = plugins_manager._get_plugins()
    assert str(PLUGIN_FILE) not in errors, errors
    found = [p for p in plugins if p.name == "creditrisk"]
    assert len(found) == 1
    return found[0]


@pytest.fixture(scope="module")
def module(plugin: Any) -> ModuleType:
    """The module exactly as the plugin manager imported it."""
    return sys.modules[type(plugin).__module__]


# ----------------------------------------------------------------------------- loading


def test_the_plugin_loads_from_the_plugins_folder(plugin: Any, module: ModuleType) -> None:
    from airflow import plugins_manager

    assert plugin.source.path == "creditrisk_plugin.py"  # relative to [core] plugins_folder
    assert Path(str(module.__file__)) == PLUGIN_FILE
    info = {i["name"]: i for i in plugins_manager.get_plugin_info()}["creditrisk"]
    assert info["fastapi_apps"] == [{"app": "fastapi.applications.FastAPI",
                                     "url_prefix": "/creditrisk/data-docs",
                                     "name": "Credit-risk Data Docs"}]
    names = {link.name for link in plugins_manager.get_operator_extra_links()}
    assert names >= LINK_NAMES


def test_external_views_are_valid_airflow_views(plugin: Any) -> None:
    from airflow import plugins_manager
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

    external_views, _ = plugins_manager._get_ui_plugins()
    ours = {v["name"]: ExternalViewResponse.model_validate(v) for v in plugin.external_views}
    assert set(ours) == {"MLflow", "API docs", "Data Docs"}
    # _get_ui_plugins drops a view whose url_route clashes; it routes only those with one
    assert len(plugin.external_views) == 3
    assert [v for v in external_views if v in plugin.external_views] == [
        v for v in plugin.external_views if v.get("url_route")]
    assert ours["MLflow"].href.startswith("http")
    assert ours["API docs"].href.endswith("/docs")
    assert ours["Data Docs"].href == "/creditrisk/data-docs/index.html"
    assert ours["Data Docs"].url_route == "data-docs"
    assert {v.destination for v in ours.values()} == {"nav"}


def test_links_attach_to_the_decorated_task_operator(plugin: Any) -> None:
    from airflow.providers.standard.decorators.python import _PythonDecoratedOperator

    for link in plugin.operator_extra_links:
        assert link.operators == [_PythonDecoratedOperator]


def test_data_docs_site_matches_the_gx_project(module: ModuleType) -> None:
    config = yaml.safe_load((REPO / "great_expectations" / "great_expectations.yml").read_text())
    site = config["data_docs_sites"]["local_site"]["store_backend"]["base_directory"]
    assert site.rstrip("/") == module.DATA_DOCS_SITE


# ----------------------------------------------------------------------------- URLs


def test_urls_come_from_the_configured_bases(
    module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDITRISK_MLFLOW_UI_URL", "https://mlflow.example.org/")
    run, version = module.model_links(
        "score_customers", "prepare",
        {"model_name": "credit-risk-pd", "model_version": "7", "model_run_id": "r/1"},
    )
    assert run == "https://mlflow.example.org/#/runs/r%2F1"
    assert version == "https://mlflow.example.org/#/models/credit-risk-pd/versions/7"
    monkeypatch.delenv("CREDITRISK_MLFLOW_UI_URL")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5001")
    assert module.mlflow_run_url("x") == "http://127.0.0.1:5001/#/runs/x"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://u@h/mlflow")  # not a browser URL
    assert module.mlflow_run_url("x") == "http://localhost:5000/#/runs/x"
    monkeypatch.setenv("CREDITRISK_API_DOCS_URL", "https://api.example.org/docs")
    assert module.api_docs_url() == "https://api.example.org/docs"


def test_model_links_need_their_keys(module: ModuleType) -> None:
    assert module.model_links("train_model", "train", {"as_of": "2019-02-14"}) == ("", "")
    assert module.model_links("build_features", "build", {"parent_run_id": "a"}) == ("", "")
    assert module.model_links("train_model", "train", None) == ("", "")


def test_ingest_link_maps_the_gx_file_url(module: ModuleType) -> None:
    page = ("file:///opt/airflow/project/great_expectations/uncommitted/data_docs/local_site/"
            "validations/raw_transactions/20190213T000000/x%20y.html")
    day = {"logical_date": "2019-02-13", "data_docs": page}
    assert module.ingest_link([day]) == (
        "/creditrisk/data-docs/validations/raw_transactions/20190213T000000/x%20y.html")
    assert module.ingest_link([day, dict(day)]) == "/creditrisk/data-docs/index.html"
    assert module.ingest_link([{"data_docs": None}]) == ""
    assert module.ingest_link([{"data_docs": "file:///tmp/elsewhere.html"}]) == ""
    assert module.ingest_link(None) == ""


def test_safe_file_refuses_to_leave_the_site(module: ModuleType, tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "validations").mkdir(parents=True)
    (site / "validations" / "a.html").write_text("a")
    (tmp_path / "secret.txt").write_text("s")
    (site / "link.txt").symlink_to(tmp_path / "secret.txt")
    assert module.safe_file(site, "validations/a.html") == (site / "validations" / "a.html")
    for bad in ("../secret.txt", "validations/../../secret.txt", str(tmp_path / "secret.txt"),
                "link.txt", "validations", "missing.html"):
        assert module.safe_file(site, bad) is None, bad


# ----------------------------------------------------------------------------- API server


@pytest.fixture(scope="module")
def api(plugin: Any, airflow_db: None) -> Iterator[Any]:
    """Airflow's API server app (plugins mounted), with the DAGs synced to its DB."""
    from airflow.api_fastapi.app import create_app
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session
    from fastapi.testclient import TestClient

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    dags = REPO / "dags"
    bag = BundleDagBag(dag_folder=str(dags), bundle_path=dags, bundle_name="dags-folder",
                       safe_mode=False)
    assert bag.import_errors == {}
    sync_bag_to_db(bag, "dags-folder", None)
    with TestClient(create_app("core")) as client:
        yield client


def _token(role: str | None) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="someone", role=role))


def _bearer(role: str | None = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {_token(role)}"}


def _run_with_return_value(dag_id: str, values: dict[str, Any]) -> str:
    """A run of ``dag_id`` whose tasks returned ``values`` (task_id -> XCom value)."""
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    run_id = f"plugin-test-{uuid.uuid4().hex[:8]}"
    with create_session() as session:
        dag = SerializedDagModel.get_dag(dag_id, session=session)
        assert dag is not None
        dag.create_dagrun(
            run_id=run_id, run_after=dt.datetime(2019, 2, 14, tzinfo=dt.UTC),
            run_type=DagRunType.MANUAL, triggered_by=DagRunTriggeredByType.TEST,
            state=DagRunState.SUCCESS, session=session,
        )
        for task_id, value in values.items():
            XComModel.set("return_value", value, dag_id=dag_id, task_id=task_id, run_id=run_id,
                          session=session)
    return run_id


def _links(api: Any, dag_id: str, run_id: str, task_id: str) -> dict[str, str | None]:
    r = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links",
                headers=_bearer())
    assert r.status_code == 200, r.text
    return r.json()["extra_links"]


def test_api_lists_the_plugin(api: Any) -> None:
    r = api.get("/api/v2/plugins", headers=_bearer())
    assert r.status_code == 200
    (ours,) = [p for p in r.json()["plugins"] if p["name"] == "creditrisk"]
    assert {v["name"] for v in ours["external_views"]} == {"MLflow", "API docs", "Data Docs"}
    assert len(ours["operator_extra_links"]) == 3


def test_training_task_links_to_its_run_and_version(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDITRISK_MLFLOW_UI_URL", "http://mlflow.test:5000")
    run_id = _run_with_return_value("train_model", {"train": {
        "as_of": "2019-02-14", "parent_run_id": "0a1b2c", "version": "4", "selected": "xgboost",
        "promotion": "promoted", "model_name": "credit-risk-pd"}})
    assert _links(api, "train_model", run_id, "train") == {
        "MLflow run": "http://mlflow.test:5000/#/runs/0a1b2c",
        "MLflow model version": "http://mlflow.test:5000/#/models/credit-risk-pd/versions/4",
        "Data Docs": None,
    }


def test_scoring_tasks_link_to_the_champion_they_used(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDITRISK_MLFLOW_UI_URL", "http://mlflow.test:5000")
    plan = {"score_date": "2019-02-14", "model_name": "credit-risk-pd", "model_version": "3",
            "model_run_id": "ffee", "customers": 10, "chunks": 1}
    published = {"score_date": "2019-02-14", "published": 10, "model_name": "credit-risk-pd",
                  "model_version": "3", "model_run_id": "ffee"}
    run_id = _run_with_return_value(
        "score_customers", {"prepare": plan, "publish": published, "chunk_ids": [0]})
    for task_id in ("prepare", "publish"):
        links = _links(api, "score_customers", run_id, task_id)
        assert links["MLflow run"] == "http://mlflow.test:5000/#/runs/ffee", task_id
        assert links["MLflow model version"] == (
            "http://mlflow.test:5000/#/models/credit-risk-pd/versions/3"), task_id
        assert links["Data Docs"] is None
    # another @task of the same operator class gets no button
    assert set(_links(api, "score_customers", run_id, "chunk_ids").values()) == {None}


def test_ingest_links_to_the_days_data_docs(api: Any) -> None:
    page = ("file:///x/great_expectations/uncommitted/data_docs/local_site/validations/"
            "raw_transactions/20190213/page.html")
    run_id = _run_with_return_value("ingest_transactions", {
        "ingest": [{"source_file": "xente_2019-02-13.csv", "logical_date": "2019-02-13",
                    "status": "loaded", "data_docs": page}]})
    links = _links(api, "ingest_transactions", run_id, "ingest")
    assert links["Data Docs"] == (
        "/creditrisk/data-docs/validations/raw_transactions/20190213/page.html")
    assert links["MLflow run"] is None


def test_ingest_loans_links_to_its_data_docs(api: Any) -> None:
    site = "file:///x/great_expectations/uncommitted/data_docs/local_site/validations/"
    loans = {"kind": "loans", "source_file": "loans_2019-02-13.csv",
             "data_docs": site + "loans/20190213/page.html"}
    one = _run_with_return_value("ingest_loans", {"ingest": [loans]})
    assert _links(api, "ingest_loans", one, "ingest")["Data Docs"] == (
        "/creditrisk/data-docs/validations/loans/20190213/page.html")
    pays = {"kind": "repayments", "source_file": "repayments_2019-02-13.csv",
            "data_docs": site + "repayments/20190213/page.html"}
    both = _run_with_return_value("ingest_loans", {"ingest": [loans, pays]})
    links = _links(api, "ingest_loans", both, "ingest")
    assert links["Data Docs"] == "/creditrisk/data-docs/index.html"
    assert links["MLflow run"] is None


def test_the_backtest_links_to_its_mlflow_run(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITRISK_MLFLOW_UI_URL", "http://mlflow.test:5000")
    run_id = _run_with_return_value("ingest_loans", {
        "backtest": {"as_of": "2019-02-14", "bands": [], "mlflow_run_id": "bt01"}})
    links = _links(api, "ingest_loans", run_id, "backtest")
    assert links["MLflow run"] == "http://mlflow.test:5000/#/runs/bt01"
    assert links["MLflow model version"] is None and links["Data Docs"] is None
    # without a run (no tracking URI, or MLflow was down) there is no button
    none = _run_with_return_value("ingest_loans", {"backtest": {"mlflow_run_id": None}})
    assert set(_links(api, "ingest_loans", none, "backtest").values()) == {None}


# ----------------------------------------------------------------------------- Data Docs auth


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    gx = tmp_path / "gx"
    root = gx / "uncommitted" / "data_docs" / "local_site"
    (root / "validations").mkdir(parents=True)
    (root / "index.html").write_text("<html>creditrisk data docs index</html>")
    (root / "validations" / "day.html").write_text("<html>the day</html>")
    (gx / "secret.txt").write_text("not for the web")
    monkeypatch.setenv("CREDITRISK_GX_DIR", str(gx))
    return root


def test_data_docs_refuse_a_request_without_a_token(api: Any, site: Path) -> None:
    api.cookies.clear()
    for path in ("/creditrisk/data-docs/index.html", "/creditrisk/data-docs/",
                 "/creditrisk/data-docs/missing.html"):
        assert api.get(path, follow_redirects=False).status_code == 401, path


def test_data_docs_refuse_a_bad_token_or_a_user_without_access(api: Any, site: Path) -> None:
    bad = {"Authorization": "Bearer not-a-jwt"}
    assert api.get("/creditrisk/data-docs/index.html", headers=bad).status_code == 403
    r = api.get("/creditrisk/data-docs/index.html", headers=_bearer(role=None))
    assert r.status_code == 403


def test_data_docs_served_with_a_valid_token(api: Any, site: Path) -> None:
    r = api.get("/creditrisk/data-docs/index.html", headers=_bearer("viewer"))
    assert r.status_code == 200
    assert "creditrisk data docs index" in r.text
    assert r.headers["content-type"].startswith("text/html")
    r = api.get("/creditrisk/data-docs/", headers=_bearer(), follow_redirects=False)
    assert r.status_code == 307
    assert r.headers["location"].endswith("/creditrisk/data-docs/index.html")
    # the UI's cookie works as well
    api.cookies.set("_token", _token("admin"))
    try:
        r = api.get("/creditrisk/data-docs/validations/day.html")
    finally:
        api.cookies.clear()
    assert r.status_code == 200 and "the day" in r.text


def test_data_docs_refuse_path_traversal(api: Any, site: Path) -> None:
    for path in ("..%2F..%2F..%2Fsecret.txt", "%2e%2e/%2e%2e/%2e%2e/secret.txt",
                 "validations/..%2F..%2F..%2F..%2Fsecret.txt", "%2Fetc%2Fpasswd"):
        r = api.get(f"/creditrisk/data-docs/{path}", headers=_bearer())
        assert r.status_code == 404, path
        assert "not for the web" not in r.text
