"""Benchmark: the scoring API against ``mlflow models serve`` and against its framework's
ceiling (a minimal FastAPI app), with the shadow sample off and on, in one run.

In one run, on 127.0.0.1:

1. A warehouse and an MLflow store: ``TEST_DATABASE_URL`` or ``DATABASE_URL`` (a server
   whose user may create databases) if set, else an embedded ``pgserver`` in a temp dir,
   deleted afterwards. A migrated warehouse gets generated history (``--customers`` x
   ``--days``), features are built for the day after it, one model version is trained
   and registered (logistic regression, or ``--candidate xgboost``) and made ``champion``.
   The MLflow store is a database of the same server, artifacts in a temp dir.
2. Five servers, each in its own process group, every FastAPI one with the same uvicorn
   command line (``--workers``, 1 by default, and ``--no-access-log`` as Dockerfile.api):
   * the API (``uvicorn serving.app:app``), shadow sample off, twice (``api``, ``api-b``:
     two identical processes, so that the noise band includes process placement);
   * the same API with ``CREDITRISK_SHADOW_SAMPLE=--shadow-sample`` (default 0.05) and a
     ``challenger`` (a copy of the champion registered as a new version);
   * ``mlflow models serve -m models:/<name>/<version> --env-manager local`` (its default
     single worker) on the same registered version;
   * the "hello" app (``benchmarks/_hello_app.py``): checks the API key, parses a pydantic
     body with a customer id and an amount, and answers a JSON body of the same size as
     the API's ``/predict`` answer: what FastAPI + uvicorn cost with no work at all.
   The API's per-key rate limit is raised for the run, else it would measure 429s.
3. The same bounded, closed-loop load on each: ``--connections`` (1 and 16) connections
   for ``--duration`` seconds after a ``--warmup`` of the same load, from a separate
   process: ``wrk`` with a Lua script when it is on PATH, else a Python asyncio
   raw-socket load generator (``--loadgen`` forces one). The generator shares the two
   cores with the server, so the figures are a floor of what the server can do. At each
   concurrency, in this order (:data:`SEQUENCE`): api, api-shadow, api-b, hello, api-b,
   api-shadow, api, MLflow, API with features bodies. The four shadow-off runs give the
   noise band that the shadow difference is read against.
   * API, ``{"customer_id": ...}`` cycling over every customer with features: the TTL
     cache is primed with one pass (``/predict/batch``) just before each such run, so the
     timed requests are cache hits (no PostgreSQL read), as at steady state.
   * API, ``{"features": {...}}`` with the 37 features of real customers (no lookup).
   * MLflow, the same feature rows as one-row ``dataframe_split`` JSON.
   * hello, the same ``{"customer_id": ...}`` bodies.
   A request counts as an error unless it gets a 200; every count must be 0.
4. A table of p50/p99 latency and requests/s per server, body and concurrency; the
   API/MLflow and API/hello throughput ratios at the highest concurrency; the shadow
   on/off differences at each concurrency, with the noise band.
5. Everything started is stopped (process groups, PostgreSQL, temp dirs) and checked.

``--profile`` then profiles the API in-process (cProfile over the ASGI app, no HTTP
server, no load generator) and times each stage of a ``/predict`` request.

The last line is ``api_p50_ms=... api_p99_ms=... api_rps=... mlflow_p50_ms=...
mlflow_rps=... rps_ratio=... hello_rps=... ratio_to_hello=... shadow_share=...
p50_off_ms=... p50_on_ms=... p99_off_ms=... p99_on_ms=... noise_p50_ms=...
noise_p99_ms=...``: the API with ``customer_id`` bodies (mean of its two runs);
latencies at 1 connection, throughputs and ratios at the highest concurrency (16); the
shadow keys at 1 connection: ``*_off`` the mean of the four off runs, ``*_on`` of the two
on runs, ``noise_*`` the spread (max - min) of the four off runs.

Usage: python benchmarks/serving.py [--customers N] [--days D] [--candidate KIND]
       [--workers W] [--duration S] [--warmup S] [--connections 1,16]
       [--loadgen auto|wrk|python] [--shadow-sample SHARE] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # for tests.warehouse (the fast loader the tests use)
    sys.path.insert(0, str(REPO))

END = dt.date(2019, 2, 13)
DAY = END + dt.timedelta(days=1)
API_KEY = f"bench-{uuid.uuid4().hex}"

from _pg import admin_url, fresh_database  # noqa: E402 (the script's own folder)
from _world import (  # noqa: E402
    HOST,
    Server,
    day_features,
    free_port,
    group_alive,
    http,
    say,
    start_server,
    stop_server,
    wait_ready,
)


@dataclass
class World:
    warehouse_url: str
    tracking_uri: str
    model_name: str
    version: str
    candidate: str
    customer_ids: list[str]
    feature_rows: list[list[float]]


def build_world(warehouse: str, tracking: str, workdir: Path, args: argparse.Namespace) -> World:
    """History, features, one trained and registered version as champion."""
    from mlflow import MlflowClient

    from creditrisk.features.build import build_for_date
    from creditrisk.model.train import pinned_config, train
    from tests.warehouse import load_generated

    t0 = time.perf_counter()
    rows = load_generated(warehouse, workdir / "landing", customers=args.customers,
                          days=args.days, end_date=END, seed=args.seed)
    t1 = time.perf_counter()
    build_for_date(DAY, database_url=warehouse, run_id="bench-serving")
    t2 = time.perf_counter()
    cfg = pinned_config(args.candidate)
    model_name = f"credit-risk-pd-bench-{uuid.uuid4().hex[:6]}"
    res = train(DAY, database_url=warehouse, tracking_uri=tracking, model_name=model_name,
                run_id="bench-serving", promote=False, config=cfg)
    MlflowClient(tracking_uri=tracking).set_registered_model_alias(
        model_name, "champion", res["version"])
    t3 = time.perf_counter()
    ids, feats = day_features(warehouse, DAY)
    say(f"setup: {rows:,} transactions loaded in {t1 - t0:.1f} s; features of {len(ids):,} "
        f"customers as of {DAY} in {t2 - t1:.1f} s; trained + registered {res['selected']} as "
        f"{model_name} v{res['version']} (champion) in {t3 - t2:.1f} s")
    return World(warehouse, tracking, model_name, str(res["version"]), res["selected"], ids,
                 feats)


# ---------------------------------------------------------------------------------------------
# Load generation (a separate process: wrk, or this file with --loadgen-spec)
# ---------------------------------------------------------------------------------------------


@dataclass
class Target:
    label: str
    port: int
    path: str
    headers: dict[str, str]
    bodies: list[bytes]


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


_WRK_LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{headers}
local bodies = {{
{bodies}
}}
local n = #bodies
local i = 0
function setup(thread)
  thread:set("offset", math.random(0, n - 1))
end
function init(args)
  i = tonumber(offset) or 0
end
function request()
  i = i + 1
  return wrk.format(nil, nil, nil, bodies[(i % n) + 1])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKRESULT {{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %f, "p99_us": %f}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50.0), latency:percentile(99.0)))
end
"""


