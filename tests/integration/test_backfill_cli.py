"""`airflow backfill create --dag-id build_features` works: its schedule is periodic.

Runs the real CLI against its own SQLite metadata DB (a temp AIRFLOW_HOME): migrate,
write the parsed DAGs to it (`airflow dags reserialize`), list the runs (`--dry-run`,
which applies the same "non-periodic schedule" check as a real backfill), then create
the backfill and read its runs back. About 20-25 s on the shared 2-core machine, most
of it the four CLI start-ups.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess  # nosec B404 - runs the installed airflow CLI
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")

pytestmark = pytest.mark.slow


def _airflow(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True,  # nosec B603
                          timeout=300, check=False)
    tail = done.stdout[-2000:] + done.stderr[-3000:]
    assert done.returncode == 0, f"airflow {' '.join(args)}:\n{tail}"
    return done.stdout + done.stderr


def test_build_features_can_be_backfilled(tmp_path: Path) -> None:
    db = tmp_path / "airflow.db"
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    })
    _airflow(env, "db", "migrate")
    _airflow(env, "dags", "reserialize")
    window = ["--dag-id", "build_features", "--from-date", "2019-01-01",
              "--to-date", "2019-01-03T04:00"]

    listed = _airflow(env, "backfill", "create", *window, "--dry-run")
    assert "non-periodic" not in listed
    for day in ("2019-01-01", "2019-01-02", "2019-01-03"):
        assert f"{day} 04:00:00+00:00" in listed, listed[-2000:]

    _airflow(env, "backfill", "create", *window)
    with sqlite3.connect(db) as conn:
        runs = conn.execute(
            "SELECT run_type, substr(logical_date, 1, 10) FROM dag_run "
            "WHERE dag_id = 'build_features' ORDER BY logical_date").fetchall()
    assert runs == [("backfill", "2019-01-01"), ("backfill", "2019-01-02"),
                    ("backfill", "2019-01-03")]
