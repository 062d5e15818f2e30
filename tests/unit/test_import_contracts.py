"""The package boundaries hold: import-linter's contracts and the DAG files' imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.paths import REPO_ROOT

#: the modules of the core that make up the DAGs' API
DAG_API = {"creditrisk.tasks", "creditrisk.alerts", "creditrisk.dates", "creditrisk.catalogue"}


def test_import_linter_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout and "3 kept" in done.stdout


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "creditrisk":
            out.update(f"creditrisk.{a.name}" for a in node.names)  # from creditrisk import x
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_dags_import_the_core_only_through_its_public_modules() -> None:
    files = sorted((REPO_ROOT / "dags").rglob("*.py"))
    assert len(files) >= 4
    for path in files:
        core = {m for m in _imports(path) if m.split(".")[0] == "creditrisk"}
        assert core <= DAG_API, f"{path.name} imports {sorted(core - DAG_API)}"


def test_the_core_never_imports_the_dags_or_the_runner() -> None:
    for path in (REPO_ROOT / "include" / "creditrisk").rglob("*.py"):
        roots = {m.split(".")[0] for m in _imports(path)}
        assert not roots & {"dags", "dag_common", "devstack", "serving", "airflow"}, path
