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

Two floors, measured in the same run on the same rows and database:

* ``floor_seconds`` (issue 15's): the version's ``predict_proba`` of the same feature rows
  in memory, plus one COPY of the published result rows (as ``COPY ... TO STDOUT``
  renders them) into an empty table with the columns and types of ``risk_scores`` (no
  index, no constraint). It skips two pieces of I/O the job cannot: reading its inputs
  from the database, and the primary key every ``risk_scores`` partition has.
* ``io_floor_seconds``: the same I/O as the job, done as bare as it can be. One
  ``COPY ... TO STDOUT`` of the columns the version reads (``scoring_columns``) for the
  same rows, parsed by pyarrow into an Arrow table (the faster of COPY's text and CSV
  formats, best of two), plus the same ``predict_proba``, plus one COPY of the result
  rows into an empty table of ``risk_scores``' columns, checks and primary key, like a
  partition: whichever is cheaper of COPY into the keyed table, or COPY into the
  unkeyed one (the issue's COPY) plus building the key after.

Last line: ``customers=… seconds=… rows_per_s=… floor_seconds=… ratio_to_floor=…
peak_rss_mb=… io_floor_seconds=… ratio_to_io_floor=…``.
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
    import threading

    args = json.loads(spec)
    phases: dict[str, float] = {}
    events: list[tuple[str, str, float, float]] = []  # (phase, thread, start, end)
    t0 = time.perf_counter()

    def timed(name: str, fn):  # type: ignore[no-untyped-def]
        @functools.wraps(fn)
        def wrapper(*a, **k):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                end = time.perf_counter()
                phases[name] = phases.get(name, 0.0) + end - t
                events.append((name, threading.current_thread().name, t - t0, end - t0))
        return wrapper

    for module, names in PHASES.items():
        mod = importlib.import_module(module)
        for name in names:
            setattr(mod, name, timed(name, getattr(mod, name)))
    from creditrisk.scoring.batch import score_date

    t0 = time.perf_counter()  # the events count from here
    res = score_date(DAY, database_url=args["warehouse"], tracking_uri=args["tracking"],
                     model_name=MODEL, alias="champion", run_id="bench-score")
    seconds = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for name, thread, start, end in sorted(events, key=lambda e: e[2]):  # to the log
        print(f"  {start:6.2f} -> {end:6.2f}  {name:<18} {thread}", file=sys.stderr)
    print(json.dumps({"seconds": seconds, "phases": phases, "peak_rss_mb": rss_mb,
                      "published": res["published"], "mean_pd": res["mean_pd"],
                      "psi_score": res["psi_score"]}))


def floor_predict(warehouse: str, tracking: str, version: str) -> tuple[float, int, list[str]]:
    """predict_proba of the same rows (read beforehand, not timed) with the same version;
    also the columns the version reads (for the I/O floor's read)."""
    from creditrisk.catalogue import FEATURE_NAMES
    from creditrisk.registry import (
        ModelRef,
        configure_mlflow,
        load_pipeline,
        load_reference,
        resolve_alias,
    )
    from creditrisk.scoring.batch import scoring_columns
    from creditrisk.storage.db import make_engine
    from creditrisk.storage.features import read_features

    configure_mlflow(tracking)
    ref = resolve_alias(tracking, MODEL, "champion")
    assert ref.version == version
    mref = ModelRef(ref.name, ref.version, ref.run_id, "")
    pipeline = load_pipeline(mref, tracking)
    columns = scoring_columns(pipeline, load_reference(mref, tracking))
    engine = make_engine(warehouse)
    try:
        rows = read_features(engine, DAY, ordered=False)[list(FEATURE_NAMES)]
    finally:
        engine.dispose()
    t0 = time.perf_counter()
    pipeline.predict_proba(rows)
    return time.perf_counter() - t0, len(rows), columns


def floor_read(warehouse: str, columns: list[str]) -> tuple[float, str]:
    """The I/O floor's read: one bare COPY of ``columns`` for the day's rows into Arrow."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from creditrisk.storage.db import make_engine, raw_cursor

    query = (f"SELECT customer_id, {', '.join(columns)} FROM customer_features"
             f" WHERE as_of_date = '{DAY.isoformat()}'")
    types = {"customer_id": pa.string(), **{c: pa.float64() for c in columns}}
    parse = {"text": pacsv.ParseOptions(delimiter="\t", quote_char=False),
             "csv": pacsv.ParseOptions()}
    best: dict[str, float] = {}
    engine = make_engine(warehouse)
    try:
        for fmt in ("text", "csv", "text", "csv"):
            t0 = time.perf_counter()
            buf = io.BytesIO()
            with raw_cursor(engine) as cur:
                cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT {fmt})", buf,
                                size=1 << 20)
            table = pacsv.read_csv(
                pa.py_buffer(buf.getvalue()),
                read_options=pacsv.ReadOptions(column_names=list(types)),
                parse_options=parse[fmt],
                convert_options=pacsv.ConvertOptions(column_types=types))
            seconds = time.perf_counter() - t0
            assert table.num_rows > 0
            best[fmt] = min(best.get(fmt, seconds), seconds)
    finally:
        engine.dispose()
    fmt = min(best, key=best.__getitem__)
    return best[fmt], fmt


def floor_copy(warehouse: str) -> dict[str, float]:
    """One COPY of the published rows into an empty table of risk_scores' columns (the
    issue's floor); the same COPY into a table keyed like a partition; the key built
    after the unkeyed COPY."""
    from creditrisk.storage.db import make_engine, raw_cursor
    from creditrisk.storage.scores import SCORE_COLUMNS

    cols = ", ".join(SCORE_COLUMNS)
    buf = io.BytesIO()
    out: dict[str, float] = {}
    engine = make_engine(warehouse)
    try:
        with raw_cursor(engine) as cur:
            cur.execute("CREATE TABLE floor_scores (LIKE risk_scores)")
            cur.execute("CREATE TABLE floor_keyed (LIKE risk_scores INCLUDING CONSTRAINTS,"
                        " PRIMARY KEY (customer_id, score_date))")
            cur.copy_expert(f"COPY (SELECT {cols} FROM risk_scores WHERE score_date ="
                            f" '{DAY.isoformat()}') TO STDOUT", buf)
        out["bytes"] = buf.tell()
        for table, key in (("floor_scores", "copy_s"), ("floor_keyed", "keyed_copy_s")):
            buf.seek(0)
            t0 = time.perf_counter()
            with raw_cursor(engine) as cur:
                cur.copy_expert(f"COPY {table} ({cols}) FROM STDIN", buf)
            out[key] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with raw_cursor(engine) as cur:  # as publish builds it
            cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
            cur.execute("ALTER TABLE floor_scores ADD PRIMARY KEY (customer_id, score_date)")
        out["key_after_s"] = time.perf_counter() - t0
        with raw_cursor(engine) as cur:
            cur.execute("DROP TABLE floor_scores, floor_keyed")
    finally:
        engine.dispose()
    return out


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
        predict_s, n, columns = floor_predict(warehouse, tracking, version)
        say(f"floor: predict_proba of {n:,} rows in memory {predict_s:.2f} s")
        spec = json.dumps({"warehouse": warehouse, "tracking": tracking})
        out = subprocess.run([sys.executable, __file__, "--child", spec], check=True,
                             stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        got = json.loads(out.stdout.strip().splitlines()[-1])
        copies = floor_copy(warehouse)
        read_s, fmt = floor_read(warehouse, columns)
    copy_s = copies["copy_s"]
    write_s = min(copies["keyed_copy_s"], copy_s + copies["key_after_s"])
    say(f"floor: one COPY of the {got['published']:,} result rows ({copies['bytes'] / 1e6:.0f}"
        f" MB of COPY text) into an empty table of risk_scores' columns {copy_s:.2f} s")
    say(f"io floor: one COPY TO STDOUT of the {len(columns)} columns the version reads, into"
        f" Arrow ({fmt}) {read_s:.2f} s; the result rows into a table keyed like a partition:"
        f" COPY with the key {copies['keyed_copy_s']:.2f} s, COPY then the key"
        f" {copy_s:.2f} + {copies['key_after_s']:.2f} s")
    floor = predict_s + copy_s
    io_floor = read_s + predict_s + write_s
    say("production phases (s, summed over chunks; nested ones overlap their caller): "
        + " ".join(f"{k}={v:.2f}" for k, v in got["phases"].items()))
    say(f"published={got['published']} mean_pd={got['mean_pd']:.4f} psi_score={got['psi_score']}")
    seconds = got["seconds"]
    say(f"customers={args.customers} seconds={seconds:.1f} "
        f"rows_per_s={int(args.customers / seconds)} floor_seconds={floor:.2f} "
        f"ratio_to_floor={seconds / floor:.2f} peak_rss_mb={got['peak_rss_mb']:.0f} "
        f"io_floor_seconds={io_floor:.2f} ratio_to_io_floor={seconds / io_floor:.2f}")


if __name__ == "__main__":
    main()