def _lua_string(text: str) -> str:
    level = 1
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def run_wrk(target: Target, conns: int, seconds: float, workdir: Path) -> LoadResult:
    script = workdir / f"wrk-{uuid.uuid4().hex[:6]}.lua"
    script.write_text(_WRK_LUA.format(
        headers="\n".join(f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}"
                          for k, v in target.headers.items()),
        bodies=",\n".join(_lua_string(b.decode()) for b in target.bodies),
    ))
    # One wrk thread: it drives thousands of requests/s and leaves the cores to the server.
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
           "-s", str(script), f"http://{HOST}:{target.port}{target.path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKRESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    r = json.loads(line.split(" ", 1)[1])
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return LoadResult(r["requests"], errors, r["duration_us"] / 1e6, r["p50_us"] / 1000,
                      r["p99_us"] / 1000)


def run_python_loadgen(target: Target, conns: int, seconds: float, workdir: Path) -> LoadResult:
    spec = workdir / f"load-{uuid.uuid4().hex[:6]}.json"
    spec.write_text(json.dumps({
        "port": target.port, "path": target.path, "headers": target.headers,
        "bodies": [b.decode() for b in target.bodies], "connections": conns,
        "seconds": seconds,
    }))
    out = subprocess.run([sys.executable, __file__, "--loadgen-spec", str(spec)],
                         capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return LoadResult(r["requests"], r["errors"], r["seconds"], r["p50_ms"], r["p99_ms"])


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (Content-Length or chunked); return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked = 0, False
    for ln in lines[1:]:
        key, _, value = ln.partition(":")
        key = key.strip().lower()
        if key == "content-length":
            length = int(value)
        elif key == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    port, conns, seconds = spec["port"], spec["connections"], spec["seconds"]
    head = (f"POST {spec['path']} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            "Content-Type: application/json\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in spec["headers"].items()))
    requests = [(head + f"Content-Length: {len(b.encode())}\r\n\r\n").encode() + b.encode()
                for b in spec["bodies"]]
    latencies: list[float] = []
    errors = 0
    counter = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors, counter
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while time.perf_counter() < deadline:
                counter += 1
                req = requests[counter % len(requests)]
                t0 = time.perf_counter()
                try:
                    writer.write(req)
                    status = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, port)
                    continue
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conns)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {"requests": len(latencies), "errors": errors, "seconds": elapsed,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99)}


def loadgen_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    try:
        import uvloop  # type: ignore[import-not-found]

        result = uvloop.run(_loadgen(spec))
    except ImportError:
        result = asyncio.run(_loadgen(spec))
    print(json.dumps(result), flush=True)


def measure(target: Target, conns: int, args: argparse.Namespace, workdir: Path) -> LoadResult:
    run = run_wrk if args.loadgen_used == "wrk" else run_python_loadgen
    if args.warmup > 0:
        run(target, conns, args.warmup, workdir)
    return run(target, conns, args.duration, workdir)


