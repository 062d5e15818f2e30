"""Soak: a steady open-loop load on the scoring API, then the same load across a hot swap.

In one run, on 127.0.0.1 only:

1. A world as ``serving.py`` builds it: PostgreSQL (``TEST_DATABASE_URL`` or
   ``DATABASE_URL`` if set, else an embedded ``pgserver``, deleted afterwards), generated
   history (``--customers`` x ``--days``), features for the day after it, and a real MLflow
   store (a database of the same server, artifacts in a temp dir). Two logistic-regression
   versions are trained and registered before any load: v1 (the configured ``C``) is made
   ``champion``; v2 (``C`` / 10, so its PDs differ) waits without the alias.
2. The API as ``Dockerfile.api`` runs it (``uvicorn serving.app:app``, 1 worker, no access
   log, the app's JSON request log to a file) in a process of its own, so its RSS is its
   own; the model alias is re-checked every ``--reload-interval`` s (1 s), the feature cache
   TTL is ``--cache-ttl`` s (10 s, so known customers keep expiring and missing), and the
   per-key rate limit is raised (the default 6,000/min would answer 429 to this load).
3. One open-loop schedule of ``--rate`` requests/s to ``POST /predict`` for 2 x
   ``--seconds``: phase 1 (steady) then phase 2 (hot swap), back to back. Bodies, drawn
   with ``--seed``: 60% a known ``customer_id`` (warehouse lookup, cache hit or miss), 5% an
   unknown id from a pool of 200 (a thin-file answer, also cached), 35% inline
   ``features`` of a real customer; every other body carries an ``amount``. Halfway through
   phase 2 the ``champion`` alias moves to v2 (``MlflowClient.set_registered_model_alias``,
   the promotion path); the API must pick it up from the registry by itself.
4. The server's RSS (psutil) and CPU time are sampled every second; RSS figures use only
   the samples after ``--warmup`` s of phase 1.

How latency is measured: request ``i`` is due at ``t0 + i / rate`` on a fixed clock,
whatever happened to earlier requests (open loop: a slow server cannot slow the
offered load down, so there is no coordinated omission). Its latency runs from that due
time to the end of reading the response, so it includes any wait in the client (the event
loop, the queue in front of ``--connections`` keep-alive connections, 32 by default) as well
as the server's queueing. The client (raw HTTP/1.1 on asyncio streams, uvloop) runs in this
process and shares the machine's cores with the server; its own CPU use is reported, and so
are the scheduler's worst lag (its event loop starved) and the longest wait for a free
connection (every connection waiting on the server), next to the server's own handling time
from its request log, so a slow tail can be put on the client, the queue or the server.
A request is an error unless it gets a 200 (connection errors and timeouts included).

Per phase: requests, errors, p50/p99/max latency, achieved rate (requests completed in the
phase over the time from its first due time to its last completion), RSS after warm-up at
the phase's first and last sample, end-minus-start and the least-squares growth (slope of
RSS over time x the sampled span), and in phase 2 the time the alias moved, the first
response from v2, and whether any later request was answered by v1.

The last line is ``seconds=... requests=... errors=... p99_ms=... rss_growth_mb=...
rss_slope_mb_per_min=...``:
seconds of load (both phases, warm-up included), all requests, all errors, the p99 of all
requests, and the least-squares RSS growth over every post-warm-up sample of both phases
(slope x span, in MB of 10^6 bytes) and that slope per minute (the leak target is
<= 0.1 MB/min over ``--minutes 60``). The exit status is 1 if any request failed, the API
did not switch to v2, it died, or a process was left behind.

Usage: python benchmarks/soak.py [--minutes M | --seconds S] [--rate R] [--warmup W] [--quick]
       [--customers N] [--days D] [--reload-interval S] [--cache-ttl S] [--connections C]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # for tests.warehouse (the fast loader the tests use)
    sys.path.insert(0, str(REPO))

from _pg import admin_url, fresh_database  # noqa: E402 (the script's own folder)
from _world import (  # noqa: E402
    HOST,
    day_features,
    free_port,
    group_alive,
    http,
    say,
    start_server,
    stop_server,
    wait_ready,
)

END = dt.date(2019, 2, 13)
DAY = END + dt.timedelta(days=1)
API_KEY = f"soak-{uuid.uuid4().hex}"
MB = 1e6
SHARE_KNOWN, SHARE_UNKNOWN = 0.60, 0.05  # the rest: inline features
UNKNOWN_POOL = 200


# ---------------------------------------------------------------------------------------------
# The world: warehouse, features, two registered versions
# ---------------------------------------------------------------------------------------------


@dataclass
class World:
    warehouse_url: str
    tracking_uri: str
    model_name: str
    v1: str
    v2: str
    customer_ids: list[str]
    feature_rows: list[list[float]]


def build_world(warehouse: str, tracking: str, workdir: Path, args: argparse.Namespace) -> World:
    """History, features, v1 as champion and v2 (another C) registered without the alias."""
    from mlflow import MlflowClient

    from creditrisk.features.build import build_for_date
    from creditrisk.model.train import load_config, pinned_config, train
    from tests.warehouse import load_generated

    t0 = time.perf_counter()
    rows = load_generated(warehouse, workdir / "landing", customers=args.customers,
                          days=args.days, end_date=END, seed=args.seed)
    build_for_date(DAY, database_url=warehouse, run_id="bench-soak")
    t1 = time.perf_counter()
    lr = dict(load_config()["ladder"]["logistic_regression"]["params"])
    model_name = f"credit-risk-pd-soak-{uuid.uuid4().hex[:6]}"
    versions = []
    for c in (float(lr["C"]), float(lr["C"]) / 10):
        cfg = pinned_config("logistic_regression", C=c)
        res = train(DAY, database_url=warehouse, tracking_uri=tracking, model_name=model_name,
                    run_id="bench-soak", promote=False, config=cfg)
        versions.append((str(res["version"]), c))
    (v1, c1), (v2, c2) = versions
    MlflowClient(tracking_uri=tracking).set_registered_model_alias(model_name, "champion", v1)
    t2 = time.perf_counter()
    ids, feats = day_features(warehouse, DAY)
    say(f"setup: {rows:,} transactions and features of {len(ids):,} customers as of {DAY} in "
        f"{t1 - t0:.1f} s; {model_name} v{v1} (LR C={c1:g}, champion) and v{v2} "
        f"(LR C={c2:g}, no alias yet) trained and registered in {t2 - t1:.1f} s")
    return World(warehouse, tracking, model_name, v1, v2, ids, feats)


# ---------------------------------------------------------------------------------------------
# The plan: every request's due time and body, fixed before the load starts
# ---------------------------------------------------------------------------------------------


@dataclass
class Plan:
    due: list[float]  # seconds after t0
    bodies: list[bytes]
    kinds: list[str]  # "known", "unknown", "features"
    est_misses: int  # customer_id requests the server's TTL cache cannot answer (estimate)


def make_plan(world: World, args: argparse.Namespace, seconds: float) -> Plan:
    from creditrisk.catalogue import FEATURE_NAMES

    rng = random.Random(args.seed)
    names = list(FEATURE_NAMES)
    unknown = [f"SoakUnknown_{i:04d}" for i in range(UNKNOWN_POOL)]
    n = int(round(args.rate * seconds))
    due, bodies, kinds = [], [], []
    cached_at: dict[str, float] = {}
    misses = 0
    for i in range(n):
        t = i / args.rate
        r = rng.random()
        body: dict[str, Any]
        if r < SHARE_KNOWN + SHARE_UNKNOWN:
            kind = "known" if r < SHARE_KNOWN else "unknown"
            cid = rng.choice(world.customer_ids if kind == "known" else unknown)
            body = {"customer_id": cid}
            # the server caches hits and misses for the TTL from the time it read them
            if t - cached_at.get(cid, -1e9) >= args.cache_ttl:
                cached_at[cid] = t
                misses += 1
        else:
            kind = "features"
            row = rng.choice(world.feature_rows)
            body = {"features": dict(zip(names, row, strict=True))}
        if i % 2:
            body["amount"] = float(rng.randrange(1_000, 60_000, 500))
        due.append(t)
        bodies.append(json.dumps(body).encode())
        kinds.append(kind)
    return Plan(due, bodies, kinds, misses)


# ---------------------------------------------------------------------------------------------
# The load: open loop on a fixed clock, and the sampler
# ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    n: int
    queued: list[float] = field(default_factory=list)  # the scheduler queued it
    sent: list[float] = field(default_factory=list)  # a connection took it
    done: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)  # 0: connection error or timeout
    version: list[str | None] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    swap_at: float | None = None  # the alias moved (set_registered_model_alias returned)
    swap_called: float | None = None

    def __post_init__(self) -> None:
        self.queued = [float("nan")] * self.n
        self.sent = [float("nan")] * self.n
        self.done = [float("nan")] * self.n
        self.status = [0] * self.n
        self.version = [None] * self.n


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response (Content-Length or chunked): (status, body)."""
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
    if not chunked:
        return status, await reader.readexactly(length) if length else b""
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        parts.append((await reader.readexactly(size + 2))[:-2])
        if size == 0:
            return status, b"".join(parts)


