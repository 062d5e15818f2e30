"""The forward test in the default suite: the PD judged on what happened after T.

Runs ``benchmarks/forward_test.py`` (generate → load the days before T → ``creditrisk
train --promote`` → ``creditrisk score`` → load the rest → T's labels → compare) on the
Xente-shaped world, where the gate must promote a calibrated model that ranks better than
recency alone, and on the null world, where nothing is predictable and it must refuse.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from tests.paths import REPO_ROOT

pytestmark = pytest.mark.slow
END = dt.date(2019, 2, 13)
T = dt.date(2019, 1, 31)


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location(
        "forward_test", REPO_ROOT / "benchmarks" / "forward_test.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(world: str, pg_admin_url: str, tmp_path: Path) -> dict[str, Any]:
    bench = _bench()
    result: dict[str, Any] = bench.forward_test(
        world=world, customers=None if world == "xente" else 3742, days=90, end_date=END,
        as_of=T, seed=42, fast_load=True, workdir=tmp_path, admin=pg_admin_url)
    print(bench.last_line(result))
    return result


def test_forward_on_the_xente_world_is_calibrated_and_promoted(
    pg_admin_url: str, tmp_path: Path
) -> None:
    r = _run("xente", pg_admin_url, tmp_path)
    assert r["n"] > 1500
    assert r["gate"] == "promoted"
    # calibration in the large, forward: the bad rate itself falls from 0.586 at the
    # newest date the model may learn from to 0.539 at T (the real sequence's late
    # January), which no model trained before T can know; within the gate's own test
    # part the gap is under 0.03 (asserted by the gate's check)
    assert abs(r["mean_pd"] - r["bad_rate"]) <= 0.05
    assert r["ece"] <= 0.05
    assert r["auc"] > r["auc_recency_only"] and r["auc_lo"] > 0.80


def test_forward_on_the_null_world_is_refused(pg_admin_url: str, tmp_path: Path) -> None:
    r = _run("null", pg_admin_url, tmp_path)
    assert r["gate"] == "refused"
    assert r["auc"] < 0.56  # nothing to rank: near a coin flip
