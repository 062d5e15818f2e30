"""The DAG conventions every DAG is held to: typed params, owner, task timeouts, schedules.

Each check runs over every DAG and task found, so a new DAG or task is held to it the
day it lands.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
#: the DAGs whose runs work on the day of their logical date (or the day before it)
DAILY = {"ingest_transactions", "build_features", "score_customers", "ingest_loans"}


def _dagbag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS, safe_mode=False)
    assert bag.import_errors == {}
    return bag


@pytest.fixture(scope="module")
def dags():  # type: ignore[no-untyped-def]
    return dict(_dagbag().dags)


def _date_like(name: str) -> bool:
    return "date" in name or name in {"as_of", "day"}


# ------------------------------------------------------------------ 1. typed params


def test_every_date_param_has_format_date(dags) -> None:  # type: ignore[no-untyped-def]
    seen = 0
    for dag_id, dag in dags.items():
        for name in dag.params:
            schema = dag.params.get_param(name).schema
            if _date_like(name):
                seen += 1
                assert schema.get("format") == "date", f"{dag_id}.{name}: {schema}"
                assert "string" in schema.get("type", []), f"{dag_id}.{name}: {schema}"
            assert dag.params.get_param(name).description, f"{dag_id}.{name} has no description"
    assert seen >= 5  # ingest's date, from_date, to_date; the as_of of features and training


@pytest.mark.parametrize(
    ("dag_id", "conf"),
    [
        ("ingest_transactions", {"date": "2019-02-30"}),
        ("ingest_transactions", {"from_date": "13/02/2019"}),
        ("ingest_transactions", {"to_date": "yesterday"}),
        ("build_features", {"as_of": "2019-2-14"}),
        ("build_features", {"label_strategy": "coin_flip"}),
        ("build_features", {"horizon_days": 0}),
        ("build_features", {"horizon_days": 366}),
        ("build_features", {"horizon_days": "14"}),
        ("build_features", {"chunks": 0}),
        ("build_features", {"chunks": "4"}),
        ("train_model", {"as_of": "2019-02-14T00:00"}),
        ("train_model", {"promote": "yes"}),
        ("score_customers", {"date": "20190214"}),
    ],
)
def test_a_bad_value_is_refused(dags, dag_id: str, conf: dict) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dags[dag_id].params)
    with pytest.raises(ParamValidationError):  # on update (the trigger) or on validate
        params.update(conf)
        params.validate()


@pytest.mark.parametrize(
    ("dag_id", "conf"),
    [
        ("ingest_transactions", {"date": "2019-02-28"}),
        ("ingest_transactions", {"from_date": "2018-11-15", "to_date": "2019-02-13"}),
        ("build_features", {"as_of": "2019-02-14", "label_strategy": "rfm_kmeans",
                            "horizon_days": 365}),
        ("build_features", {"horizon_days": 1}),
        ("build_features", {"chunks": 4}),
        ("build_features", {"chunks": None}),
        ("train_model", {"as_of": None, "promote": False}),
        ("score_customers", {"date": "2019-02-14"}),
        ("score_customers", {}),
    ],
)
def test_a_good_value_is_accepted(dags, dag_id: str, conf: dict) -> None:  # type: ignore[no-untyped-def]
    params = copy.deepcopy(dags[dag_id].params)
    params.update(conf)
    resolved = params.validate()
    for key, value in conf.items():
        assert resolved[key] == value


# ------------------------------------------------------------------ 2. owner, timeouts


def test_every_task_has_an_owner_and_a_finite_execution_timeout(dags) -> None:  # type: ignore[no-untyped-def]
    from dag_common.conventions import OWNER

    tasks = 0
    for dag_id, dag in dags.items():
        assert dag.owner == OWNER, dag_id
        for t in dag.tasks:
            tasks += 1
            where = f"{dag_id}.{t.task_id}"
            assert t.owner == OWNER, where
            assert isinstance(t.execution_timeout, dt.timedelta), f"{where}: no execution_timeout"
            assert dt.timedelta(0) < t.execution_timeout <= dt.timedelta(hours=3), where
    assert tasks >= 9


def test_the_timeout_table_names_only_real_tasks(dags) -> None:  # type: ignore[no-untyped-def]
    from dag_common.conventions import TASK_TIMEOUTS

    real = {f"{d}.{t.task_id}" for d, dag in dags.items() for t in dag.tasks}
    assert set(TASK_TIMEOUTS) == real
    for where, limit in TASK_TIMEOUTS.items():
        assert dags[where.split(".")[0]].get_task(where.split(".")[1]).execution_timeout == limit


# ------------------------------------------------------------------ 7. schedules


def _core(dag):  # type: ignore[no-untyped-def]
    """The DAG as the scheduler sees it (serialized and back)."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.from_dict(DagSerialization.to_dict(dag))


def _first_run(dag):  # type: ignore[no-untyped-def]
    """The logical date of the run the scheduler starts when the DAG is first unpaused."""
    from airflow.timetables.base import TimeRestriction

    core = _core(dag)
    info = core.timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=core.start_date, latest=None, catchup=core.catchup),
    )
    return info.logical_date if info else None


def test_unpausing_a_daily_dag_starts_no_run_for_a_past_day(dags) -> None:  # type: ignore[no-untyped-def]
    """`./platform up` unpauses them: a past due time would be a day outside the landing."""
    for dag_id in DAILY:
        before = dt.datetime.now(dt.UTC)
        first = _first_run(dags[dag_id])
        assert first is not None and first > before, f"{dag_id}: first run {first} is not ahead"
        assert dags[dag_id].catchup is False


def test_the_weekly_training_still_runs_on_unpause(dags) -> None:  # type: ignore[no-untyped-def]
    # up relies on it: training works on what is loaded, whatever its logical date
    first = _first_run(dags["train_model"])
    assert first is not None and first <= dt.datetime.now(dt.UTC)


def test_build_features_is_periodic_and_asset_triggered(dags) -> None:  # type: ignore[no-untyped-def]
    core = _core(dags["build_features"])
    assert core.timetable.periodic, "a non-periodic schedule cannot be backfilled"
    assert "raw_transactions" in str(core.timetable.asset_condition)


def test_build_features_maps_its_chunks_and_publishes_the_asset(dags) -> None:  # type: ignore[no-untyped-def]
    """plan -> chunk_ids -> build_chunk (one mapped task per chunk) -> publish."""
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    tasks = dags["build_features"].task_dict
    assert set(tasks) == {"plan", "chunk_ids", "build_chunk", "publish"}
    assert isinstance(tasks["build_chunk"], MappedOperator)
    assert tasks["build_chunk"].upstream_task_ids == {"plan", "chunk_ids"}
    assert tasks["publish"].upstream_task_ids == {"plan", "build_chunk"}
    assert [str(getattr(a, "name", a)) for a in tasks["publish"].outlets] == ["customer_features"]
    assert all(not t.outlets for name, t in tasks.items() if name != "publish")