async def drive(port: int, plan: Plan, args: argparse.Namespace, world: World, t0: float,
                swap_after: float) -> Outcome:
    """Queue request i at t0 + plan.due[i] (perf_counter clock); move the alias at swap_after.

    ``--connections`` senders, each with one keep-alive connection, take due requests from
    one FIFO queue: when all are busy, requests wait in the queue and the wait is part of
    their latency. Raw HTTP/1.1 on asyncio streams: a first version on ``httpx.AsyncClient``
    used ~60% of a core at ~75 req/s here and fell seconds behind a 200 req/s schedule.
    """
    out = Outcome(len(plan.due))
    head = (f"POST /predict HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Content-Type: application/json\r\nX-API-Key: {API_KEY}\r\n")
    requests = [(head + f"Content-Length: {len(b)}\r\n\r\n").encode() + b for b in plan.bodies]
    queue: asyncio.Queue[int | None] = asyncio.Queue()

    def fail(i: int, key: str) -> None:
        out.failures[key] = out.failures.get(key, 0) + 1
        out.done[i] = time.perf_counter() - t0

    async def sender() -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        last_used = 0.0
        while (i := await queue.get()) is not None:
            out.sent[i] = time.perf_counter() - t0
            # uvicorn closes a connection idle for 5 s: never reuse one idle for 4 s
            if conn is not None and (time.perf_counter() - last_used > 4.0
                                     or conn[0].at_eof()):
                conn[1].close()
                conn = None
            try:
                if conn is None:
                    conn = await asyncio.open_connection(HOST, port)
                conn[1].write(requests[i])
                status, body = await asyncio.wait_for(_read_response(conn[0]), 30.0)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    TimeoutError, ValueError) as exc:
                fail(i, type(exc).__name__)
                if conn is not None:
                    conn[1].close()
                conn = None
                continue
            last_used = time.perf_counter()
            out.status[i] = status
            if status == 200:
                try:
                    out.version[i] = str(json.loads(body)["model_version"])
                except (ValueError, KeyError):
                    out.status[i] = 0
                    fail(i, "unreadable 200 body")
                    continue
            else:
                out.failures[f"HTTP {status}"] = out.failures.get(f"HTTP {status}", 0) + 1
            out.done[i] = time.perf_counter() - t0
        if conn is not None:
            conn[1].close()

    async def swap() -> None:
        from mlflow import MlflowClient

        await asyncio.sleep(max(0.0, t0 + swap_after - time.perf_counter()))
        out.swap_called = time.perf_counter() - t0
        await asyncio.to_thread(MlflowClient(tracking_uri=world.tracking_uri)
                                .set_registered_model_alias, world.model_name, "champion",
                                world.v2)
        out.swap_at = time.perf_counter() - t0

    senders = [asyncio.create_task(sender()) for _ in range(args.connections)]
    swapper = asyncio.create_task(swap())
    for i, due in enumerate(plan.due):
        delay = t0 + due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        out.queued[i] = time.perf_counter() - t0
        queue.put_nowait(i)
    for _ in senders:
        queue.put_nowait(None)
    await asyncio.gather(swapper, *senders)
    return out


