"""The production docker-compose.yml: its shape, read with PyYAML, and its validity, checked by a compose
client when this machine has one (the gpu profile's node included). No Docker engine runs here, so nothing
is started."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"

SERVICES = {"postgres", "redis", "migrate", "web", "worker", "beat", "gpu-worker", "gpu-node"}
ONE_SHOT = {"migrate"}
# Pulled from the public registry; every other service runs the image built from the Dockerfile.
BASE_IMAGES = {"postgres:15", "redis:7"}
APP_SERVICES = {"web", "worker", "gpu-worker"}
# A gpu worker for another machine (profile "gpu"): it reaches the web host's PostgreSQL and Redis at these.
GPU_NODE = "gpu-node"
GPU_NODE_HOSTS = {"ENCLAVE_DB_HOST", "ENCLAVE_REDIS_HOST"}
ARTIFACT_STORE = ("BUCKET", "ENDPOINT_URL", "ACCESS_KEY", "SECRET_KEY", "REGION")
LOOPBACK = {"127.0.0.1", "localhost"}


def _compose() -> dict:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _services() -> dict:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _option(command: list[str], flag: str) -> str:
    assert flag in command, f"{flag} missing from {command}"
    return command[command.index(flag) + 1]


def _strings(node: object) -> list[str]:
    """Every string in a parsed YAML tree, keys included."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in (*_strings(key), *_strings(value))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def _url_hosts(text: str) -> list[str]:
    """The host of every scheme://[user[:password]@]host[:port][/path] in text; a host given as a variable,
    ``${NAME:-default}``, is returned as ``$NAME``."""
    hosts = []
    for after_scheme in text.split("://")[1:]:
        authority = after_scheme.split("/", 1)[0].split("'", 1)[0]
        host = authority.rsplit("@", 1)[-1]
        if host.startswith("${"):
            hosts.append("$" + host[2:].split("}", 1)[0].split(":", 1)[0])
            continue
        hosts.append(host.split(":", 1)[0].strip("}\"' "))
    return hosts


def test_it_defines_the_eight_services() -> None:
    assert set(_services()) == SERVICES


def test_it_reserves_nvidia_gpus_for_the_gpu_worker_and_keeps_it_offline() -> None:
    gpu = _services()["gpu-worker"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]} in devices
    environment = gpu["environment"]
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        assert str(environment[name]) == "1", name
    assert "models:/models:ro" in gpu["volumes"]


def test_it_runs_one_celery_beat_with_its_schedule_in_a_volume() -> None:
    beat = _services()["beat"]
    command = beat["command"]
    assert command[:4] == ["celery", "-A", "enclave", "beat"]
    assert _option(command, "--schedule") == "/data/beat/celerybeat-schedule"
    assert "beat:/data/beat" in beat["volumes"]
    assert "beat" in _compose()["volumes"]
    assert "/data/beat" in (REPO / "Dockerfile").read_text(), "the image makes the volume's directory its user's"


def test_it_shares_the_artifacts_volume_between_web_and_workers() -> None:
    services = _services()
    for name in APP_SERVICES:
        assert "artifacts:/data/artifacts" in services[name]["volumes"], name
    assert {"artifacts", "models"} <= set(_compose()["volumes"])


def test_it_routes_each_worker_to_its_queue() -> None:
    services = _services()
    for name, queue in (("worker", "default"), ("gpu-worker", "gpu"), (GPU_NODE, "gpu")):
        command = services[name]["command"]
        assert command[:4] == ["celery", "-A", "enclave", "worker"], name
        assert _option(command, "-Q") == queue, name
        assert _option(command, "-n") == f"{queue}@%h", name
        # The healthcheck pings this very node, not any worker ($$ is compose's escape for $).
        assert f"-d {queue}@$$HOSTNAME" in " ".join(services[name]["healthcheck"]["test"]), name


def test_it_gives_every_long_running_service_a_healthcheck() -> None:
    for name, service in _services().items():
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            continue
        healthcheck = service.get("healthcheck")
        assert healthcheck, f"{name} has no healthcheck"
        assert not healthcheck.get("disable", False), name
        assert healthcheck["test"][0] in {"CMD", "CMD-SHELL"}, name


def test_it_starts_the_app_after_a_successful_migration() -> None:
    services = _services()
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    for name in APP_SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name
        assert depends_on["redis"]["condition"] == "service_healthy", name


