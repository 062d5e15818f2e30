"""The local platform runner behind ``./platform``: up, down, status, test.

``up`` brings the whole stack up on one machine with nothing but Python: an
embedded PostgreSQL (the ``pgserver`` wheel) unless ``DATABASE_URL`` is set, the
warehouse migrations, an MLflow tracking server, and Airflow 3's api-server,
scheduler, dag-processor and triggerer on LocalExecutor. Every process is started
detached, in its own session, with its pid in ``<state>/pids`` and its output in
``<state>/logs``; ``down`` stops exactly those. Running ``up`` twice is harmless:
a service whose pid is alive is left alone.

``PLATFORM_EXECUTOR=CeleryExecutor`` runs the tasks the way a scaled-out deployment
does instead: a Redis broker (``redis-server`` on ``PLATFORM_REDIS_PORT``, unless
``PLATFORM_CELERY_BROKER_URL`` names one), the Celery result backend on Airflow's
metadata database, and ``PLATFORM_CELERY_WORKERS`` workers (``airflow celery worker``,
each with its own ``--celery-hostname``, which is also the hostname its task instances
report). The choice is remembered in the state folder for ``status``.

This module imports no Airflow or MLflow: it only spawns their command lines.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import subprocess  # nosec B404 - the runner starts the platform's own programs
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from creditrisk import progress
from creditrisk.errors import CreditRiskError
from devstack.ops import pipeline_bar
from devstack.postgres import (
    Databases,
    embedded_postgres_pid,
    start_postgres,
    stop_embedded_postgres,
)
from devstack.process import ROOT, http_ok, pid_alive, read_pid, say, stop_group

SEED_CUSTOMERS = 2000
#: the real CustomerId sequence of the public Xente file (see tests/fixtures/README.md)
SEQUENCE = ROOT / "tests" / "fixtures" / "xente_customer_sequence.csv"
SEED_DAYS = 90
EXECUTORS = ("LocalExecutor", "CeleryExecutor")


@dataclass(frozen=True)
class Layout:
    """Where the runner keeps its state, and which ports it serves on."""

    state: Path
    airflow_port: int
    mlflow_port: int
    api_port: int
    executor: str = "LocalExecutor"
    celery_workers: int = 2
    redis_port: int = 6399  # not 6379: a system Redis often holds that one
    external_broker_url: str | None = None

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise CreditRiskError(
                f"PLATFORM_EXECUTOR={self.executor!r}: choose one of {', '.join(EXECUTORS)}"
            )
        if self.celery and self.celery_workers < 1:
            raise CreditRiskError("PLATFORM_CELERY_WORKERS must be at least 1")

    @classmethod
    def from_env(cls) -> Layout:
        state = Path(os.environ.get("PLATFORM_STATE_DIR", ROOT / ".platform")).resolve()
        remembered = state / "executor"
        executor = os.environ.get("PLATFORM_EXECUTOR") or (
            remembered.read_text().strip() if remembered.exists() else "LocalExecutor"
        )
        return cls(
            state=state,
            airflow_port=int(os.environ.get("PLATFORM_AIRFLOW_PORT", "8080")),
            mlflow_port=int(os.environ.get("PLATFORM_MLFLOW_PORT", "5000")),
            api_port=int(os.environ.get("PLATFORM_API_PORT", "8000")),
            executor=executor,
            celery_workers=int(os.environ.get("PLATFORM_CELERY_WORKERS", "2")),
            redis_port=int(os.environ.get("PLATFORM_REDIS_PORT", "6399")),
            external_broker_url=os.environ.get("PLATFORM_CELERY_BROKER_URL") or None,
        )

    @property
    def celery(self) -> bool:
        return self.executor == "CeleryExecutor"

    @property
    def broker_url(self) -> str:
        """The Celery broker: the one named in the environment, else the runner's Redis."""
        return self.external_broker_url or f"redis://127.0.0.1:{self.redis_port}/0"

    def worker_hostnames(self) -> list[str]:
        """One Celery node name per worker: ``worker-<n>@<this host>``."""
        import socket

        host = socket.gethostname()
        return [f"worker-{n}@{host}" for n in range(1, self.celery_workers + 1)]

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pids(self) -> Path:
        return self.state / "pids"

    @property
    def pgdata(self) -> Path:
        return self.state / "pg"

    @property
    def airflow_home(self) -> Path:
        return self.state / "airflow"

    @property
    def secrets_file(self) -> Path:
        return self.state / "secrets.json"

    @property
    def landing(self) -> Path:
        return Path(os.environ.get("CREDITRISK_LANDING_DIR", self.state / "landing")).resolve()

    @property
    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{self.airflow_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


# ----------------------------------------------------------------------------- processes


@dataclass
class Service:
    """One detached process the runner owns."""

    name: str
    argv: list[str]
    health: Callable[[], str | None]
    env: dict[str, str] = field(default_factory=dict)

    def pidfile(self, layout: Layout) -> Path:
        return layout.pids / f"{self.name}.pid"

    def running_pid(self, layout: Layout) -> int | None:
        pid = read_pid(self.pidfile(layout))
        return pid if pid is not None and pid_alive(pid) else None

    def start(self, layout: Layout) -> None:
        pid = self.running_pid(layout)
        if pid is not None:
            say(f"{self.name} already running (pid {pid})")
            return
        log = layout.logs / f"{self.name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(  # nosec B603 - argv built by this module, no shell
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=ROOT,
                start_new_session=True,  # its own process group: down stops its children too
            )
        self.pidfile(layout).write_text(f"{proc.pid}\n")
        say(f"started {self.name} (pid {proc.pid}, log {log})")