Sample = tuple[float, float, float, float]


class Sampler(threading.Thread):
    """Every second from t0: (t, server RSS bytes, server CPU s, this process's CPU s)."""

    def __init__(self, pid: int, t0: float, until: float) -> None:
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.t0, self.until = t0, until
        self.samples: list[Sample] = []

    def run(self) -> None:
        k = 0
        while True:
            target = self.t0 + k
            if target > self.until + 1e-9:
                return
            time.sleep(max(0.0, target - time.perf_counter()))
            cpu = self.proc.cpu_times()
            self.samples.append((time.perf_counter() - self.t0, float(self.proc.memory_info().rss),
                                 cpu.user + cpu.system, time.process_time()))
            k += 1


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, int(q * len(values) + 0.999999) - 1))]


def lsq_growth(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(slope per second, slope x span) of the least-squares line through (t, y)."""
    if len(points) < 2:
        return 0.0, 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((t - mt) ** 2 for t, _ in points)
    sxy = sum((t - mt) * (y - my) for t, y in points)
    slope = sxy / sxx if sxx else 0.0
    return slope, slope * (points[-1][0] - points[0][0])


@dataclass
class PhaseStats:
    name: str
    requests: int
    errors: int
    latencies_ms: list[float]
    achieved_rps: float
    sched_lag: tuple[float, float]  # (ms, due t) of the latest the scheduler queued a request
    conn_wait: tuple[float, float]  # (ms, due t) of the longest wait for a free connection
    slowest: tuple[float, float]  # (ms, due t)
    rss: list[tuple[float, float]]  # (t, MB) after warm-up
    server_cpu: float  # share of one core
    client_cpu: float
    kinds: dict[str, int]

    @property
    def rss_lsq_mb(self) -> float:
        return lsq_growth(self.rss)[1]


def phase_stats(name: str, idx: range, plan: Plan, out: Outcome, samples: list[Sample],
                start: float, end: float, warmup_end: float) -> PhaseStats:
    lat = sorted((out.done[i] - plan.due[i]) * 1000 for i in idx)
    errors = sum(1 for i in idx if out.status[i] != 200)
    last_done = max(out.done[i] for i in idx)
    rss = [(t, r / MB) for t, r, _, _ in samples if max(start, warmup_end) <= t <= end + 0.5]
    inside = [s for s in samples if start - 0.5 <= s[0] <= end + 0.5]
    span = inside[-1][0] - inside[0][0] if len(inside) > 1 else 0.0
    server_cpu = (inside[-1][2] - inside[0][2]) / span if span else float("nan")
    client_cpu = (inside[-1][3] - inside[0][3]) / span if span else float("nan")
    kinds: dict[str, int] = {}
    for i in idx:
        kinds[plan.kinds[i]] = kinds.get(plan.kinds[i], 0) + 1
    return PhaseStats(
        name, len(idx), errors, lat, len(idx) / (last_done - plan.due[idx[0]]),
        max(((out.queued[i] - plan.due[i]) * 1000, plan.due[i]) for i in idx),
        max(((out.sent[i] - out.queued[i]) * 1000, plan.due[i]) for i in idx),
        max(((out.done[i] - plan.due[i]) * 1000, plan.due[i]) for i in idx), rss, server_cpu,
        client_cpu,
        kinds)


def describe(p: PhaseStats, rate: float) -> None:
    lat = p.latencies_ms
    say(f"{p.name}: {p.requests:,} requests ({p.kinds.get('known', 0):,} known customer_id, "
        f"{p.kinds.get('unknown', 0):,} unknown id, {p.kinds.get('features', 0):,} features), "
        f"errors {p.errors}; achieved {p.achieved_rps:.1f} req/s (target {rate:g}); latency "
        f"p50 {pct(lat, 0.50):.2f} ms, p99 {pct(lat, 0.99):.2f} ms, max {lat[-1]:.1f} ms "
        f"(due at t={p.slowest[1]:.1f} s)")
    say(f"  client: the scheduler queued a request at most {p.sched_lag[0]:.1f} ms after its "
        f"due time (t={p.sched_lag[1]:.1f} s; its own event loop's lag); the longest wait for "
        f"a free connection (every connection waiting on a response) {p.conn_wait[0]:.1f} ms "
        f"(t={p.conn_wait[1]:.1f} s)")
    if p.rss:
        first, last = p.rss[0][1], p.rss[-1][1]
        say(f"  server RSS after warm-up: {first:.1f} MB at t={p.rss[0][0]:.0f} s -> "
            f"{last:.1f} MB at t={p.rss[-1][0]:.0f} s ({len(p.rss)} samples, 1/s): end - start "
            f"{last - first:+.2f} MB, least-squares {p.rss_lsq_mb:+.2f} MB over "
            f"{p.rss[-1][0] - p.rss[0][0]:.0f} s; min {min(r for _, r in p.rss):.1f}, "
            f"max {max(r for _, r in p.rss):.1f} MB")
    say(f"  CPU: server {p.server_cpu * 100:.0f}% of one core, client (this process) "
        f"{p.client_cpu * 100:.0f}%")


def swap_report(world: World, plan: Plan, out: Outcome, idx: range, log_text: str,
                reload_interval: float) -> bool:
    """Print when v2 took over; True when the API switched with no v1 answer afterwards."""
    v2_done = [out.done[i] for i in idx if out.version[i] == world.v2]
    counts = {v: sum(1 for i in idx if out.version[i] == v) for v in (world.v1, world.v2)}
    if out.swap_at is None or not v2_done:
        say(f"hot swap: NOT OBSERVED (alias moved at {out.swap_at}; answers by version "
            f"{counts})")
        return False
    first_v2 = min(v2_done)
    late_v1 = sum(1 for i in idx if plan.due[i] > first_v2 and out.version[i] == world.v1)
    last_v1 = max((out.done[i] for i in idx if out.version[i] == world.v1), default=float("nan"))
    loads = re.findall(r'"msg": "loaded model".*?"model_version": "(\w+)".*?"load_s": ([\d.]+)',
                       log_text)
    load_s = next((float(s) for v, s in loads if v == world.v2), float("nan"))
    around = sorted((out.done[i] - plan.due[i]) * 1000 for i in idx
                    if out.swap_at - 1 <= plan.due[i] <= first_v2 + 1)
    say(f"hot swap: alias champion v{world.v1} -> v{world.v2} set at t={out.swap_at:.2f} s "
        f"(call took {(out.swap_at - (out.swap_called or out.swap_at)) * 1000:.0f} ms); first "
        f"v{world.v2} response at t={first_v2:.2f} s ({first_v2 - out.swap_at:.2f} s later; "
        f"reload interval {reload_interval:g} s, server load of v{world.v2} {load_s:.2f} s "
        f"by its log); last v{world.v1} response at t={last_v1:.2f} s; answers by version "
        f"v{world.v1} {counts[world.v1]:,} / v{world.v2} {counts[world.v2]:,}; requests due "
        f"after the first v{world.v2} answer that got v{world.v1}: {late_v1}")
    if around:
        say(f"  requests due from 1 s before the alias move to 1 s after the first v{world.v2} "
            f"answer: {len(around)}, p50 {pct(around, 0.5):.2f} ms, p99 {pct(around, 0.99):.2f} "
            f"ms, max {around[-1]:.1f} ms")
    return late_v1 == 0


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def api_env(world: World, args: argparse.Namespace) -> dict[str, str]:
    return {
        "DATABASE_URL": world.warehouse_url,
        "MLFLOW_TRACKING_URI": world.tracking_uri,
        "CREDITRISK_MODEL_NAME": world.model_name,
        "CREDITRISK_MODEL_ALIAS": "champion",
        "CREDITRISK_API_KEYS": API_KEY,
        "CREDITRISK_ENV": "dev",
        "CREDITRISK_RELOAD_INTERVAL_S": str(args.reload_interval),
        "CREDITRISK_FEATURE_CACHE_TTL_S": str(args.cache_ttl),
        # the default 6,000/min per key would answer 429 to a soak at 200 req/s
        "CREDITRISK_RATE_LIMIT_PER_MINUTE": "1000000000",
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=200.0, help="requests per second (open loop)")
    p.add_argument("--seconds", type=float, default=60.0, help="seconds of load per phase")
    p.add_argument("--warmup", type=float, default=10.0,
                   help="seconds at the start of phase 1 before RSS is sampled")
    p.add_argument("--minutes", type=float, default=None,
                   help="minutes of load in all (both phases): sets --seconds to 30 x this")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 10 s per phase, 3 s warm-up, 500 customers")
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--reload-interval", type=float, default=1.0,
                   help="the API's alias re-check interval, seconds")
    p.add_argument("--cache-ttl", type=float, default=10.0,
                   help="the API's feature cache TTL, seconds")
    p.add_argument("--connections", type=int, default=32,
                   help="keep-alive connections (concurrent requests) of the client")
    args = p.parse_args(argv)
    if args.minutes is not None:
        args.seconds = args.minutes * 60.0 / 2
    if args.quick:
        args.seconds, args.warmup, args.customers = 10.0, 3.0, 500
    if args.warmup >= args.seconds - 2:
        p.error("--warmup must leave at least 2 s of phase 1 for RSS samples")
    return args


def run(args: argparse.Namespace) -> int:
    bin_dir = Path(sys.executable).parent
    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="crbench-soak-"))
        stack.callback(shutil.rmtree, workdir, True)
        os.environ["CREDITRISK_MLFLOW_ARTIFACT_ROOT"] = str(workdir / "mlartifacts")
        started = time.perf_counter()
        admin = stack.enter_context(admin_url())
        warehouse = stack.enter_context(fresh_database(admin, "crbench_wh"))
        tracking = stack.enter_context(fresh_database(admin, "crbench_mlflow", migrated=False))
        world = build_world(warehouse, tracking, workdir, args)
        total = 2 * args.seconds
        plan = make_plan(world, args, total)
        gc.collect()
        gc.freeze()  # the plan's ~10^5 objects: no full collections walking them

        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        port = free_port()
        api = start_server(
            "api", [sys.executable, "-m", "uvicorn", "serving.app:app", "--host", HOST,
                    "--port", str(port), "--workers", "1", "--no-access-log"],
            {**env, **api_env(world, args)}, port, workdir)
        stack.callback(stop_server, api)
        wait_ready([(api, "/ready", {"X-API-Key": API_KEY})])
        import psutil

        children = psutil.Process(api.proc.pid).children(recursive=True)
        status, body = http("POST", f"http://{HOST}:{port}/predict", plan.bodies[0],
                            {"Content-Type": "application/json", "X-API-Key": API_KEY})
        if status != 200 or json.loads(body)["model_version"] != world.v1:
            raise RuntimeError(f"first request: {status} {body[:300]!r}")
        say(f"API: pid {api.proc.pid} ({len(children)} child processes), 1 uvicorn worker, "
            f"reload interval {args.reload_interval:g} s, feature cache TTL {args.cache_ttl:g} s;"
            f" serving v{world.v1}")
        say(f"load: {args.rate:g} req/s open loop for 2 x {args.seconds:g} s "
            f"({len(plan.due):,} requests, planned before the start; about {plan.est_misses:,} "
            f"customer_id requests are cache misses by the TTL), raw HTTP/1.1 client on uvloop in "
            f"this process, {args.connections} keep-alive connections; RSS sampled every 1 s after "
            f"{args.warmup:g} s; alias moves to v{world.v2} at t={1.5 * args.seconds:g} s")

        t0 = time.perf_counter() + 0.2
        sampler = Sampler(api.proc.pid, t0, t0 + total)
        sampler.start()
        out = _run_loop(drive(port, plan, args, world, t0, 1.5 * args.seconds))
        sampler.join()
        load_s = max(out.done) if out.done else 0.0
        alive = api.proc.poll() is None

        n1 = sum(1 for d in plan.due if d < args.seconds)
        phases = [
            phase_stats("phase 1 (steady)", range(0, n1), plan, out, sampler.samples,
                        0.0, args.seconds, args.warmup),
            phase_stats("phase 2 (hot swap)", range(n1, len(plan.due)), plan, out,
                        sampler.samples, args.seconds, total, args.seconds + 0.5),
        ]
        say("")
        for p in phases:
            describe(p, args.rate)
        log_text = api.log.read_text(errors="replace")
        switched = swap_report(world, plan, out, range(n1, len(plan.due)), log_text,
                               args.reload_interval)
        handled = sorted(float(ms) for ms in re.findall(
            r'"msg": "request".*?"route": "/predict".*?"latency_ms": ([\d.]+)', log_text))
        if handled:
            say(f"server-side handling time of /predict (its own request log, both phases, "
                f"{len(handled):,} requests): p50 {pct(handled, 0.5):.2f} ms, p99 "
                f"{pct(handled, 0.99):.2f} ms, max {handled[-1]:.1f} ms; the rest of a "
                "latency is queueing in the client, the kernel and uvicorn")
        if out.failures:
            say(f"failures by kind: {out.failures}")
        say(f"API process {'alive' if alive else 'DIED'} after the load")
    leftovers = group_alive(api.proc.pid)
    everything = sorted((out.done[i] - plan.due[i]) * 1000 for i in range(len(plan.due)))
    errors = sum(p.errors for p in phases)
    rss_all = [pt for p in phases for pt in p.rss]
    slope_s, growth = lsq_growth(rss_all)
    slope_min = slope_s * 60.0
    for p in phases:
        say(f"{p.name}: RSS least-squares slope {lsq_growth(p.rss)[0] * 60.0:+.3f} MB/min")
    say(f"overall: {len(everything):,} requests in {load_s:.1f} s, errors {errors}, p99 "
        f"{pct(everything, 0.99):.2f} ms; RSS least-squares growth over both phases after "
        f"warm-up {growth:+.2f} MB ({rss_all[-1][1] - rss_all[0][1]:+.2f} MB end - start; "
        f"{sampler.samples[0][1] / MB:.1f} MB before any load, {rss_all[-1][1]:.1f} MB at the "
        f"end); "
        f"switched to v{world.v2}: {'yes' if switched else 'NO'}; processes left behind: "
        f"{'api' if leftovers else 'none'}; total {time.perf_counter() - started:.0f} s with setup")
    say(f"seconds={load_s:.1f} requests={len(everything)} errors={errors} "
        f"p99_ms={pct(everything, 0.99):.2f} rss_growth_mb={growth:.2f} "
        f"rss_slope_mb_per_min={slope_min:.3f}")
    return 0 if errors == 0 and switched and alive and not leftovers else 1


def _run_loop(coro: Any) -> Outcome:
    try:
        import uvloop

        result: Outcome = uvloop.run(coro)
    except ImportError:
        result = asyncio.run(coro)
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds the ExitStack: the API and PostgreSQL stop

    signal.signal(signal.SIGTERM, on_term)
    sys.exit(run(args))


if __name__ == "__main__":
    main()