# ---------------------------------------------------------------------------------------------
# In-process profile of the API (--profile)
# ---------------------------------------------------------------------------------------------


async def _asgi_post(app: Any, path: str, body: bytes, headers: dict[str, str]) -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": (HOST, 50000), "server": (HOST, 8000),
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *((k.lower().encode(), v.encode()) for k, v in headers.items())],
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def _import_the_api() -> None:
    """``serving`` is this script's own name on ``sys.path[0]``: let the API package win."""
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != here]
    sys.path.insert(0, str(REPO))
    loaded = sys.modules.get("serving")
    if loaded is not None and not hasattr(loaded, "__path__"):
        del sys.modules["serving"]


def profile_api(world: World, targets: dict[str, Target], n_max: int = 2000) -> None:
    """Profile the ASGI app in-process: cost per request, thread hops, cProfile, stages.

    No HTTP server and no load generator: what is left is the app's own work. cProfile
    sees the event-loop thread only; work run in the thread pool (sync dependencies,
    ``asyncio.to_thread``) shows there as waiting in ``epoll``, hence the hop count.
    """
    import cProfile
    import io
    import logging
    import pstats

    import anyio.to_thread

    os.environ.update(api_env(world))
    _import_the_api()
    from serving.settings import get_serving_settings

    get_serving_settings.cache_clear()
    from serving.app import create_app

    app = create_app()
    hdr = {"X-API-Key": API_KEY}
    hops = {"anyio": 0, "asyncio": 0}
    anyio_run_sync, asyncio_to_thread = anyio.to_thread.run_sync, asyncio.to_thread

    async def counted_run_sync(*a: Any, **k: Any) -> Any:
        hops["anyio"] += 1
        return await anyio_run_sync(*a, **k)

    async def counted_to_thread(*a: Any, **k: Any) -> Any:
        hops["asyncio"] += 1
        return await asyncio_to_thread(*a, **k)

    async def go() -> None:
        async with app.router.lifespan_context(app):
            # the JSON request log goes to /dev/null here (a file write, as in a container)
            devnull = open(os.devnull, "w")  # noqa: SIM115
            for name in ("serving", "creditrisk"):
                for h in logging.getLogger(name).handlers:
                    if isinstance(h, logging.StreamHandler):
                        h.setStream(devnull)
            for label in ("api/customer_id", "api/features"):
                t = targets[label]
                w0 = time.perf_counter()
                for b in t.bodies:  # warm the cache and every code path
                    assert await _asgi_post(app, t.path, b, hdr) == 200
                # about 2 s per timed pass, whatever the model costs
                n = max(200, min(n_max, int(2.0 / ((time.perf_counter() - w0) / len(t.bodies)))))
                hops.update(anyio=0, asyncio=0)
                anyio.to_thread.run_sync = counted_run_sync  # type: ignore[assignment]
                asyncio.to_thread = counted_to_thread  # type: ignore[assignment]
                try:
                    for b in t.bodies[:100]:
                        await _asgi_post(app, t.path, b, hdr)
                finally:
                    anyio.to_thread.run_sync = anyio_run_sync
                    asyncio.to_thread = asyncio_to_thread
                walls, cpus = [], []
                for _ in range(3):
                    w0, c0 = time.perf_counter(), time.process_time()
                    for i in range(n):
                        await _asgi_post(app, t.path, t.bodies[i % len(t.bodies)], hdr)
                    walls.append((time.perf_counter() - w0) / n * 1e6)
                    cpus.append((time.process_time() - c0) / n * 1e6)
                prof = cProfile.Profile()
                prof.enable()
                for i in range(n):
                    await _asgi_post(app, t.path, t.bodies[i % len(t.bodies)], hdr)
                prof.disable()
                buf = io.StringIO()
                pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
                say(f"\n--- profile {label}: {sorted(walls)[1]:.0f} us wall, "
                    f"{sorted(cpus)[1]:.0f} us CPU per request through the ASGI app (no "
                    f"server, no client; median of 3 x {n}); thread-pool round trips per "
                    f"request: {hops['anyio'] / 100:g} (sync dependencies, anyio) + "
                    f"{hops['asyncio'] / 100:g} (asyncio.to_thread) ---")
                say("top functions by own time, event-loop thread only "
                    "(tottime/cumtime in s over the profiled requests):")
                say("\n".join(ln for ln in buf.getvalue().splitlines()[6:] if ln.strip()))
            await stage_timings(app, world, targets)

    asyncio.run(go())