def _airflow_health(layout: Layout, component: str) -> Callable[[], str | None]:
    """The api-server's view of ``component`` (scheduler, dag_processor, triggerer)."""

    def check() -> str | None:
        url = f"{layout.airflow_url}/api/v2/monitor/health"
        try:
            with urllib.request.urlopen(url, timeout=3.0) as resp:  # noqa: S310  # nosec B310 - loopback http
                body = json.load(resp)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return f"api-server: {getattr(exc, 'reason', exc)}"
        info = body.get(component)
        status = info.get("status") if isinstance(info, dict) else None
        return None if status == "healthy" else f"{component} {status}"

    return check


def _redis_health(port: int) -> Callable[[], str | None]:
    def check() -> str | None:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", port), timeout=3.0) as sock:
                sock.sendall(b"PING\r\n")
                answer = sock.recv(64)
        except OSError as exc:
            return f"redis: {exc}"
        return None if answer.startswith(b"+PONG") else f"redis answered {answer[:40]!r}"

    return check


def _celery_worker_health(broker_url: str, node: str) -> Callable[[], str | None]:
    """The worker answers a ping broadcast over the broker (what ``celery inspect ping`` does)."""

    def check() -> str | None:
        from celery import Celery  # only here: importing the runner stays light

        app = Celery(broker=broker_url)
        try:
            replies = app.control.ping(destination=[node], timeout=2.0)
        except Exception as exc:  # broker down or unreachable: report, never raise
            return f"{node}: {type(exc).__name__}: {exc}"
        finally:
            app.close()
        return None if any(node in reply for reply in replies) else f"{node}: no pong"

    return check


def worker_hostname() -> str:
    """Airflow ``[core] hostname_callable`` of the runner's Celery workers.

    Several workers on one machine would otherwise all report the machine's FQDN on
    their task instances; each gets its Celery node name instead, so the UI (and the
    REST API) says which worker ran a task.
    """
    import socket

    return os.environ.get("PLATFORM_WORKER_HOSTNAME") or socket.getfqdn()


# ----------------------------------------------------------------------------- postgres


# ----------------------------------------------------------------------------- secrets & env


#: generated once per state dir; the MLflow passwords meet MLflow's 12-character minimum
_SECRETS: dict[str, Callable[[], str]] = {
    "fernet_key": lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    "jwt_secret": lambda: secrets.token_urlsafe(32),
    "api_secret_key": lambda: secrets.token_urlsafe(32),
    "admin_password": lambda: (os.environ.get("PLATFORM_ADMIN_PASSWORD")
                               or secrets.token_urlsafe(12)),
    "api_key": lambda: secrets.token_urlsafe(24),
    "mlflow_admin_password": lambda: secrets.token_urlsafe(18),
    "mlflow_trainer_password": lambda: secrets.token_urlsafe(18),
    "mlflow_reader_password": lambda: secrets.token_urlsafe(18),
    "mlflow_flask_secret_key": lambda: secrets.token_urlsafe(32),
}
MLFLOW_TRAINER, MLFLOW_READER, MLFLOW_ADMIN = "trainer", "reader", "admin"


def load_secrets(layout: Layout) -> dict[str, str]:
    """Generated once per state dir, so every component and every restart agrees.

    A state dir from before a secret existed gets just the missing ones added; the file is
    only ever readable by its owner (0600).
    """
    data: dict[str, str] = {}
    if layout.secrets_file.exists():
        data = json.loads(layout.secrets_file.read_text())
    missing = {name: make() for name, make in _SECRETS.items() if name not in data}
    if missing or not layout.secrets_file.exists():
        data.update(missing)
        _write_private(layout.secrets_file, json.dumps(data, indent=2))
    layout.secrets_file.chmod(0o600)
    return data


