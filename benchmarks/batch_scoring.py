"""Benchmark: batch-score 1M customers through the production path, against its floor.

Setup (not timed): generated history is loaded into a fresh warehouse, ``train`` fits
and registers a logistic-regression version in a real MLflow registry (an ``mlflow
server`` on a PostgreSQL store, artifacts on disk, reached over HTTP as in production)
and the ``champion`` alias is set on it; the day's
``customer_features`` are built and resampled with new ids to ``--customers`` rows.

Timed, in a child process of its own (so its peak RSS is the production path's only):
``creditrisk.scoring.batch.score_date`` — resolve the champion, load the version from
the registry (model and training reference, verified), then per chunk of
``chunk_customers`` (policy.yaml): read the chunk's features, segment, PD, policy and
reasons, the chunk's monitoring counts, COPY into the day's stage partition; then
publish: sum the counts into ``score_monitoring`` (PSI against the training reference)
and swap the staged partition into ``risk_scores`` in one transaction.

The floor, measured in the same run on the same rows and database: the version's
``predict_proba`` of the same feature rows in memory, plus one COPY of the published
result rows (as ``COPY ... TO STDOUT`` renders them) into an empty table with the
columns and types of ``risk_scores`` (no index, no constraint).

Last line: ``customers=… seconds=… rows_per_s=… floor_seconds=… ratio_to_floor=…
peak_rss_mb=…``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _pg import admin_url, fresh_database  # noqa: E402 (the script's own folder)

END = dt.date(2019, 2, 13)
DAY = END + dt.timedelta(days=1)
MODEL = "credit-risk-pd-bench"
#: Production functions timed by name in the child (wrapped, never replaced).
PHASES = {
    "creditrisk.scoring.batch": ("prepare", "read_features", "load_pipeline",
                                 "load_reference", "score_features", "_chunk_stats"),
    "creditrisk.storage.scores": ("copy_text", "write_stage_chunk", "publish"),
}


def say(msg: str) -> None:
    print(msg, flush=True)


def build_world(warehouse: str, tracking: str, workdir: Path, args: argparse.Namespace) -> str:
    """History, one registered champion, and the day's features at ``--customers`` rows."""
    from mlflow import MlflowClient

    from creditrisk.catalogue import FEATURE_NAMES
    from creditrisk.features.build import build_for_date
    from creditrisk.model.train import pinned_config, train
    from creditrisk.storage.db import make_engine, raw_cursor
    from tests.warehouse import load_generated

    t0 = time.perf_counter()
    load_generated(warehouse, workdir / "landing", customers=args.seed_customers, days=90,
                   end_date=END, seed=3)
    res = train(DAY, database_url=warehouse, tracking_uri=tracking, model_name=MODEL,
                run_id="bench-train", promote=False, config=pinned_config("logistic_regression"))
    MlflowClient(tracking_uri=tracking).set_registered_model_alias(MODEL, "champion",
                                                                   res["version"])
    build_for_date(DAY, database_url=warehouse, run_id="bench-features")
    cols = ", ".join(FEATURE_NAMES)
    engine = make_engine(warehouse)
    try:
        with raw_cursor(engine) as cur:  # real feature vectors, resampled with new ids
            cur.execute(f"CREATE TEMP TABLE pool AS SELECT row_number() OVER (ORDER BY"
                        f" customer_id) - 1 AS k, {cols} FROM customer_features"
                        " WHERE as_of_date = %s", (DAY,))
            cur.execute("SELECT count(*) FROM pool")
            n_pool = cur.fetchone()[0]
            cur.execute("DELETE FROM customer_features WHERE as_of_date = %s", (DAY,))
            cur.execute(
                f"INSERT INTO customer_features (customer_id, as_of_date, {cols}, run_id)"
                f" SELECT 'CustomerId_' || i, %s, {cols}, 'bench' FROM generate_series(0, %s) i"
                " JOIN pool ON pool.k = (i::bigint * 7919) %% %s",
                (DAY, args.customers - 1, n_pool))
        with raw_cursor(engine) as cur:
            cur.execute("ANALYZE customer_features")
    finally:
        engine.dispose()
    say(f"setup: history, {MODEL} v{res['version']} as champion, {args.customers:,} feature "
        f"rows (from {n_pool:,} customers) in {time.perf_counter() - t0:.1f} s (not timed)")
    return str(res["version"])


