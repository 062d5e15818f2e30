"""Static checks of the containerised deployment (no Docker engine runs on these machines)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SECRETS = {"POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET",
           "AIRFLOW_API_SECRET_KEY", "AIRFLOW_ADMIN_PASSWORD", "POSTGRES_USER",
           "CREDITRISK_API_KEYS", "REDIS_PASSWORD", "MLFLOW_ADMIN_PASSWORD",
           "MLFLOW_TRAINER_PASSWORD", "MLFLOW_READER_PASSWORD", "MLFLOW_FLASK_SECRET_KEY",
           "CREDITRISK_API_DB_PASSWORD"}
# Every component that runs Airflow (and so must agree on executor, keys and broker).
AIRFLOW_SERVICES = {"airflow-init", "airflow-apiserver", "airflow-scheduler",
                    "airflow-dag-processor", "airflow-triggerer", "airflow-worker"}


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _pinned(name: str) -> str:
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line.split("==")[0].split("[")[0].strip().lower() == name:
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{name} is not pinned in requirements.txt")


def test_compose_parses_and_names_the_services() -> None:
    services = _compose()["services"]
    assert {"postgres", "redis", "mlflow", "api"} | AIRFLOW_SERVICES <= set(services)
    for name, svc in services.items():
        if name != "airflow-init":
            assert "healthcheck" in svc, f"{name} has no healthcheck"
    assert services["airflow-apiserver"]["ports"] == ["8080:8080"]
    # the registry's UI on the host's loopback only (an SSH tunnel or a TLS proxy in front)
    assert services["mlflow"]["ports"] == ["127.0.0.1:5000:5000"]
    assert services["api"]["ports"] == ["8000:8000"]
    assert {"landing", "data-docs", "pgdata", "mlartifacts"} <= set(_compose()["volumes"])


def test_every_secret_is_required_from_env() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    refs = re.findall(r"(?<!\$)\$\{([A-Z_]+)(:[?-][^}]*)?\}", text)  # $${X}: container env
    used = {name for name, _ in refs}
    assert used >= SECRETS
    for name, modifier in refs:
        if name in SECRETS:
            assert modifier.startswith(":?"), f"${{{name}}} must be required (:?), not defaulted"
    # one shared JWT secret and Fernet key for every Airflow component (the anchor)
    assert text.count("AIRFLOW__API_AUTH__JWT_SECRET:") == 1
    assert text.count("AIRFLOW__CORE__FERNET_KEY:") == 1
    for name, svc in _compose()["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|FERNET|API_KEYS", key) and not key.endswith("_FILE"):
                assert str(value).startswith("${"), f"{name}: {key} has a literal value"


def test_env_example_documents_every_variable_compose_reads() -> None:
    names = {ln.split("=")[0] for ln in (REPO / ".env.example").read_text().splitlines()
             if "=" in ln and not ln.startswith("#")}
    assert names >= SECRETS
    text = "\n".join(ln for ln in (REPO / "docker-compose.yml").read_text().splitlines()
                     if not ln.lstrip().startswith("#"))
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", text))
    assert used - names == set(), "document these in .env.example"


def test_every_airflow_component_runs_on_celery_with_the_same_keys() -> None:
    compose = _compose()
    services = compose["services"]
    anchor = compose["x-airflow-common"]["environment"]
    assert "LocalExecutor" not in (REPO / "docker-compose.yml").read_text()
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        # the Fernet key, JWT secret and API secret come from the one anchor, required
        for key, var in (("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW_FERNET_KEY"),
                         ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW_JWT_SECRET"),
                         ("AIRFLOW__API__SECRET_KEY", "AIRFLOW_API_SECRET_KEY"),
                         ("AIRFLOW__CELERY__BROKER_URL", "REDIS_PASSWORD")):
            assert env[key] == anchor[key], f"{name}: {key} differs from the anchor"
            assert f"${{{var}:?" in env[key], f"{name}: {key} must require ${var}"
    # the broker is the redis service, with its password from .env
    broker = anchor["AIRFLOW__CELERY__BROKER_URL"]
    assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD:\?[^}]+\}@redis:6379/\d+", broker), broker
    assert "${REDIS_PASSWORD:?" in str(services["redis"]["environment"]["REDISCLI_AUTH"])
    assert "requirepass" in " ".join(services["redis"]["command"])
    assert "ports" not in services["redis"]
    # task states on the airflow database, not on the broker
    backend = anchor["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert backend.startswith("db+postgresql") and backend.endswith("@postgres:5432/airflow")
    assert anchor["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith(
        "http://airflow-apiserver:8080/")


def test_the_celery_worker_scales_out() -> None:
    worker = _compose()["services"]["airflow-worker"]
    command = worker["command"]
    assert (command.split() if isinstance(command, str) else command) == ["celery", "worker"]
    # `docker compose up --scale airflow-worker=N` needs no fixed name, host or host port
    for key in ("container_name", "hostname", "ports"):
        assert key not in worker, f"airflow-worker must not set {key}: it could not scale"
    probe = " ".join(worker["healthcheck"]["test"])
    assert "inspect ping" in probe and "celery@$${HOSTNAME}" in probe
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"  # warm shutdown
    conditions = {name: dep["condition"] for name, dep in worker["depends_on"].items()}
    assert conditions == {"postgres": "service_healthy", "redis": "service_healthy",
                          "mlflow": "service_healthy", "airflow-apiserver": "service_healthy",
                          "airflow-init": "service_completed_successfully"}
    # the scheduler needs the broker up before it queues anything
    scheduler = _compose()["services"]["airflow-scheduler"]["depends_on"]
    assert scheduler["redis"]["condition"] == "service_healthy"


def test_the_registry_runs_with_basic_auth_and_least_privilege() -> None:
    """MLflow's basic auth; the trainer's password only where training runs, the admin's
    only in the one-shot init that creates the users; the API is the reader."""
    compose = _compose()
    services = compose["services"]
    mlflow = services["mlflow"]
    script = " ".join(mlflow["command"])
    assert "--app-name basic-auth" in script and "--serve-artifacts" in script
    assert "default_permission = READ" in script
    assert mlflow["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith(
        "${MLFLOW_ADMIN_PASSWORD:?")
    assert "mlflow-auth" in compose["volumes"]
    anchor = compose["x-airflow-common"]["environment"]
    assert anchor["MLFLOW_TRACKING_USERNAME"] == "reader"
    assert anchor["CREDITRISK_MLFLOW_TRAINER_PASSWORD"].startswith("${MLFLOW_TRAINER_PASSWORD:?")
    api = services["api"]["environment"]
    assert api["MLFLOW_TRACKING_USERNAME"] == "reader"
    assert api["MLFLOW_TRACKING_PASSWORD"].startswith("${MLFLOW_READER_PASSWORD:?")
    assert not any("TRAINER" in k or "ADMIN" in k for k in api), "the API may only read"
    assert services["api"]["depends_on"]["airflow-init"]["condition"] == \
        "service_completed_successfully"
    init = services["airflow-init"]
    assert "creditrisk registry init" in " ".join(init["command"])
    assert init["environment"]["CREDITRISK_MLFLOW_ADMIN_PASSWORD"].startswith(
        "${MLFLOW_ADMIN_PASSWORD:?")
    assert init["depends_on"]["mlflow"]["condition"] == "service_healthy"
    for name, svc in services.items():
        if name not in {"mlflow", "airflow-init"}:
            env = svc.get("environment") or {}
            assert "CREDITRISK_MLFLOW_ADMIN_PASSWORD" not in env, name
            assert "MLFLOW_AUTH_ADMIN_PASSWORD" not in env, name


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    text = (REPO / dockerfile).read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfiles_end_non_root_and_pin_versions() -> None:
    for name in ("Dockerfile.airflow", "Dockerfile.api"):
        ins = _instructions(name)
        users = [rest for word, rest in ins if word == "USER"]
        assert users and users[-1] not in {"root", "0"}, f"{name} must end as a non-root USER"
        for word, rest in ins:
            if word == "FROM":
                assert ":" in rest.split()[0] and ":latest" not in rest, f"{name}: unpinned {rest}"
    airflow_from = next(r for w, r in _instructions("Dockerfile.airflow") if w == "FROM")
    assert airflow_from.startswith(f"apache/airflow:{_pinned('apache-airflow')}-python3.11")
    assert any(w == "HEALTHCHECK" for w, _ in _instructions("Dockerfile.api"))
    for name in ("Dockerfile.airflow", "Dockerfile.api"):
        assert "-c constraints.txt" in (REPO / name).read_text()


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (REPO / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            pkg, version = line.split("==", 1)
            pins[pkg.split("[")[0].strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_every_pin_agrees_with_the_constraints() -> None:
    constraints = _pins("constraints.txt")
    for req in ("requirements.txt", "requirements-dev.txt", "requirements-serving.txt"):
        for pkg, version in _pins(req).items():
            assert constraints.get(pkg) == version, f"{req}: {pkg}=={version} vs constraints"


def test_the_api_image_installs_only_the_serving_requirements() -> None:
    text = (REPO / "Dockerfile.api").read_text()
    assert "-r requirements-serving.txt -c constraints.txt" in text
    assert "apache-airflow" not in (REPO / "requirements-serving.txt").read_text()
    assert "--no-access-log" in text


def test_hadolint_passes_on_both_dockerfiles() -> None:
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, "Dockerfile.airflow", "Dockerfile.api"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_github_workflow_runs_the_readme_test_command() -> None:
    workflow = yaml.safe_load((REPO / ".github/workflows/ci.yml").read_text())
    steps = [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]
    assert "./platform test" in steps
    assert any("hadolint Dockerfile.airflow Dockerfile.api" in s for s in steps)
    assert any("docker build -f Dockerfile.api" in s for s in steps)
    assert any("docker compose config --quiet" in s for s in steps)


def test_every_copy_source_of_both_dockerfiles_exists() -> None:
    """A missing COPY source fails the image build (plugins/ once did); the runner stays out."""
    checked = 0
    for name in ("Dockerfile.airflow", "Dockerfile.api"):
        for line in (REPO / name).read_text().splitlines():
            words = line.split()
            if not words or words[0].upper() != "COPY" or "--from" in line:
                continue
            sources = [w for w in words[1:-1] if not w.startswith("--")]
            for src in sources:
                assert (REPO / src).exists(), f"{name}: COPY source {src} does not exist"
                assert not src.startswith("devstack"), f"{name} installs the local runner"
                checked += 1
    assert checked >= 8


def test_linux_installs_the_cpu_build_of_xgboost_and_no_cuda() -> None:
    """xgboost-cpu on Linux (same import, same version), xgboost elsewhere: in both
    requirements files, the constraints and the logged model's pip requirements; and the
    environment these files built really holds the CPU build and no NVIDIA wheel."""
    import importlib.metadata as md
    import sys

    from creditrisk.model.train import PIP_REQUIREMENTS

    cpu = 'xgboost-cpu==3.2.0; sys_platform == "linux"'
    other = 'xgboost==3.2.0; sys_platform != "linux"'
    for name in ("requirements.txt", "requirements-serving.txt", "constraints.txt"):
        lines = {ln.strip() for ln in (REPO / name).read_text().splitlines()}
        assert {cpu, other} <= lines, name
        assert not any(ln.startswith(("xgboost==", "nvidia-")) and ";" not in ln
                       for ln in lines), name
    assert {cpu, other} <= set(PIP_REQUIREMENTS)
    installed = {d.metadata["Name"].lower() for d in md.distributions()}
    if sys.platform == "linux":
        assert "xgboost-cpu" in installed and "xgboost" not in installed
        assert not {n for n in installed if n.startswith("nvidia-")}, installed