def api_warehouse_url(layout: Layout, warehouse: str) -> str:
    """The scoring API's own warehouse URL: a LOGIN user in role ``creditrisk_api``.

    Migration 0008 creates the role (INSERT on decision_log, SELECT on
    customer_features); here its user is created (or its password set again) with a
    password generated once into the secrets file. Only this function's key is added:
    the file's other keys (written by other steps of ``up``) are kept as they are.
    """
    from creditrisk.storage.db import make_engine
    from creditrisk.storage.roles import API_USER, ensure_login, url_for_user

    data = json.loads(layout.secrets_file.read_text()) if layout.secrets_file.exists() else {}
    password = data.get("warehouse_api_password")
    if not password:
        password = secrets.token_urlsafe(24)
        # re-read just before writing: merge into whatever the file holds now
        fresh = (json.loads(layout.secrets_file.read_text())
                 if layout.secrets_file.exists() else {})
        fresh["warehouse_api_password"] = password
        layout.secrets_file.write_text(json.dumps(fresh, indent=2))
        layout.secrets_file.chmod(0o600)
    engine = make_engine(warehouse)
    try:
        ensure_login(engine, API_USER, password)
    finally:
        engine.dispose()
    return url_for_user(warehouse, API_USER, password)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, created 0600 (never readable by others, even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def mlflow_auth_config(folder: Path) -> Path:
    """Write MLflow's basic-auth config into ``folder``: its user store there, READ for all.

    Everyone authenticated may read; only the trainer, which creates the experiment and the
    registered model (:func:`creditrisk.registry.provision`), may write to them. The admin's
    password is not in the file: MLFLOW_AUTH_ADMIN_PASSWORD bootstraps the empty store.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    store = folder / "basic_auth.db"  # the users' password hashes: created private (an
    if not store.exists():  # empty file is an empty SQLite database to MLflow)
        _write_private(store, "")
    store.chmod(0o600)
    ini = folder / "basic_auth.ini"
    _write_private(ini, (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{store}\n"
        f"admin_username = {MLFLOW_ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
        # Checking a password costs a PBKDF2 hash (about 1 s here under load) on every
        # request; a model load makes about ten. A credential that passed is trusted for
        # 60 s: a password changed through the API takes effect at once on this one-worker
        # server, one changed behind its back (the SQLite file) within 60 s.
        "auth_cache_ttl_seconds = 60\n"
    ))
    return ini


def provision_registry(layout: Layout, keys: Mapping[str, str], model_name: str) -> None:
    """Create the trainer and reader users; the trainer owns the experiment and the model."""
    from creditrisk.registry import provision

    try:
        out = provision(layout.mlflow_url, model_name,
                        admin=(MLFLOW_ADMIN, keys["mlflow_admin_password"]),
                        trainer=(MLFLOW_TRAINER, keys["mlflow_trainer_password"]),
                        reader=(MLFLOW_READER, keys["mlflow_reader_password"]))
    except CreditRiskError as exc:
        if " 401 " not in str(exc):
            raise
        store = layout.state / "mlflow" / "basic_auth.db"
        raise CreditRiskError(
            f"{exc}: MLflow's admin in {store} has another password than "
            f"{layout.secrets_file}; restore that file, or ./platform down, delete {store} "
            "and run up again (the users are re-created)") from None
    say(f"MLflow users {out['trainer']} (owns experiment {out['experiment_id']} and model "
        f"{out['model_name']}) and {out['reader']} (read only) provisioned")


def platform_env(layout: Layout, dbs: Databases, keys: dict[str, str],
                 base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every service (and every Airflow task) runs with.

    It starts from ``base`` (the runner's own environment by default) and sets every
    platform, Airflow and MLflow variable the services need on top of it.
    """
    env = dict(os.environ if base is None else base)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    # the Celery workers import devstack.stack.worker_hostname from the checkout
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    passwords = layout.airflow_home / "simple_auth_manager_passwords.json"
    env.update(
        {
            # The project's own settings (creditrisk.config.Settings).
            "DATABASE_URL": dbs.warehouse,
            "MLFLOW_TRACKING_URI": layout.mlflow_url,
            "CREDITRISK_LANDING_DIR": str(layout.landing),
            "CREDITRISK_API_KEYS": keys["api_key"],
            "CREDITRISK_RELOAD_INTERVAL_S": "10",
            # browser URLs for the Airflow plugin's links and nav entries
            "CREDITRISK_MLFLOW_UI_URL": layout.mlflow_url,
            "CREDITRISK_API_DOCS_URL": f"{layout.api_url}/docs",
            # MLflow identities (creditrisk.registry.configure_mlflow picks the role's): every
            # process starts as the reader; training and promotion switch to the trainer.
            "CREDITRISK_MLFLOW_READER_USERNAME": MLFLOW_READER,
            "CREDITRISK_MLFLOW_READER_PASSWORD": keys["mlflow_reader_password"],
            "CREDITRISK_MLFLOW_TRAINER_USERNAME": MLFLOW_TRAINER,
            "CREDITRISK_MLFLOW_TRAINER_PASSWORD": keys["mlflow_trainer_password"],
            "MLFLOW_TRACKING_USERNAME": MLFLOW_READER,
            "MLFLOW_TRACKING_PASSWORD": keys["mlflow_reader_password"],
            # Airflow.
            "AIRFLOW_HOME": str(layout.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__EXECUTOR": layout.executor,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",  # the scheduler forks this many workers
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{layout.airflow_url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": dbs.airflow,
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "AIRFLOW__API__SECRET_KEY": keys["api_secret_key"],
            "AIRFLOW__API__BASE_URL": layout.airflow_url,
            "AIRFLOW__API__PORT": str(layout.airflow_port),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(layout.logs / "airflow"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            # MLflow server: no job runner and its huey workers (~1.4 GB) on a laptop.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
    )
    if layout.celery:
        env.update(
            {
                "AIRFLOW__CELERY__BROKER_URL": layout.broker_url,
                # task states on the metadata database, as Airflow recommends (not Redis)
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + dbs.airflow,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": env.get(
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY", "2"
                ),
            }
        )
    return env


def _without_trainer(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` as the API gets it: the reader's MLflow identity only."""
    return {k: v for k, v in env.items() if not k.startswith("CREDITRISK_MLFLOW_TRAINER_")}


def _mlflow_server_env(layout: Layout, env: Mapping[str, str],
                       keys: Mapping[str, str] | None) -> dict[str, str]:
    """The tracking server's environment: basic auth on, no client identity of its own."""
    out = {k: v for k, v in env.items()
           if not k.startswith(("CREDITRISK_MLFLOW_", "MLFLOW_TRACKING_"))}
    out["MLFLOW_AUTH_CONFIG_PATH"] = str(layout.state / "mlflow" / "basic_auth.ini")
    if keys is not None:
        # the admin's password only bootstraps an empty user store; later starts ignore it
        out["MLFLOW_AUTH_ADMIN_PASSWORD"] = keys["mlflow_admin_password"]
        out["MLFLOW_FLASK_SERVER_SECRET_KEY"] = keys["mlflow_flask_secret_key"]
    return out


def services(layout: Layout, dbs: Databases, env: dict[str, str],
             keys: Mapping[str, str] | None = None,
             api_database_url: str | None = None) -> list[Service]:
    """Every process of the stack, in start order (MLflow first: it is the slowest).

    ``keys`` (the secrets) are needed to start them; ``status`` only probes their health.
    ``api_database_url`` is the scoring API's own warehouse URL (least privilege, see
    :func:`api_warehouse_url`); without it the API gets the environment's.
    """
    bin_dir = Path(sys.executable).parent
    mlflow = Service(
        "mlflow",
        [
            # basic auth (mlflow.server.auth): every request needs a user, default READ
            str(bin_dir / "mlflow"), "server", "--app-name", "basic-auth",
            "--backend-store-uri", dbs.mlflow,
            "--artifacts-destination", str(layout.state / "mlartifacts"),
            "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(layout.mlflow_port),
            "--workers", "1",
        ],
        health=lambda: http_ok(f"{layout.mlflow_url}/health"),
        env=_mlflow_server_env(layout, env, keys),
    )
    airflow = str(bin_dir / "airflow")
    api = Service(
        "airflow-api-server",
        [airflow, "api-server", "--host", "127.0.0.1", "--port", str(layout.airflow_port),
         "--workers", "1"],
        health=lambda: http_ok(f"{layout.airflow_url}/api/v2/version"),
        env=env,
    )
    others = [
        Service(f"airflow-{name}", [airflow, name],
                health=_airflow_health(layout, name.replace("-", "_")), env=env)
        for name in ("scheduler", "dag-processor", "triggerer")
    ]
    scoring_api = Service(
        "api",
        [str(bin_dir / "uvicorn"), "serving.app:app", "--host", "127.0.0.1",
         "--port", str(layout.api_port), "--workers", "1", "--no-access-log"],
        health=lambda: http_ok(f"{layout.api_url}/health"),
        env=({**_without_trainer(env), "DATABASE_URL": api_database_url}
             if api_database_url else _without_trainer(env)),
    )
    return [mlflow, *_celery_services(layout, env, airflow), api, *others, scoring_api]


def _celery_services(layout: Layout, env: dict[str, str], airflow: str) -> list[Service]:
    """The broker (unless an external one is named) and the workers; none on LocalExecutor."""
    if not layout.celery:
        return []
    out: list[Service] = []
    if layout.external_broker_url is None:
        redis_dir = layout.state / "redis"
        out.append(Service(
            "redis",
            ["redis-server", "--port", str(layout.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(redis_dir)],
            health=_redis_health(layout.redis_port),
            env=env,
        ))
    for n, node in enumerate(layout.worker_hostnames(), start=1):
        out.append(Service(
            f"airflow-worker-{n}",
            # Task logs are files on this machine, where the api-server reads them: no
            # log server per worker (they would all want port 8793).
            [airflow, "celery", "worker", "--celery-hostname", node, "--skip-serve-logs"],
            health=_celery_worker_health(layout.broker_url, node),
            env={**env, "PLATFORM_WORKER_HOSTNAME": node,
                 "AIRFLOW__CORE__HOSTNAME_CALLABLE": "devstack.stack.worker_hostname"},
        ))
    return out


# ----------------------------------------------------------------------------- commands


def wait_healthy(services: Sequence[Service], layout: Layout, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = {s.name: s for s in services}
    reasons: dict[str, str] = {}
    while pending and time.monotonic() < deadline:
        for name, svc in list(pending.items()):
            if svc.running_pid(layout) is None:
                log = layout.logs / f"{name}.log"
                raise CreditRiskError(f"{name} exited during start-up: see {log}")
            reason = svc.health()
            if reason is None:
                say(f"{name} is healthy")
                del pending[name]
            else:
                reasons[name] = reason
        if pending:
            time.sleep(1.0)
    if pending:
        detail = "; ".join(f"{n}: {reasons.get(n, '?')}" for n in pending)
        raise CreditRiskError(f"not healthy after {timeout:.0f}s: {detail} (logs in {layout.logs})")


def airflow_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    airflow = str(Path(sys.executable).parent / "airflow")
    return subprocess.run(  # nosec B603 - the venv's own airflow CLI, no shell
        [airflow, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )


def _seed_landing(layout: Layout) -> None:
    """Seed 90 days of history ending yesterday when the landing folder is empty.

    ``PLATFORM_SEED_WORLD``: ``xente`` (default: the real per-customer activity of the
    public file, from the sequence shipped in ``tests/fixtures``), ``synthetic`` (hidden
    trajectories, ``PLATFORM_SEED_CUSTOMERS`` customers) or ``null``.
    """
    landing = layout.landing
    landing.mkdir(parents=True, exist_ok=True)
    if any(landing.iterdir()):
        say(f"landing folder {landing} already holds files: not seeding")
        return
    from creditrisk.landing.simulate import generate_landing

    world = os.environ.get("PLATFORM_SEED_WORLD", "xente")
    customers = (None if world == "xente"
                 else int(os.environ.get("PLATFORM_SEED_CUSTOMERS", SEED_CUSTOMERS)))
    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    summary = generate_landing(
        customers=customers, days=SEED_DAYS, end_date=end, out_dir=landing, seed=42,
        world=world, sequence_path=SEQUENCE if world == "xente" else None,
    )
    say(
        f"seeded {summary.rows} transactions of the {world} world for {summary.customers} "
        f"customers ({summary.first_day} .. {summary.last_day}) into {landing}"
    )


class AirflowAPI:
    """A tiny client of Airflow's REST API (v2), logged in as the runner's admin."""

    def __init__(self, base_url: str, password: str) -> None:
        self.base = base_url
        body = self._call("POST", "/auth/token", {"username": "admin", "password": password})
        self.token = str(body["access_token"])

    def _call(self, method: str, path: str, data: dict[str, object] | None = None,
              token: str | None = None) -> dict[str, object]:
        req = urllib.request.Request(
            self.base + path, method=method,
            data=json.dumps(data).encode() if data is not None else None,
        )
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310  # nosec B310 - loopback http
            result: dict[str, object] = json.load(resp)
            return result

    def call(self, method: str, path: str, data: dict[str, object] | None = None) -> dict:
        return self._call(method, path, data, self.token)

    def wait_for_dag(self, dag_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.call("GET", f"/api/v2/dags/{dag_id}")
                return
            except urllib.error.HTTPError as exc:
                if exc.code != 404 or time.monotonic() > deadline:
                    raise CreditRiskError(f"Airflow does not list DAG {dag_id}") from exc
            time.sleep(2)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        state = "queued"
        while time.monotonic() < deadline:
            run = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
            state = str(run["state"])
            if state in ("success", "failed"):
                return state
            time.sleep(3)
        return state

    def latest_run(self, dag_id: str) -> dict | None:
        runs = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after&limit=1")
        items = runs.get("dag_runs") or []
        return items[0] if isinstance(items, list) and items else None


def _landing_range(landing: Path) -> tuple[dt.date, dt.date] | None:
    from creditrisk.schema import landing_file_date

    days = sorted(d for p in landing.glob("*.csv") if (d := landing_file_date(p)))
    return (days[0], days[-1]) if days else None


def run_pipeline_once(layout: Layout, dbs: Databases, keys: dict[str, str],
                      timeout: float) -> None:
    """One pass through the real scheduler: ingest the landing history, then features.

    Skipped when the warehouse already holds transactions (``up`` run a second time).
    """
    import sqlalchemy as sa

    from creditrisk.storage.db import make_engine

    engine = make_engine(dbs.warehouse)
    try:
        with engine.connect() as conn:
            loaded = conn.execute(sa.text("SELECT count(*) FROM raw_transactions")).scalar_one()
    finally:
        engine.dispose()
    if loaded:
        say(f"warehouse already holds {loaded} transactions: no pipeline pass needed")
        return
    span = _landing_range(layout.landing)
    if span is None:
        say(f"no landing files in {layout.landing}: no pipeline pass")
        return
    api = AirflowAPI(layout.airflow_url, keys["admin_password"])
    progress.stage("ingest_transactions")
    for dag_id in ("ingest_transactions", "build_features"):
        api.wait_for_dag(dag_id, timeout=120)
        api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    conf = {"from_date": span[0].isoformat(), "to_date": span[1].isoformat()}
    run = api.call("POST", "/api/v2/dags/ingest_transactions/dagRuns",
                   {"logical_date": None, "conf": conf})
    run_id = str(run["dag_run_id"])
    say(f"pipeline: triggered ingest_transactions {conf} (run {run_id}); waiting")
    started = time.monotonic()
    state = api.wait_for_run("ingest_transactions", run_id, timeout)
    if state != "success":
        raise CreditRiskError(
            f"ingest_transactions run {run_id} ended {state}: see the Airflow UI "
            f"({layout.airflow_url}) and {layout.logs / 'airflow'}"
        )
    say(f"pipeline: ingest_transactions succeeded in {time.monotonic() - started:.0f}s")
    ingest = api.call("GET", f"/api/v2/dags/ingest_transactions/dagRuns/{quote(run_id, safe='')}")
    # the build that the history's asset event triggered, not an earlier one
    progress.stage("build_features")
    _await_latest_run(api, "build_features", timeout, since=str(ingest["start_date"]))
    # Unpausing train_model starts its last weekly run, which trains on what is loaded.
    # The daily DAGs start no run when unpaused (no start_date, see
    # dags/dag_common/conventions.daily): a run for today could name a day outside the
    # landing folder's range (history that ends in the past). So scoring is triggered
    # for the day after the history ends.
    for dag_id in ("train_model", "score_customers"):
        api.wait_for_dag(dag_id, timeout=120)
        api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    progress.stage("train_model")
    _await_latest_run(api, "train_model", timeout)
    _require_champion(dbs.warehouse)
    progress.stage("score_customers")
    _score_day_after(api, span[1], timeout)


def _score_day_after(api: AirflowAPI, last_day: dt.date, timeout: float) -> None:
    """Score the day after the landing history ends (today, for a seeded folder).

    Today's date would leave every customer of a history that ends in the past
    dormant; the day after the data ends is where the model has something to say.
    """
    day = (last_day + dt.timedelta(days=1)).isoformat()
    run = api.call("POST", "/api/v2/dags/score_customers/dagRuns",
                   {"logical_date": None, "conf": {"date": day}})
    state = api.wait_for_run("score_customers", str(run["dag_run_id"]), timeout)
    if state != "success":
        raise CreditRiskError(f"score_customers for {day} ended {state}: see the Airflow UI")
    say(f"pipeline: score_customers succeeded for {day}, the day after the landing history ends")


def _require_champion(warehouse: str) -> None:
    """Stop with one line naming the gate's failed checks when training left no champion."""
    import sqlalchemy as sa

    from creditrisk.storage.db import make_engine

    engine = make_engine(warehouse)
    try:
        with engine.connect() as conn:
            promoted = conn.execute(sa.text(
                "SELECT count(*) FROM model_promotions WHERE decision IN ('promoted', 'manual')"
            )).scalar_one()
            last = conn.execute(sa.text(
                "SELECT model_version, decision, reasons FROM model_promotions"
                " ORDER BY decided_at DESC LIMIT 1")).first()
    finally:
        engine.dispose()
    if promoted or last is None:
        return
    version, decision, reasons = last
    failed = [r[6:] for r in (reasons or []) if str(r).startswith("FAIL: ")]
    if decision == "recommended":
        raise CreditRiskError(
            f"no champion: the gate passed version {version} in manual mode; promote it "
            f"(creditrisk promote --version {version}, or the MLflow UI), then ./platform up")
    raise CreditRiskError(
        f"no champion: the promotion gate refused version {version}: {'; '.join(failed)}; "
        "next: load more history and retrain, or review it in MLflow and promote it by hand "
        f"(creditrisk promote --version {version})")


def _await_latest_run(
    api: AirflowAPI, dag_id: str, timeout: float, since: str | None = None
) -> None:
    """Wait for the newest run of ``dag_id`` (created at or after ``since``) to finish."""
    started = time.monotonic()
    floor = dt.datetime.fromisoformat(since) if since else None
    while time.monotonic() - started < timeout:
        latest = api.latest_run(dag_id)
        if latest and floor and dt.datetime.fromisoformat(str(latest["run_after"])) < floor:
            latest = None
        if latest and latest.get("state") in ("success", "failed"):
            if latest["state"] != "success":
                raise CreditRiskError(
                    f"{dag_id} run {latest['dag_run_id']} failed: see the Airflow UI and its"
                    " task logs"
                )
            say(f"pipeline: {dag_id} succeeded in {time.monotonic() - started:.0f}s "
                 f"(run {latest['dag_run_id']})")
            return
        time.sleep(3)
    raise CreditRiskError(f"{dag_id} did not finish within {timeout:.0f}s: see the Airflow UI")


def _wait_api_ready(layout: Layout, api_key: str, timeout: float) -> None:
    """Wait until the API serves a model (it follows the champion alias)."""
    deadline = time.monotonic() + timeout
    body: dict[str, object] = {}
    while time.monotonic() < deadline:
        req = urllib.request.Request(f"{layout.api_url}/ready", headers={"X-API-Key": api_key})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310  # nosec B310 - loopback http
                body = json.load(resp)
                say(f"api ready, serving model version {body.get('model_version')}")
                return
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        except (urllib.error.URLError, OSError) as exc:
            body = {"reasons": [str(exc)]}
        time.sleep(2)
    say(f"api not ready yet: {body.get('reasons')} (it follows the champion alias)")


def start_stack(layout: Layout, stack: Sequence[Service], env: dict[str, str],
                keys: dict[str, str]) -> None:
    """Start ``stack`` in order; before any Airflow process, migrate Airflow's database.

    MLflow (when in ``stack``) starts first, since it takes longest to come up; the
    migration runs only when none of the other services is running yet.
    """
    for d in (layout.state, layout.logs, layout.pids, layout.airflow_home):
        d.mkdir(parents=True, exist_ok=True)
    if layout.celery and layout.external_broker_url is None:
        (layout.state / "redis").mkdir(exist_ok=True)
    passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    passwords.write_text(json.dumps({"admin": keys["admin_password"]}))
    passwords.chmod(0o600)

    first = [s for s in stack if s.name == "mlflow"]
    rest = [s for s in stack if s.name != "mlflow"]
    for svc in first:
        svc.start(layout)
    if all(s.running_pid(layout) is None for s in rest):
        result = airflow_cli(env, "db", "migrate")
        if result.returncode != 0:
            (layout.logs / "airflow-db-migrate.log").write_text(result.stdout + result.stderr)
            raise CreditRiskError(
                f"airflow db migrate failed: see {layout.logs / 'airflow-db-migrate.log'}"
            )
        say("Airflow metadata database migrated")
    for svc in rest:
        svc.start(layout)


def up(layout: Layout, timeout: float, *, quiet: bool = False) -> int:
    """Start everything, wait until healthy, print where it all is."""
    started = time.monotonic()
    for d in (layout.state, layout.logs, layout.pids, layout.airflow_home):
        d.mkdir(parents=True, exist_ok=True)
    dbs = start_postgres(layout.pgdata)

    from creditrisk.storage import migrate

    rev = migrate.upgrade(dbs.warehouse)
    say(f"warehouse migrated to {rev}")

    keys = load_secrets(layout)
    api_db = api_warehouse_url(layout, dbs.warehouse)
    say("scoring API connects to the warehouse as creditrisk_api_user (role creditrisk_api)")
    mlflow_auth_config(layout.state / "mlflow")
    env = platform_env(layout, dbs, keys)
    (layout.state / "executor").write_text(layout.executor + "\n")
    stack = services(layout, dbs, env, keys, api_database_url=api_db)
    start_stack(layout, stack, env, keys)

    _seed_landing(layout)
    wait_healthy(stack, layout, timeout)
    say(f"services healthy after {time.monotonic() - started:.0f}s")
    provision_registry(layout, keys, env.get("CREDITRISK_MODEL_NAME", "credit-risk-pd"))
    with pipeline_bar(quiet=quiet):
        run_pipeline_once(layout, dbs, keys, timeout=600)
    _wait_api_ready(layout, keys["api_key"], timeout=60)
    say(f"everything is up in {time.monotonic() - started:.0f}s")
    _print_access(layout, dbs, keys)
    return 0


def _print_access(layout: Layout, dbs: Databases, keys: dict[str, str]) -> None:
    from creditrisk.storage.db import describe_url

    executor = layout.executor
    if layout.celery:
        executor += (f" ({layout.celery_workers} workers: {', '.join(layout.worker_hostnames())};"
                     f" broker {layout.broker_url.split('@')[-1]})")
    print(
        "\n"
        f"  Airflow UI      {layout.airflow_url}   login admin / {keys['admin_password']}\n"
        f"  MLflow UI       {layout.mlflow_url}   login {MLFLOW_ADMIN} / "
        f"{keys.get('mlflow_admin_password', '?')}   (users {MLFLOW_TRAINER}, {MLFLOW_READER}:"
        " secrets.json)\n"
        f"  Scoring API     {layout.api_url}   X-API-Key: {keys.get('api_key', '?')}"
        f"   (docs {layout.api_url}/docs)\n"
        f"  Warehouse       {describe_url(dbs.warehouse)}\n"
        f"  Landing folder  {layout.landing}\n"
        f"  Executor        {executor}\n"
        f"  Logs            {layout.logs}\n"
        f"  Secrets         {layout.secrets_file} (generated; never commit)\n"
        "\n"
        "  ./platform status   health of every service\n"
        "  ./platform down     stop everything this runner started\n",
        flush=True,
    )


def down(layout: Layout) -> int:
    """Stop exactly what ``up`` started: the pid files' process groups, then PostgreSQL."""
    if not layout.pids.exists():
        say("nothing to stop")
    else:
        # Airflow first (it writes to Postgres): the scheduler before the workers it feeds,
        # the broker after them; MLflow after, Postgres last.
        order = ["api", "airflow-scheduler", "airflow-triggerer", "airflow-dag-processor",
                 "airflow-worker", "airflow-api-server", "redis", "mlflow"]

        def rank(pidfile: Path) -> int:
            stem = pidfile.stem.rstrip("0123456789").rstrip("-")
            return order.index(stem) if stem in order else -1

        pidfiles = sorted(layout.pids.glob("*.pid"), key=rank)
        for pidfile in pidfiles:
            pid = read_pid(pidfile)
            if pid is not None:
                stop_group(pidfile.stem, pid)
            pidfile.unlink(missing_ok=True)
    if not os.environ.get("DATABASE_URL"):
        stop_embedded_postgres(layout.pgdata)
    return 0


def status(layout: Layout, *, as_json: bool = False) -> int:
    """Print each service's pid and health (one JSON object with ``as_json``); exit 1 when
    any is down."""
    from devstack.ops import status_json

    dbs = Databases("", "", "", embedded=not os.environ.get("DATABASE_URL"))
    env = dict(os.environ)
    rows: list[dict[str, object]] = []
    if dbs.embedded:
        pg = embedded_postgres_pid(layout.pgdata)
        rows.append({"service": "postgres", "pid": pg, "healthy": pg is not None,
                     "state": f"embedded, {layout.pgdata}" if pg else "stopped"})
    for svc in services(layout, dbs, env):
        pid = svc.running_pid(layout)
        health = svc.health() if pid else "stopped"
        rows.append({"service": svc.name, "pid": pid, "healthy": health is None,
                     "state": "healthy" if health is None else health})
    if as_json:
        print(status_json(rows))
    else:
        for r in rows:
            pid_text = f"pid {r['pid']}" if r["pid"] else "-"
            print(f"  {r['service']!s:22} {pid_text:12} {r['state']}")
    return 0 if all(r["healthy"] for r in rows) else 1


def run_tests(pytest_args: Sequence[str]) -> int:
    """Lint, type-check, check the import contracts, run pytest; stop at the first failure."""
    py = sys.executable
    stages: list[tuple[str, list[str]]] = [
        ("ruff", [py, "-m", "ruff", "check", "."]),
        ("mypy", [py, "-m", "mypy", "include", "serving", "devstack"]),
        ("import-linter", [str(Path(py).parent / "lint-imports"), "--no-cache"]),
        ("pytest", [py, "-m", "pytest", *pytest_args]),
    ]
    for name, argv in stages:
        say(f"{name}: {' '.join(argv[2:] if argv[0] == py else [Path(argv[0]).name, *argv[1:]])}")
        rc = subprocess.call(argv, cwd=ROOT)  # nosec B603 - fixed tool list, no shell
        if rc != 0:
            say(f"{name} failed (exit {rc})")
            return rc
    return 0
