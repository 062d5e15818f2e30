"""Benchmark: the whole pipeline at 1M, 3M and 10M transactions, stage by stage.

For each size a synthetic world of about 50,000 customers per million transactions
(90 days) is generated, then run through the production code exactly as an operator
would, each stage its own ``creditrisk`` process (so each stage's peak RSS is its own,
read from the kernel's rusage of that child):

    generate → ingest (GX-gated COPY) → features (as of the day after the history)
    → train (the ladder, registered in MLflow) → promote → score (the champion,
    every customer, atomic publish and monitoring)

against a fresh PostgreSQL database and a fresh MLflow store (a PostgreSQL database
too, artifacts in a temporary folder). A stage that fails stops that size and says
which. Prints one line per stage, a markdown table of every size (the one in
docs/benchmarks.md), and last ``sizes=… total_seconds=… max_peak_rss_mb=…``.

PostgreSQL: ``TEST_DATABASE_URL``/``DATABASE_URL`` or an embedded server.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _pg import admin_url, fresh_database  # noqa: E402

END = dt.date(2019, 2, 13)
CUSTOMERS_PER_MILLION = 50_000
CLI = [sys.executable, "-m", "creditrisk.cli"]


@dataclass
class Stage:
    size: str
    name: str
    seconds: float
    peak_rss_mb: float
    ok: bool
    detail: str = ""


def run_stage(size: str, name: str, args: list[str], env: dict[str, str],
              log: Path) -> tuple[Stage, str]:
    """Run one ``creditrisk`` command as a child; its wall time and its own peak RSS."""
    t0 = time.perf_counter()
    with log.open("ab") as err:
        proc = subprocess.Popen([*CLI, "--json", "--quiet", *args], env=env,  # noqa: S603
                                stdout=subprocess.PIPE, stderr=err)
        out = proc.stdout.read() if proc.stdout else b""
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    ok = proc.returncode == 0
    stage = Stage(size, name, seconds, usage.ru_maxrss / 1024.0, ok,
                  "" if ok else f"exit {proc.returncode}, see {log}")
    print(f"size={size} stage={name} seconds={seconds:.1f} "
          f"peak_rss_mb={stage.peak_rss_mb:.0f} ok={ok}", flush=True)
    return stage, out.decode()


def run_size(millions: float, days: int, admin: str, workdir: Path) -> list[Stage]:
    """Every stage of one size, in a fresh warehouse and MLflow store."""
    size = f"{millions:g}M"
    customers = int(millions * CUSTOMERS_PER_MILLION)
    first = END - dt.timedelta(days=days - 1)
    as_of = (END + dt.timedelta(days=1)).isoformat()
    landing = workdir / size / "landing"
    log = workdir / f"{size}.log"
    stages: list[Stage] = []
    with fresh_database(admin, f"crscale_{size.lower()}") as url, \
            fresh_database(admin, f"crscale_mlflow_{size.lower()}", migrated=False) as store:
        env = {**os.environ, "DATABASE_URL": url, "MLFLOW_TRACKING_URI": store,
               "CREDITRISK_LANDING_DIR": str(landing),
               "CREDITRISK_MLFLOW_ARTIFACT_ROOT": str(workdir / size / "artifacts"),
               "CREDITRISK_MODEL_NAME": "credit-risk-pd-scale", "CREDITRISK_QUIET": "1"}
        plan = [
            ("generate", ["generate", "--customers", str(customers), "--days", str(days),
                          "--end-date", END.isoformat(), "--out", str(landing), "--seed", "5"]),
            ("ingest", ["ingest", "--from", first.isoformat(), "--to", END.isoformat(),
                        "--no-data-docs", "--run-id", f"scale-{size}"]),
            ("features", ["features", "--as-of", as_of, "--run-id", f"scale-{size}"]),
            ("train", ["train", "--as-of", as_of, "--run-id", f"scale-{size}"]),
        ]
        for name, args in plan:
            stage, out = run_stage(size, name, args, env, log)
            stages.append(stage)
            if not stage.ok:
                return stages
        version = str(json.loads(out)["version"])
        for name, args in (("promote", ["promote", "--version", version]),
                           ("score", ["score", "--date", as_of, "--no-shadow",
                                      "--run-id", f"scale-{size}"])):
            stage, out = run_stage(size, name, args, env, log)
            stages.append(stage)
            if not stage.ok:
                return stages
        stages.append(Stage(size, "transactions", 0.0, 0.0, True, _count(url)))
    return stages


def _count(url: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tx = conn.execute(sa.text("SELECT count(*) FROM raw_transactions")).scalar_one()
            scored = conn.execute(sa.text("SELECT count(*) FROM risk_scores")).scalar_one()
    finally:
        engine.dispose()
    return f"{tx} transactions, {scored} customers scored"


def table(stages: list[Stage]) -> list[str]:
    """The markdown growth table: one row per size, seconds (peak RSS MB) per stage."""
    names = ["generate", "ingest", "features", "train", "promote", "score"]
    sizes = list(dict.fromkeys(s.size for s in stages))
    lines = ["| size | rows | " + " | ".join(names) + " | total s |",
             "|---|---|" + "---|" * len(names) + "---|"]
    for size in sizes:
        mine = {s.name: s for s in stages if s.size == size}
        cells = [f"{mine[n].seconds:.0f} s ({mine[n].peak_rss_mb:.0f} MB)"
                 + ("" if mine[n].ok else " FAILED") if n in mine else "-" for n in names]
        total = sum(s.seconds for s in mine.values())
        rows = mine["transactions"].detail if "transactions" in mine else "-"
        lines.append(f"| {size} | {rows} | " + " | ".join(cells) + f" | {total:.0f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,3,10",
                    help="millions of transactions, comma-separated (default 1,3,10)")
    ap.add_argument("--days", type=int, default=90)
    args = ap.parse_args(argv)
    sizes = [float(s) for s in args.sizes.split(",") if s.strip()]
    stages: list[Stage] = []
    with admin_url() as admin, tempfile.TemporaryDirectory(prefix="crscale-") as tmp:
        for millions in sizes:
            stages += run_size(millions, args.days, admin, Path(tmp))
            if not all(s.ok for s in stages):
                break
    for line in table(stages):
        print(line)
    measured = [s for s in stages if s.name != "transactions"]
    print(f"sizes={','.join(dict.fromkeys(s.size for s in stages))} "
          f"total_seconds={sum(s.seconds for s in measured):.0f} "
          f"max_peak_rss_mb={max((s.peak_rss_mb for s in measured), default=0):.0f} "
          f"all_ok={all(s.ok for s in stages)}")
    return 0 if all(s.ok for s in stages) else 1


if __name__ == "__main__":
    raise SystemExit(main())
