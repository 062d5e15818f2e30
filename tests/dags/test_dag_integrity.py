"""DagBag integrity over dags/: no import errors, the contract's DAG ids, the house header.

The checks run on every DAG found, so each new DAG file is held to them the day it lands.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
CONTRACT_DAG_IDS = {"ingest_transactions", "build_features", "train_model", "score_customers",
                    "ingest_loans"}
DAILY_NO_START = {"ingest_transactions", "build_features", "score_customers", "ingest_loans"}
APPROVED_TAGS = {"creditrisk", "ingestion", "features", "training", "scoring", "monitoring"}


def _dagbag(folder: Path):  # type: ignore[no-untyped-def]
    # BundleDagBag puts the bundle (dags/) on sys.path, as the dag-processor and the
    # task runner do, so DAG files can share dags/dag_common.
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(folder), bundle_path=folder, safe_mode=False)


@pytest.fixture(scope="module")
def dagbag():  # type: ignore[no-untyped-def]
    return _dagbag(DAGS)


def _dag_files() -> list[Path]:
    return sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))


def test_no_import_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}


def test_every_dag_file_defines_a_contract_dag(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert set(dagbag.dag_ids) <= CONTRACT_DAG_IDS
    assert len(dagbag.dag_ids) == len(_dag_files())


def test_the_check_catches_a_broken_dag_file(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("from airflow.sdk import dag\nraise RuntimeError('x')\n")
    assert _dagbag(tmp_path).import_errors


@pytest.mark.parametrize("path", _dag_files(), ids=lambda p: p.name)
def test_parsing_imports_nothing_heavy(path: Path) -> None:
    """Parsing a DAG file must not import pandas, mlflow, xgboost or GX, nor touch a DB."""
    code = textwrap.dedent(
        f"""
        import runpy, sys
        sys.path.insert(0, {str(DAGS)!r})
        runpy.run_path({str(path)!r})
        heavy = [m for m in ("pandas", "mlflow", "xgboost", "great_expectations", "sklearn")
                 if m in sys.modules]
        assert not heavy, heavy
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_header_of_every_dag(dagbag) -> None:  # type: ignore[no-untyped-def]
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags and set(dag.tags) <= APPROVED_TAGS, dag_id
        assert dag.doc_md and len(dag.doc_md) > 80, f"{dag_id}: doc_md should tell an operator"
        assert dag.catchup is False, dag_id
        # the daily DAGs have none, so that unpausing starts no run for a past day
        # (tests/dags/test_dag_conventions.py); the others start in the past
        assert dag.start_date is not None or dag_id in DAILY_NO_START, dag_id
        assert dag.timetable is not None, dag_id
        for t in dag.tasks:
            assert t.retries >= 1, f"{dag_id}.{t.task_id} has no retries"