async def stage_timings(app: Any, world: World, targets: dict[str, Target]) -> None:
    """Microbenchmarks of the stages of one /predict request, same process and model."""
    import numpy as np

    from creditrisk.catalogue import FEATURE_NAMES
    from creditrisk.scoring import decide as decide_mod
    from serving.observability import JsonFormatter
    from serving.predictor import score_items
    from serving.schemas import PredictRequest, PredictResponse

    state = app.state
    model, store, policy = state.holder.current, state.store, state.policy
    cid = PredictRequest.model_validate_json(targets["api/customer_id"].bodies[0])
    batch = [PredictRequest.model_validate_json(b) for b in targets["api/customer_id"].bodies[:5]]
    feat_body = targets["api/features"].bodies[0]
    feat = PredictRequest.model_validate_json(feat_body)
    X = np.asarray([world.feature_rows[0]])
    cols = dict(zip(FEATURE_NAMES, X.T, strict=True))
    pd_, contrib = model.predict(X)
    out = score_items([feat], model, store, policy)[0].body
    record = logging_record()
    fmt = JsonFormatter()

    def decide_one(row_path: bool) -> Any:
        saved = decide_mod.ROW_PATH_MAX
        decide_mod.ROW_PATH_MAX = saved if row_path else 0
        try:
            return decide_mod.decide(pd_, cols, contrib, policy, names=list(FEATURE_NAMES),
                                     baseline=model.baseline, basket_amounts=[None],
                                     basket_categories=[None])
        finally:
            decide_mod.ROW_PATH_MAX = saved

    stages: list[tuple[str, Any]] = [
        ("PredictRequest from JSON (json.loads + model), features body (37 floats)",
         lambda: PredictRequest.model_validate(json.loads(feat_body))),
        ("store.lookup, cache hit", lambda: store.lookup(cid.customer_id)),
        ("model.predict: PD + contributions, one row (LR: the numpy fast path)",
         lambda: model.predict(X)),
        ("decide, one row: the row path (plain floats)", lambda: decide_one(True)),
        ("  the same row through the array path (numpy)", lambda: decide_one(False)),
        ("score_items, features item (all of the above)",
         lambda: score_items([feat], model, store, policy)),
        ("score_items, customer_id item, cache hit",
         lambda: score_items([cid], model, store, policy)),
        ("score_items, 5 customer_id items (a micro-batch at c=16), per item",
         lambda: score_items(batch, model, store, policy)),
        ("PredictResponse(**body) + model_dump_json",
         lambda: PredictResponse(**out, request_id="x" * 32, latency_ms=1.0).model_dump_json()),
        ("JSON log line: JsonFormatter.format", lambda: fmt.format(record)),
        ("prometheus: 2 counters + 1 histogram", lambda: (
            state.metrics.requests.labels("/predict", "POST", "200").inc(),
            state.metrics.latency.labels("/predict", "POST").observe(0.001),
            state.metrics.predictions.labels("APPROVE", "A").inc())),
    ]
    say("\n--- stage timings, us per call (median of 5 runs of up to 2,000 calls, one thread) ---")
    for label, fn in stages:
        try:
            per = 5 if "per item" in label else 1
            say(f"{_time_us(fn) / per:9.1f}  {label}")
        except Exception as exc:  # the serving internals moved: report, carry on
            say(f"{'n/a':>9}  {label}: {type(exc).__name__}: {exc}")

    async def hop() -> None:
        await asyncio.to_thread(int)

    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(500):
            await hop()
        runs.append((time.perf_counter() - t0) / 500 * 1e6)
    say(f"{sorted(runs)[2]:9.1f}  one thread-pool round trip (asyncio.to_thread of a no-op), "
        "idle loop")


def logging_record() -> Any:
    import logging

    record = logging.LogRecord("serving.app", logging.INFO, __file__, 1, "request", None, None)
    record.__dict__.update({"request_id": "x" * 32, "route": "/predict", "method": "POST",
                            "status": 200, "latency_ms": 1.234, "decision": "APPROVE",
                            "model_version": "1", "customer_id": "CustomerId_1"})
    return record


def _time_us(fn: Any, calls: int = 2000) -> float:
    t0 = time.perf_counter()
    fn()
    calls = max(20, min(calls, int(0.3 / max(time.perf_counter() - t0, 1e-7))))
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - t0) / calls * 1e6)
    return sorted(runs)[2]


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def api_env(world: World) -> dict[str, str]:
    return {
        "DATABASE_URL": world.warehouse_url,
        "MLFLOW_TRACKING_URI": world.tracking_uri,
        "CREDITRISK_MODEL_NAME": world.model_name,
        "CREDITRISK_MODEL_ALIAS": "champion",
        "CREDITRISK_API_KEYS": API_KEY,
        "CREDITRISK_ENV": "dev",
        # the default 6,000/min per key would answer 429 to a benchmark
        "CREDITRISK_RATE_LIMIT_PER_MINUTE": "1000000000",
    }


