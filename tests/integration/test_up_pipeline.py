"""`./platform up`'s pipeline pass asks only for days in (or just after) the landing range.

The pass runs against a recording stand-in for Airflow's REST API (the real stack is
the e2e test's job); the warehouse is a real, empty one. Together with
tests/dags/test_dag_conventions.py (unpausing a daily DAG starts no run for a past day)
this holds that `up` never triggers a scheduled day outside the landing folder.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from creditrisk.storage.db import make_engine
from creditrisk.storage.promotions import record_promotion
from devstack.ops import PIPELINE_STAGES, pipeline_bar

#: DAGs whose scheduled runs work on their logical date's day: `up` must not wait for one
DAILY = {"ingest_transactions", "score_customers"}


class RecordingAPI:
    """Answers like Airflow's REST API would for runs that all succeed; records calls."""

    calls: list[tuple[str, str, Any]] = []
    awaited: list[str] = []

    def __init__(self, base_url: str, password: str) -> None:
        type(self).calls, type(self).awaited = [], []

    def call(self, method: str, path: str, data: dict | None = None) -> dict:
        self.calls.append((method, path, data))
        if method == "POST" and path.endswith("/dagRuns"):
            return {"dag_run_id": f"manual__{len(self.calls)}"}
        if method == "GET" and "/dagRuns/" in path:
            return {"start_date": "2026-01-01T00:00:00+00:00", "state": "success"}
        return {}

    def wait_for_dag(self, dag_id: str, timeout: float) -> None:
        pass

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        return "success"

    def latest_run(self, dag_id: str) -> dict:
        # waiting for "the newest run" of a daily DAG means waiting for a scheduled one
        assert dag_id not in DAILY, f"up waits for a scheduled {dag_id} run"
        self.awaited.append(dag_id)
        return {"state": "success", "dag_run_id": "r", "run_after": "2026-01-01T00:00:01+00:00"}


def _landing(folder: Path, first: dt.date, last: dt.date) -> None:
    folder.mkdir()
    for day in (first, first + dt.timedelta(days=1), last):
        (folder / f"xente_{day.isoformat()}.csv").write_text("")


def _champion(url: str) -> None:
    engine = make_engine(url)
    try:
        record_promotion(engine, model_name="m", model_version="1", previous_champion=None,
                         decision="promoted", decided_by="gate", reasons=[], metrics={},
                         run_id="r")
    finally:
        engine.dispose()


def _days_asked(calls: list[tuple[str, str, Any]]) -> list[tuple[str, dt.date]]:
    out = []
    for method, path, data in calls:
        if method == "POST" and path.endswith("/dagRuns"):
            dag_id = path.split("/")[-2]
            for value in (data.get("conf") or {}).values():
                out.append((dag_id, dt.date.fromisoformat(value)))
    return out


@pytest.mark.parametrize(
    ("first", "last"),
    [(dt.date(2018, 11, 15), dt.date(2019, 2, 13)),  # the real file: history in the past
     (dt.date.today() - dt.timedelta(days=90), dt.date.today() - dt.timedelta(days=1))],
    ids=["history-in-the-past", "seeded-to-yesterday"],
)
def test_up_triggers_only_days_of_the_landing_range(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: dt.date, last: dt.date
) -> None:
    from devstack import stack

    monkeypatch.setattr(stack, "AirflowAPI", RecordingAPI)
    monkeypatch.setattr(stack.time, "sleep", lambda s: None)
    _landing(tmp_path / "landing", first, last)
    _champion(db_url)
    layout = SimpleNamespace(landing=tmp_path / "landing", airflow_url="http://127.0.0.1:1",
                             logs=tmp_path / "logs")

    keys = {"admin_password": "x"}  # test-only secret
    bar = io.StringIO()
    with pipeline_bar(out=bar):
        stack.run_pipeline_once(layout, SimpleNamespace(warehouse=db_url),  # type: ignore[arg-type]
                                keys, timeout=5)
    # the bar (one line per stage in a log) names every DAG the pass waits for, in order
    shown = [ln for ln in bar.getvalue().splitlines() if ln.startswith("pipeline [")]
    assert shown == [f"pipeline [{i}/4] {d}" for i, d in enumerate(PIPELINE_STAGES, 1)]

    asked = _days_asked(RecordingAPI.calls)
    assert ("ingest_transactions", first) in asked and ("ingest_transactions", last) in asked
    assert ("score_customers", last + dt.timedelta(days=1)) in asked
    for dag_id, day in asked:
        assert first <= day <= last + dt.timedelta(days=1), (dag_id, day)
    # it waited for the asset-triggered build and the weekly training, nothing daily
    assert RecordingAPI.awaited == ["build_features", "train_model"]
    unpaused = [p.split("/")[-1] for m, p, d in RecordingAPI.calls if m == "PATCH"]
    assert unpaused == ["ingest_transactions", "build_features", "train_model",
                        "score_customers"]
