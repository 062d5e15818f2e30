"""The shared notifier (plugins/creditrisk_notifier.py) against a real webhook on loopback.

Task-failure callbacks call it in the task's process; the scoring deadline calls it in
the triggerer. The deadline test goes through Airflow's own machinery on the test
session's metadata DB: the parsed DAG is written to the DB, a run is created (which
creates its Deadline row from the DAG's DeadlineAlert), the missed deadline is handled
as the scheduler's loop does (``Deadline.handle_miss``), and the queued callback runs
as the triggerer runs it (``CallbackTrigger``). Only the two loops themselves are not
started.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.alert_receiver import webhook_receiver

REPO = Path(__file__).resolve().parents[2]


def _notifier():  # type: ignore[no-untyped-def]
    """The plugin module, imported as Airflow's processes import it (plugins/ on sys.path)."""
    import importlib

    importlib.import_module("airflow.sdk")  # Airflow puts [core] plugins_folder on sys.path
    return importlib.import_module("creditrisk_notifier")


def _facts(post: dict) -> dict[str, str]:
    fields = next(b for b in post["blocks"] if "fields" in b)["fields"]
    return {f["text"].split("\n")[0].strip("*"): f["text"].split("\n", 1)[1] for f in fields}


def test_a_task_failure_posts_one_alert() -> None:
    notifier = _notifier().CreditRiskNotifier

    ti = SimpleNamespace(dag_id="score_customers", task_id="publish", run_id="scheduled__x",
                         try_number=3, log_url="http://airflow/log")
    with webhook_receiver() as rec:
        notifier(webhook_url=rec.url)({"ti": ti, "exception": TimeoutError("hung")})
    assert rec.kinds() == ["task_failed"]
    assert "score_customers.publish failed" in rec.posts[0]["text"]
    assert "TimeoutError: hung" in rec.posts[0]["text"]
    assert _facts(rec.posts[0])["Try"] == "3"


def test_the_deadline_alert_is_built_from_the_run() -> None:
    alert = _notifier().deadline_alert({
        "dag_run": {"dag_id": "score_customers", "dag_run_id": "manual__1", "state": "running",
                    "queued_at": "2019-02-14T03:00:00Z"},
        "deadline": {"id": "d", "deadline_time": dt.datetime(2019, 2, 14, 4, tzinfo=dt.UTC)},
    })
    assert alert.kind == "deadline_missed"
    assert alert.facts["Deadline"] == "2019-02-14T04:00:00+00:00"
    assert alert.facts["State"] == "running" and alert.facts["Run"] == "manual__1"


def _sync_dags() -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()  # the "dags-folder" bundle the DAGs belong to
    bag = BundleDagBag(dag_folder=str(REPO / "dags"), bundle_path=REPO / "dags",
                       safe_mode=False)
    assert bag.import_errors == {}
    sync_bag_to_db(bag, "dags-folder", None)


def _run_with_deadline(run_id: str):  # type: ignore[no-untyped-def]
    """Create a queued score_customers run as the API does; return its Deadline rows."""
    from airflow.models import Deadline
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import select

    dag = SerializedDagModel.get_dag("score_customers")
    assert dag is not None
    with create_session() as session:
        run = dag.create_dagrun(
            run_id=run_id, run_after=dt.datetime.now(dt.UTC), conf={},
            run_type=DagRunType.MANUAL, triggered_by=DagRunTriggeredByType.TEST,
            state=DagRunState.QUEUED, session=session)
        session.flush()
        deadlines = session.scalars(select(Deadline).where(Deadline.dagrun_id == run.id)).all()
        return [(d.id, d.deadline_time, run.queued_at) for d in deadlines]


def _miss_and_run_callback(deadline_id) -> list[dict]:  # type: ignore[no-untyped-def]
    """Handle the miss as the scheduler does, then run the callback as the triggerer does."""
    from airflow.models import Deadline
    from airflow.triggers.callback import CallbackTrigger
    from airflow.utils.session import create_session

    with create_session() as session:
        deadline = session.get(Deadline, deadline_id)
        deadline.handle_miss(session)
        data = dict(deadline.callback.data)
    trigger = CallbackTrigger(callback_path=data["path"], callback_kwargs=dict(data["kwargs"]))

    async def events() -> list[dict]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(events())


def test_the_deadline_is_on_the_queue_time_and_configurable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.sdk import AsyncCallback
    from airflow.sdk.definitions.deadline import DagRunQueuedAtDeadline

    def bag():  # type: ignore[no-untyped-def]
        return BundleDagBag(dag_folder=str(REPO / "dags"), bundle_path=REPO / "dags",
                            safe_mode=False)

    def parsed():  # type: ignore[no-untyped-def]
        (alert,) = bag().dags["score_customers"].deadline
        return alert

    default = parsed()
    assert isinstance(default.reference, DagRunQueuedAtDeadline)
    assert default.interval == dt.timedelta(hours=1)
    assert isinstance(default.callback, AsyncCallback)
    assert default.callback.path == "creditrisk_notifier.CreditRiskNotifier"
    monkeypatch.setenv("CREDITRISK_SCORE_DEADLINE_S", "120")  # read when the DAG is parsed
    assert parsed().interval == dt.timedelta(seconds=120)
    monkeypatch.setenv("CREDITRISK_SCORE_DEADLINE_S", "soon")  # an import error, named
    errors = bag().import_errors
    assert "CREDITRISK_SCORE_DEADLINE_S='soon' is not a whole number" in errors[
        "score_customers.py"]


def test_a_missed_scoring_deadline_posts_one_alert(
    airflow_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from creditrisk.config import get_settings

    _sync_dags()
    ((deadline_id, deadline_time, queued_at),) = _run_with_deadline("manual__deadline_test")
    assert deadline_time - queued_at == dt.timedelta(hours=1)  # the default

    with webhook_receiver() as rec:
        monkeypatch.setenv("CREDITRISK_ALERT_WEBHOOK_URL", rec.url)
        get_settings.cache_clear()
        payloads = _miss_and_run_callback(deadline_id)
    get_settings.cache_clear()

    assert [p["state"] for p in payloads] == ["running", "success"], payloads
    assert rec.kinds() == ["deadline_missed"]
    facts = _facts(rec.posts[0])
    assert facts["DAG"] == "score_customers" and facts["Run"] == "manual__deadline_test"
    assert facts["Deadline"].startswith(deadline_time.astimezone(dt.UTC).isoformat()[:16])
    assert "score_customers not finished by its deadline" in rec.posts[0]["text"]


def test_a_run_that_finishes_in_time_clears_its_deadline(airflow_db: None) -> None:
    """What the scheduler does when a run succeeds, with the DAG as it loads it (from the DB)."""
    from airflow.models import DagRun, Deadline
    from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    _sync_dags()
    ((deadline_id, deadline_time, _queued),) = _run_with_deadline("manual__in_time")
    dag = SerializedDagModel.get_dag("score_customers")
    with create_session() as session:
        alerts = [DeadlineAlertModel.get_by_id(a, session=session) for a in dag.deadline]
        assert [a.name for a in alerts] == ["score_customers_finished"]
        run = session.scalar(select(DagRun).where(DagRun.run_id == "manual__in_time"))
        run.end_date = deadline_time - dt.timedelta(seconds=1)
        session.flush()
        assert Deadline.prune_deadlines(session=session, conditions={DagRun.id: run.id}) == 1
        assert session.get(Deadline, deadline_id) is None