def make_targets(world: World, api_port: int, mlflow_port: int) -> dict[str, Target]:
    from creditrisk.catalogue import FEATURE_NAMES

    names = list(FEATURE_NAMES)
    key = {"X-API-Key": API_KEY}
    rows = world.feature_rows[:500]  # the same rows for the API features run and MLflow
    return {
        "api/customer_id": Target("api customer_id", api_port, "/predict", key, [
            json.dumps({"customer_id": c}).encode() for c in world.customer_ids]),
        "api/features": Target("api features", api_port, "/predict", key, [
            json.dumps({"features": dict(zip(names, r, strict=True))}).encode()
            for r in rows]),
        "mlflow": Target("mlflow dataframe_split", mlflow_port, "/invocations", {}, [
            json.dumps({"dataframe_split": {"columns": names, "data": [r]}}).encode()
            for r in rows]),
    }


#: uvicorn's flags for every FastAPI server of the run, as Dockerfile.api runs the API
#: (its JSON request log replaces uvicorn's access log)
UVICORN_FLAGS = ["--no-access-log"]


def uvicorn_cmd(app: str, port: int, args: argparse.Namespace, *extra: str) -> list[str]:
    return [sys.executable, "-m", "uvicorn", app, *extra, "--host", HOST, "--port", str(port),
            "--workers", str(args.workers), *UVICORN_FLAGS]


def start_shadow_api(world: World, env: dict[str, str], workdir: Path,
                     args: argparse.Namespace) -> Server:
    """A second API, the same in every way but the shadow sample: a copy of the champion
    registered as ``challenger`` and ``--shadow-sample`` of /predict calls scored by it."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=world.tracking_uri)
    source = client.get_model_version(world.model_name, world.version).source
    mlflow.set_tracking_uri(world.tracking_uri)
    copy = str(mlflow.register_model(source, world.model_name).version)
    client.set_registered_model_alias(world.model_name, "challenger", copy)
    say(f"shadow: v{copy} (a copy of v{world.version}) is challenger; the second API "
        f"samples {args.shadow_sample:g} of /predict calls for it")
    port = free_port()
    return start_server(
        "api-shadow", uvicorn_cmd("serving.app:app", port, args),
        {**env, **api_env(world), "CREDITRISK_SHADOW_SAMPLE": str(args.shadow_sample)},
        port, workdir)


def start_hello(env: dict[str, str], body_bytes: int, workdir: Path,
                args: argparse.Namespace) -> Server:
    """The framework's ceiling (benchmarks/_hello_app.py), same uvicorn command line."""
    port = free_port()
    server = start_server(
        "hello", uvicorn_cmd("_hello_app:app", port, args, "--app-dir", str(REPO / "benchmarks")),
        {**env, "CREDITRISK_API_KEYS": API_KEY, "HELLO_BODY_BYTES": str(body_bytes)},
        port, workdir)
    wait_ready([(server, "/docs", {})])
    return server


def prime_cache(world: World, api_port: int) -> float:
    """One pass over every customer id through /predict/batch: fills the TTL cache."""
    t0 = time.perf_counter()
    ids = world.customer_ids
    for i in range(0, len(ids), 1000):
        body = json.dumps({"items": [{"customer_id": c} for c in ids[i:i + 1000]]}).encode()
        status, text = http("POST", f"http://{HOST}:{api_port}/predict/batch", body,
                            {"Content-Type": "application/json", "X-API-Key": API_KEY},
                            timeout=60)
        if status != 200:
            raise RuntimeError(f"cache priming failed: {status} {text[:300]!r}")
    return time.perf_counter() - t0


def sanity_check(targets: dict[str, Target]) -> int:
    """One request each; the API's PD must equal MLflow's for the same feature row.

    Returns the size in bytes of the API's answer to the first customer_id body."""
    api = targets["api/features"]
    st, body = http("POST", f"http://{HOST}:{api.port}{api.path}", api.bodies[0],
                    {"Content-Type": "application/json", **api.headers})
    if st != 200:
        raise RuntimeError(f"API answered {st}: {body[:300]!r}")
    api_out = json.loads(body)
    ml = targets["mlflow"]
    st, body = http("POST", f"http://{HOST}:{ml.port}{ml.path}", ml.bodies[0],
                    {"Content-Type": "application/json"})
    if st != 200:
        raise RuntimeError(f"MLflow answered {st}: {body[:300]!r}")
    preds = json.loads(body)["predictions"]
    ml_pd = float(preds[0][1] if isinstance(preds[0], list) else preds[0])
    cid = targets["api/customer_id"]
    st, body = http("POST", f"http://{HOST}:{cid.port}{cid.path}", cid.bodies[0],
                    {"Content-Type": "application/json", **cid.headers})
    if st != 200:
        raise RuntimeError(f"API (customer_id) answered {st}: {body[:300]!r}")
    say(f"sanity: API PD {api_out['probability_of_default']:.6f} ({api_out['decision']}, "
        f"v{api_out['model_version']}) vs MLflow {ml_pd:.6f} for the same row; "
        f"customer_id request -> {json.loads(body)['decision']}, {len(body)} bytes")
    if abs(api_out["probability_of_default"] - ml_pd) > 1e-6:
        raise RuntimeError("the API and MLflow disagree on the same row and version")
    return len(body)