def test_it_references_no_host_outside_the_compose_network() -> None:
    services = _services()
    for name, service in services.items():
        image = service["image"]
        if image in BASE_IMAGES:
            assert "build" not in service, name
            continue
        # A locally built image: a bare name (no registry host) that compose builds and never pulls.
        assert "build" in service, f"{name} uses {image}, neither a base image nor built here"
        assert "/" not in image.split(":", 1)[0], f"{name} names a registry: {image}"
        assert service["pull_policy"] == "build", name
    hosts = {host for text in _strings(_compose()) for host in _url_hosts(text)}
    assert hosts, "no URL found: the host check would prove nothing"
    variables = {f"${name}" for name in GPU_NODE_HOSTS}
    assert hosts <= set(services) | LOOPBACK | variables, f"hosts outside the compose network: {hosts}"
    # Only the gpu node apart names hosts by variable: the web host's PostgreSQL and Redis, as it reaches them.
    elsewhere = {host for name, service in services.items() if name != GPU_NODE for host in _url_hosts(str(service))}
    assert not elsewhere & variables
    assert {host for host in _url_hosts(str(services[GPU_NODE])) if host.startswith("$")} == variables


def test_it_puts_the_gpu_node_apart_in_the_gpu_profile_with_no_disk_of_the_webs() -> None:
    services = _services()
    node = services[GPU_NODE]
    assert node["profiles"] == ["gpu"]
    assert all("profiles" not in service for name, service in services.items() if name != GPU_NODE)
    environment = node["environment"]
    assert environment["GPU_NODE_APART"] == "true"  # refuses to start without PostgreSQL, Redis and the bucket
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        assert str(environment[name]) == "1", name
    # Its own data directory (the jobs' scratch space) and the models; not the web's artifacts volume.
    assert node["volumes"] == ["gpu-scratch:/data", "models:/models:ro"]
    assert "gpu-scratch" in _compose()["volumes"]
    assert "depends_on" not in node  # PostgreSQL and Redis run on the web host
    devices = node["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]} in devices
    # Every app service takes the same S3-compatible artifact store from the environment.
    for name in (*APP_SERVICES, GPU_NODE):
        for key in ARTIFACT_STORE:
            variable = f"ARTIFACT_S3_{key}"
            assert services[name]["environment"][variable] == f"${{{variable}:-}}", (name, variable)


def _compose_client() -> list[str]:
    """The compose command of this machine; skips the test when there is none."""
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    docker = shutil.which("docker")
    if docker:
        plugin = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=60, check=False)
        if plugin.returncode == 0:
            return [docker, "compose"]
    pytest.skip(
        "no compose client on this machine: neither `docker-compose` nor the `docker compose` plugin "
        "is on PATH (apt-get install docker-compose to run this check)"
    )


def _config_quiet(client: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*client, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_it_passes_the_compose_clients_own_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _compose_client()
    monkeypatch.setenv("POSTGRES_PASSWORD", "x")
    monkeypatch.setenv("SECRET_KEY", "y")
    result = _config_quiet(client)
    assert result.returncode == 0, result.stderr


def test_it_renders_the_gpu_node_for_another_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _compose_client()
    values = {
        "POSTGRES_PASSWORD": "x", "SECRET_KEY": "y", "ENCLAVE_DB_HOST": "10.20.0.5", "ENCLAVE_REDIS_HOST": "10.20.0.6",
        "ARTIFACT_S3_BUCKET": "enclave-artifacts", "ARTIFACT_S3_ENDPOINT_URL": "https://s3.bank.internal",
    }  # fmt: skip
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    result = subprocess.run(
        [*client, "-f", str(COMPOSE_FILE), "--profile", "gpu", "config"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    environment = yaml.safe_load(result.stdout)["services"][GPU_NODE]["environment"]
    assert environment["DATABASE_URL"] == "postgres://enclave:x@10.20.0.5:5432/enclave"
    assert environment["REDIS_URL"] == "redis://10.20.0.6:6379/0"
    assert environment["ARTIFACT_S3_BUCKET"] == "enclave-artifacts"
    assert environment["ARTIFACT_S3_ENDPOINT_URL"] == "https://s3.bank.internal"
    assert environment["TRAINING_PROCESSES"] == "0"


def test_it_refuses_to_start_without_the_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _compose_client()
    monkeypatch.delenv("POSTGRES_PASSWORD", raising=False)
    monkeypatch.setenv("SECRET_KEY", "y")
    result = _config_quiet(client)
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD" in result.stdout + result.stderr