def child(spec: str) -> None:
    """The production path, timed, in this process alone; one JSON line on stdout."""
    import functools
    import importlib
    import resource

    args = json.loads(spec)
    phases: dict[str, float] = {}

    def timed(name: str, fn):  # type: ignore[no-untyped-def]
        @functools.wraps(fn)
        def wrapper(*a, **k):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - t
        return wrapper

    for module, names in PHASES.items():
        mod = importlib.import_module(module)
        for name in names:
            setattr(mod, name, timed(name, getattr(mod, name)))
    from creditrisk.scoring.batch import score_date

    t0 = time.perf_counter()
    res = score_date(DAY, database_url=args["warehouse"], tracking_uri=args["tracking"],
                     model_name=MODEL, alias="champion", run_id="bench-score")
    seconds = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "phases": phases, "peak_rss_mb": rss_mb,
                      "published": res["published"], "mean_pd": res["mean_pd"],
                      "psi_score": res["psi_score"]}))


def floor_predict(warehouse: str, tracking: str, version: str) -> tuple[float, int]:
    """predict_proba of the same rows (read beforehand, not timed) with the same version."""
    from creditrisk.catalogue import FEATURE_NAMES
    from creditrisk.registry import ModelRef, configure_mlflow, load_pipeline, resolve_alias
    from creditrisk.storage.db import make_engine
    from creditrisk.storage.features import read_features

    configure_mlflow(tracking)
    ref = resolve_alias(tracking, MODEL, "champion")
    assert ref.version == version
    pipeline = load_pipeline(ModelRef(ref.name, ref.version, ref.run_id, ""), tracking)
    engine = make_engine(warehouse)
    try:
        rows = read_features(engine, DAY, ordered=False)[list(FEATURE_NAMES)]
    finally:
        engine.dispose()
    t0 = time.perf_counter()
    pipeline.predict_proba(rows)
    return time.perf_counter() - t0, len(rows)


def floor_copy(warehouse: str) -> tuple[float, int]:
    """One COPY of the published rows into an empty table of risk_scores' columns."""
    from creditrisk.storage.db import make_engine, raw_cursor
    from creditrisk.storage.scores import SCORE_COLUMNS

    cols = ", ".join(SCORE_COLUMNS)
    buf = io.BytesIO()
    engine = make_engine(warehouse)
    try:
        with raw_cursor(engine) as cur:
            cur.execute("CREATE TABLE floor_scores (LIKE risk_scores)")
            cur.copy_expert(f"COPY (SELECT {cols} FROM risk_scores WHERE score_date ="
                            f" '{DAY.isoformat()}') TO STDOUT", buf)
        size = buf.tell()
        buf.seek(0)
        t0 = time.perf_counter()
        with raw_cursor(engine) as cur:
            cur.copy_expert(f"COPY floor_scores ({cols}) FROM STDIN", buf)
        seconds = time.perf_counter() - t0
        with raw_cursor(engine) as cur:
            cur.execute("DROP TABLE floor_scores")
    finally:
        engine.dispose()
    return seconds, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed-customers", type=int, default=3_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="crbench-scoring-"))
        stack.callback(shutil.rmtree, workdir, True)
        os.environ["CREDITRISK_MLFLOW_ARTIFACT_ROOT"] = str(workdir / "mlartifacts")
        admin = stack.enter_context(admin_url())
        warehouse = stack.enter_context(fresh_database(admin, "crbench_scoring"))
        store = stack.enter_context(fresh_database(admin, "crbench_mlflow", migrated=False))
        from tests.mlflow_server import MlflowServer

        server = MlflowServer(store, workdir / "mlartifacts", workdir / "mlflow.log")
        server.start()
        stack.callback(server.stop)
        tracking = server.url  # as production reaches the registry: over HTTP
        version = build_world(warehouse, tracking, workdir, args)
        predict_s, n = floor_predict(warehouse, tracking, version)
        say(f"floor: predict_proba of {n:,} rows in memory {predict_s:.2f} s")
        spec = json.dumps({"warehouse": warehouse, "tracking": tracking})
        out = subprocess.run([sys.executable, __file__, "--child", spec], check=True,
                             stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        got = json.loads(out.stdout.strip().splitlines()[-1])
        copy_s, size = floor_copy(warehouse)
        say(f"floor: one COPY of the {got['published']:,} result rows ({size / 1e6:.0f} MB of"
            f" COPY text) into an empty table of risk_scores' columns {copy_s:.2f} s")
    floor = predict_s + copy_s
    say("production phases (s, summed over chunks; nested ones overlap their caller): "
        + " ".join(f"{k}={v:.2f}" for k, v in got["phases"].items()))
    say(f"published={got['published']} mean_pd={got['mean_pd']:.4f} psi_score={got['psi_score']}")
    seconds = got["seconds"]
    say(f"customers={args.customers} seconds={seconds:.1f} "
        f"rows_per_s={int(args.customers / seconds)} floor_seconds={floor:.2f} "
        f"ratio_to_floor={seconds / floor:.2f} peak_rss_mb={got['peak_rss_mb']:.0f}")


if __name__ == "__main__":
    main()