def check_hello(target: Target, want_bytes: int) -> None:
    st, body = http("POST", f"http://{HOST}:{target.port}{target.path}", target.bodies[0],
                    {"Content-Type": "application/json", **target.headers})
    if st != 200:
        raise RuntimeError(f"hello answered {st}: {body[:300]!r}")
    bad = http("POST", f"http://{HOST}:{target.port}{target.path}", target.bodies[0],
               {"Content-Type": "application/json", "X-API-Key": "wrong"})[0]
    if bad != 401:
        raise RuntimeError(f"hello accepted a wrong key ({bad})")
    say(f"hello: {len(body)} bytes answered (the API's: {want_bytes}), 401 on a wrong key")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--candidate", choices=["logistic_regression", "xgboost"],
                   default="logistic_regression")
    p.add_argument("--workers", type=int, default=1, help="uvicorn workers of the API")
    p.add_argument("--duration", type=float, default=8.0, help="seconds per timed run")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each run")
    p.add_argument("--connections", default="1,16", help="comma-separated concurrencies")
    p.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    p.add_argument("--profile", action="store_true",
                   help="also profile the API in-process (cProfile + stage timings)")
    p.add_argument("--shadow-sample", type=float, default=0.05,
                   help="CREDITRISK_SHADOW_SAMPLE of the second API (the shadow-on runs)")
    p.add_argument("--loadgen-spec", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.conns = [int(c) for c in args.connections.split(",") if c.strip()]
    if args.loadgen == "auto":
        args.loadgen_used = "wrk" if shutil.which("wrk") else "python"
    else:
        args.loadgen_used = args.loadgen
    if args.loadgen_used == "wrk" and not shutil.which("wrk"):
        p.error("--loadgen wrk: wrk is not on PATH")
    return args


#: the runs at each concurrency, in this order: two identical shadow-off API processes
#: (api, api-b) and the shadow-on one (api-shadow), each twice, interleaved; the hello app
#: between the rounds. The four off runs (two processes x two runs) give the noise band:
#: run to run and process to process, as the on/off comparison is across processes too.
SEQUENCE = ("api/customer_id#1", "api-shadow/customer_id#1", "api-b/customer_id#1", "hello",
            "api-b/customer_id#2", "api-shadow/customer_id#2", "api/customer_id#2", "mlflow",
            "api/features")
OFF_RUNS = ("api/customer_id#1", "api/customer_id#2", "api-b/customer_id#1",
            "api-b/customer_id#2")
ON_RUNS = ("api-shadow/customer_id#1", "api-shadow/customer_id#2")


def _microbatches(target: Target) -> tuple[float, float]:
    """(scoring calls, /predict calls they answered) of an API target, from /metrics."""
    if not target.label.startswith("api"):
        return 0.0, 0.0
    text = http("GET", f"http://{HOST}:{target.port}/metrics")[1].decode()
    got = {ln.split(" ")[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
           if ln.startswith("creditrisk_predict_microbatch")}
    return (got.get("creditrisk_predict_microbatches_total", 0.0),
            got.get("creditrisk_predict_microbatch_items_total", 0.0))


def load_phase(world: World, targets: dict[str, Target], args: argparse.Namespace,
               workdir: Path) -> dict[tuple[str, int], LoadResult]:
    """Every run of :data:`SEQUENCE` at every concurrency; customer_id runs primed."""
    results: dict[tuple[str, int], LoadResult] = {}
    for conns in args.conns:
        for key in SEQUENCE:
            target = targets[key.split("#")[0]]
            if key.split("#")[0].endswith("/customer_id"):
                prime_cache(world, target.port)  # TTL 60 s: the timed requests are hits
            before = _microbatches(target)
            r = results[(key, conns)] = measure(target, conns, args, workdir)
            after = _microbatches(target)
            batches = (f"  mean micro-batch {(after[1] - before[1]) / (after[0] - before[0]):.2f}"
                       if after[0] > before[0] else "")
            say(f"  {key:<26} c={conns:<3} {r.rps:8.1f} req/s  p50 {r.p50_ms:7.2f} ms  "
                f"p99 {r.p99_ms:7.2f} ms  errors {r.errors}{batches}")
    return results


def run(args: argparse.Namespace) -> None:
    bin_dir = Path(sys.executable).parent
    started_servers: list[Server] = []
    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="crbench-serving-"))
        stack.callback(shutil.rmtree, workdir, True)
        os.environ["CREDITRISK_MLFLOW_ARTIFACT_ROOT"] = str(workdir / "mlartifacts")
        t0 = time.perf_counter()
        admin = stack.enter_context(admin_url())
        warehouse = stack.enter_context(fresh_database(admin, "crbench_wh"))
        tracking = stack.enter_context(fresh_database(admin, "crbench_mlflow", migrated=False))
        world = build_world(warehouse, tracking, workdir, args)

        base_env = {k: v for k, v in os.environ.items()
                    if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
        base_env["PATH"] = f"{bin_dir}{os.pathsep}{base_env.get('PATH', '')}"
        base_env["PYTHONUNBUFFERED"] = "1"

        def started(server: Server) -> Server:
            started_servers.append(server)
            stack.callback(stop_server, server)
            return server

        api_port, mlflow_port = free_port(), free_port()
        while mlflow_port == api_port:
            mlflow_port = free_port()
        api = started(start_server("api", uvicorn_cmd("serving.app:app", api_port, args),
                                   {**base_env, **api_env(world)}, api_port, workdir))
        mlflow = started(start_server(
            "mlflow", [str(bin_dir / "mlflow"), "models", "serve", "-m",
                       f"models:/{world.model_name}/{world.version}", "--env-manager", "local",
                       "-p", str(mlflow_port), "--host", HOST],
            {**base_env, "MLFLOW_TRACKING_URI": world.tracking_uri}, mlflow_port, workdir))
        b_port = free_port()
        api_b = started(start_server("api-b", uvicorn_cmd("serving.app:app", b_port, args),
                                     {**base_env, **api_env(world)}, b_port, workdir))
        shadow = started(start_shadow_api(world, base_env, workdir, args))
        wait_ready([(api, "/ready", {"X-API-Key": API_KEY}), (mlflow, "/ping", {}),
                    (shadow, "/ready", {"X-API-Key": API_KEY}),
                    (api_b, "/ready", {"X-API-Key": API_KEY})])

        targets = make_targets(world, api_port, mlflow_port)
        targets["api-shadow/customer_id"] = dataclasses.replace(
            targets["api/customer_id"], label="api customer_id, shadow on", port=shadow.port)
        targets["api-b/customer_id"] = dataclasses.replace(
            targets["api/customer_id"], label="api customer_id, second process", port=b_port)
        answer_bytes = sanity_check(targets)
        hello = started(start_hello(base_env, answer_bytes, workdir, args))
        targets["hello"] = Target("hello", hello.port, "/predict", {"X-API-Key": API_KEY},
                                  targets["api/customer_id"].bodies)
        check_hello(targets["hello"], answer_bytes)
        say(f"load generator: {args.loadgen_used} "
            + ("(1 thread, Lua script; its own CPU use is small)" if args.loadgen_used == "wrk"
               else "(Python asyncio raw sockets in its own process; it competes with the "
                    "server for the 2 cores and caps what it can measure)")
            + f"; {args.duration:g} s per run after {args.warmup:g} s of warm-up at the same "
              "concurrency; closed loop, keep-alive connections")
        say(f"API, API with the shadow sample, hello: {args.workers} uvicorn worker(s), "
            f"`uvicorn ... {' '.join(UVICORN_FLAGS)}` as in Dockerfile.api (the API's JSON "
            "request log on, to a file); the API's rate limit raised for the run (its default "
            "would answer 429 within seconds); MLflow: mlflow models serve, 1 worker (its "
            "default)")
        results = load_phase(world, targets, args, workdir)
        for server in started_servers:
            if server.proc.poll() is not None:
                raise RuntimeError(f"{server.name} died during the run:\n{server.tail()}")
        shadow_metrics = http("GET", f"http://{HOST}:{shadow.port}/metrics")[1].decode()
        if args.profile:
            profile_api(world, targets)
        setup_s = time.perf_counter() - t0
    leftovers = [s.name for s in started_servers if group_alive(s.proc.pid)]
    report(results, args, world, setup_s, leftovers, shadow_metrics)


def _pool(results: dict[tuple[str, int], LoadResult], keys: tuple[str, ...],
          conns: int) -> LoadResult:
    """Runs ``keys`` at ``conns`` as one: summed requests and seconds, mean latencies."""
    rs = [results[(k, conns)] for k in keys]
    return LoadResult(sum(r.requests for r in rs), sum(r.errors for r in rs),
                      sum(r.seconds for r in rs), sum(r.p50_ms for r in rs) / len(rs),
                      sum(r.p99_ms for r in rs) / len(rs))


def _mean(results: dict[tuple[str, int], LoadResult], key: str, conns: int) -> LoadResult:
    """The two runs of ``key`` at ``conns`` as one."""
    return _pool(results, (f"{key}#1", f"{key}#2"), conns)


def _spread(results: dict[tuple[str, int], LoadResult], keys: tuple[str, ...], conns: int,
            field: str) -> float:
    values = [getattr(results[(k, conns)], field) for k in keys]
    return max(values) - min(values)


def _shadow_counts(metrics: str) -> str:
    out = []
    for line in metrics.splitlines():
        if line.startswith("creditrisk_shadow_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            out.append(f"{outcome} {float(line.rsplit(' ', 1)[1]):.0f}")
    return ", ".join(out) or "none"


def report(results: dict[tuple[str, int], LoadResult], args: argparse.Namespace, world: World,
           total_s: float, leftovers: list[str], shadow_metrics: str) -> None:
    lo, hi = min(args.conns), max(args.conns)
    say(f"\nmodel: {world.model_name} v{world.version} ({world.candidate}); "
        f"load generator: {args.loadgen_used}; workers: {args.workers}")
    say(f"{'server / body':<34}{'conc':>5}{'requests':>10}{'req/s':>10}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'errors':>8}")
    for key in SEQUENCE:
        for conns in args.conns:
            r = results[(key, conns)]
            say(f"{key:<34}{conns:>5}{r.requests:>10}{r.rps:>10.1f}{r.p50_ms:>9.2f}"
                f"{r.p99_ms:>9.2f}{r.errors:>8}")
    errors = sum(r.errors for r in results.values())
    api_lo, api_hi = _mean(results, "api/customer_id", lo), _mean(results, "api/customer_id", hi)
    ml_lo, ml_hi = results[("mlflow", lo)], results[("mlflow", hi)]
    hello_hi = results[("hello", hi)]
    ratio = api_hi.rps / ml_hi.rps if ml_hi.rps else float("inf")
    to_hello = api_hi.rps / hello_hi.rps if hello_hi.rps else 0.0
    feat_ratio = results[("api/features", hi)].rps / ml_hi.rps if ml_hi.rps else float("inf")
    say(f"errors: {errors} in total ({'OK' if errors == 0 else 'NOT ZERO'})")
    say(f"rps ratio API/MLflow at c={hi}: {ratio:.2f} with customer_id bodies, {feat_ratio:.2f} "
        f"with features bodies (target >= 20: {'met' if ratio >= 20 else 'MISSED'})")
    say(f"API/hello at c={hi}: {api_hi.rps:.1f} / {hello_hi.rps:.1f} req/s = {to_hello:.2f} "
        f"(target >= 0.5: {'met' if to_hello >= 0.5 else 'MISSED'})")
    say(f"API p99 at c={lo}: {api_lo.p99_ms:.2f} ms (target <= 10 ms: "
        f"{'met' if api_lo.p99_ms <= 10 else 'MISSED'})")
    for conns in args.conns:
        off, on = _pool(results, OFF_RUNS, conns), _pool(results, ON_RUNS, conns)
        rps_noise = _spread(results, OFF_RUNS, conns, "rps") / off.rps * 100 if off.rps else 0
        say(f"shadow sample {args.shadow_sample:g} on vs off at c={conns}: p50 {on.p50_ms:.2f} vs "
            f"{off.p50_ms:.2f} ms ({on.p50_ms - off.p50_ms:+.2f}; noise band, the spread of "
            f"the four off runs: {_spread(results, OFF_RUNS, conns, 'p50_ms'):.2f}), p99 "
            f"{on.p99_ms:.2f} vs {off.p99_ms:.2f} ms ({on.p99_ms - off.p99_ms:+.2f}; noise "
            f"{_spread(results, OFF_RUNS, conns, 'p99_ms'):.2f}), {on.rps:.1f} vs "
            f"{off.rps:.1f} req/s ({(on.rps / off.rps - 1) * 100 if off.rps else 0:+.1f}%; "
            f"noise {rps_noise:.1f}%)")
    say(f"shadow outcomes (creditrisk_shadow_total): {_shadow_counts(shadow_metrics)}")
    say(f"processes left behind: {', '.join(leftovers) or 'none'}; total {total_s:.0f} s")
    say(f"last line: api_* = API with customer_id bodies, mean of its two shadow-off runs; "
        f"p50/p99 at c={lo}, rps, rps_ratio, hello_rps and ratio_to_hello at c={hi}; "
        f"mlflow_p50 at c={lo}, mlflow_rps at c={hi}; shadow keys at c={lo}: *_off the mean "
        "of the four off runs (api and api-b, twice each), *_on of the two on runs, noise_* "
        "the spread (max - min) of the four off runs")
    off_lo, on_lo = _pool(results, OFF_RUNS, lo), _pool(results, ON_RUNS, lo)
    say(f"api_p50_ms={api_lo.p50_ms:.2f} api_p99_ms={api_lo.p99_ms:.2f} api_rps={api_hi.rps:.1f} "
        f"mlflow_p50_ms={ml_lo.p50_ms:.2f} mlflow_rps={ml_hi.rps:.1f} rps_ratio={ratio:.2f} "
        f"hello_rps={hello_hi.rps:.1f} ratio_to_hello={to_hello:.2f} "
        f"shadow_share={args.shadow_sample:g} p50_off_ms={off_lo.p50_ms:.2f} "
        f"p50_on_ms={on_lo.p50_ms:.2f} p99_off_ms={off_lo.p99_ms:.2f} "
        f"p99_on_ms={on_lo.p99_ms:.2f} "
        f"noise_p50_ms={_spread(results, OFF_RUNS, lo, 'p50_ms'):.2f} "
        f"noise_p99_ms={_spread(results, OFF_RUNS, lo, 'p99_ms'):.2f}")
    if errors or leftovers:
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.loadgen_spec:
        loadgen_main(args.loadgen_spec)
        return

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds the ExitStack: servers and PostgreSQL stop

    signal.signal(signal.SIGTERM, on_term)
    run(args)


if __name__ == "__main__":
    main()
