"""The docker deployment's files agree with each other and load as what they claim to be.

No Docker engine runs here: the compose file is validated by docker-compose
itself (it parses and interpolates without an engine), dagster.yaml by
Dagster's instance schema and by instantiating its configured classes, and the
names that tie the files together (network, volumes, env vars, image, gRPC
address) are checked across files, because a mismatch there only shows up as a
failed run in production.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.yml"
ENV_EXAMPLE = DOCKER / ".env.example"
INSTANCE_YAML = DOCKER / "dagster.yaml"
WORKSPACE_YAML = DOCKER / "workspace.yaml"
DOCKERFILE = DOCKER / "Dockerfile"

DAGSTER_SERVICES = ("user_code", "webserver", "daemon")


def _docker_compose() -> str:
    path = shutil.which("docker-compose")
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail("docker-compose is missing: .ci/system-deps.sh installs it")
    pytest.skip("docker-compose is not installed (make system-deps installs it)")


def _compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    # A clean environment, so nothing from the caller's shell fills a secret in.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [_docker_compose(), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as docker-compose resolves it with the committed example env file."""
    result = _compose_config(ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def instance_config() -> dict[str, Any]:
    return yaml.safe_load(INSTANCE_YAML.read_text())


def _env_file_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_compose_file_validates_with_the_example_env_file(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "postgres",
        "clickhouse",
        "clickhouse_migrate",
        *DAGSTER_SERVICES,
    }


def test_compose_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = _compose_config(empty)
    assert result.returncode != 0
    assert "PASSWORD" in result.stderr or "CLICKHOUSE_USER" in result.stderr


def test_env_example_holds_placeholders_only() -> None:
    values = _env_file_values(ENV_EXAMPLE)
    secrets = {key: value for key, value in values.items() if "PASSWORD" in key}
    assert values["CLICKHOUSE_PASSWORD"] == values["DAGSTER_POSTGRES_PASSWORD"] == "change-me"
    assert set(secrets.values()) <= {"change-me", ""}, "optional secrets stay empty"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "docker/.env"], cwd=REPO, capture_output=True
    )
    assert ignored.returncode == 0, "docker/.env (real secrets) must be git-ignored"


def test_env_example_defines_every_variable_the_compose_file_reads() -> None:
    lines = [
        line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)", "\n".join(lines)))
    assert referenced - set(_env_file_values(ENV_EXAMPLE)) == set()


def test_services_start_in_dependency_order_on_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "clickhouse", "user_code", "webserver", "daemon"):
        assert "healthcheck" in services[name], name
    assert services["clickhouse_migrate"]["depends_on"]["clickhouse"] == {
        "condition": "service_healthy"
    }
    assert services["user_code"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "clickhouse_migrate": {"condition": "service_completed_successfully"},
    }
    for name in ("webserver", "daemon"):
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "user_code": {"condition": "service_healthy"},
        }


def test_clickhouse_is_the_official_image_on_a_pinned_release(compose: dict[str, Any]) -> None:
    image = compose["services"]["clickhouse"]["image"]
    match = re.fullmatch(r"clickhouse/clickhouse-server:(\d+)\.(\d+)(\.[\d.]+)?", image)
    assert match, image
    assert int(match.group(1)) >= 24


def test_run_containers_get_what_the_code_needs(
    compose: dict[str, Any], instance_config: dict[str, Any]
) -> None:
    """The launcher forwards env vars from the daemon, attaches the compose network and volumes."""
    launcher = instance_config["run_launcher"]["config"]
    services = compose["services"]

    for name in DAGSTER_SERVICES:
        missing = set(launcher["env_vars"]) - set(services[name]["environment"])
        assert not missing, f"{name} lacks {missing}: launching a run would fail"
    code_env = yaml.safe_load(COMPOSE_FILE.read_text())["x-fraud-env"]
    assert set(launcher["env_vars"]) == set(code_env), "runs see what the code location sees"

    networks = {spec.get("name") for spec in compose["networks"].values()}
    assert launcher["network"] in networks

    named_volumes = {spec.get("name"): key for key, spec in compose["volumes"].items()}
    run_mounts = dict(volume.split(":")[:2] for volume in launcher["container_kwargs"]["volumes"])
    assert set(run_mounts) <= set(named_volumes)

    model_dir = services["user_code"]["environment"]["FRAUD_MODEL_DIR"]
    assert run_mounts["fraud_models"] == model_dir
    assert f"fraud_models:{model_dir}:rw" in services["user_code"]["volumes"]
    data_dir = services["user_code"]["environment"]["FRAUD_DATA_DIR"]
    assert run_mounts["fraud_data"] == data_dir
    assert f"fraud_data:{data_dir}:rw" in services["user_code"]["volumes"]
    storage_mount = run_mounts["fraud_dagster_storage"]
    for name in ("webserver", "daemon"):
        assert f"fraud_dagster_storage:{storage_mount}:rw" in services[name]["volumes"]
        assert any(v.startswith("/var/run/docker.sock:") for v in services[name]["volumes"])


def test_runs_use_the_code_location_image(compose: dict[str, Any]) -> None:
    user_code = compose["services"]["user_code"]
    assert user_code["environment"]["DAGSTER_CURRENT_IMAGE"] == user_code["image"]
    images = {compose["services"][name]["image"] for name in (*DAGSTER_SERVICES,)}
    assert images == {user_code["image"]}


def test_workspace_points_at_the_user_code_service(compose: dict[str, Any]) -> None:
    (entry,) = yaml.safe_load(WORKSPACE_YAML.read_text())["load_from"]
    server = entry["grpc_server"]
    assert server["host"] in compose["services"]
    command = compose["services"][server["host"]]["command"]
    assert command[:3] == ["dagster", "api", "grpc"]
    assert command[command.index("--port") + 1] == str(server["port"])
    assert command[command.index("--host") + 1] == "0.0.0.0"
    for name in ("webserver", "daemon"):
        workspace_arg = compose["services"][name]["command"]
        assert "/opt/dagster/app/workspace.yaml" in workspace_arg


def test_clickhouse_url_reaches_the_clickhouse_service(compose: dict[str, Any]) -> None:
    env = compose["services"]["user_code"]["environment"]
    ch = compose["services"]["clickhouse"]["environment"]
    assert env["CLICKHOUSE_URL"] == (
        f"http://{ch['CLICKHOUSE_USER']}:{ch['CLICKHOUSE_PASSWORD']}@clickhouse:8123"
    )
    assert env["CLICKHOUSE_DATABASE"] == ch["CLICKHOUSE_DB"]
    pg = compose["services"]["postgres"]["environment"]
    assert env["DAGSTER_POSTGRES_HOST"] == "postgres"
    assert env["DAGSTER_POSTGRES_PASSWORD"] == pg["POSTGRES_PASSWORD"]
    assert env["DAGSTER_POSTGRES_USER"] == pg["POSTGRES_USER"]
    assert env["DAGSTER_POSTGRES_DB"] == pg["POSTGRES_DB"]


def test_dagster_yaml_is_a_valid_instance_config(tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    shutil.copy(INSTANCE_YAML, tmp_path / "dagster.yaml")
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    storages = {
        key: config[key] for key in ("run_storage", "event_log_storage", "schedule_storage")
    }
    assert {key: spec["class"] for key, spec in storages.items()} == {
        "run_storage": "PostgresRunStorage",
        "event_log_storage": "BatchingPostgresEventLogStorage",
        "schedule_storage": "PostgresScheduleStorage",
    }
    # One database for all three (a YAML anchor), as Dagster's `storage: postgres` would use.
    databases = [spec["config"]["postgres_db"] for spec in storages.values()]
    assert databases[0]["db_name"] == {"env": "DAGSTER_POSTGRES_DB"}
    assert databases[1:] == databases[:1] * 2
    assert config["run_retries"]["enabled"] and config["run_retries"]["max_retries"] > 0
    assert config["run_monitoring"]["enabled"]


@pytest.mark.parametrize("section", ["run_launcher", "run_coordinator", "scheduler"])
def test_dagster_yaml_classes_load_from_their_config(
    instance_config: dict[str, Any], section: str
) -> None:
    """Each configured class validates its own config section and is built from it."""
    from dagster._serdes.config_class import ConfigurableClassData

    spec = instance_config[section]
    data = ConfigurableClassData(
        spec["module"], spec["class"], yaml.safe_dump(spec.get("config") or {})
    )
    loaded = data.rehydrate(as_type=object)
    assert type(loaded).__name__ == spec["class"]


def test_one_run_per_partition_is_in_progress(instance_config: dict[str, Any]) -> None:
    """Dagster's own queue logic, fed the configured limits, holds back a second run of an hour."""
    import dagster as dg
    from dagster._utils.tags import TagConcurrencyLimitsCounter

    limits = instance_config["concurrency"]["runs"]["tag_concurrency_limits"]

    def run(**tags: str) -> dg.DagsterRun:
        return dg.DagsterRun(job_name="hourly_scoring", tags=tags)

    for key in ("dagster/partition", "fraud_assets/partition"):
        counter = TagConcurrencyLimitsCounter(limits, [run(**{key: "2025-03-01-05:00"})])
        assert counter.is_blocked(run(**{key: "2025-03-01-05:00"}))
        assert not counter.is_blocked(run(**{key: "2025-03-01-06:00"}))
        assert not counter.is_blocked(run())


def test_image_runs_as_non_root_with_the_deployment_paths(compose: dict[str, Any]) -> None:
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert "uv pip install -r pyproject.toml" in dockerfile
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1] not in {"root", "0"}
    env = dict(re.findall(r"\b([A-Z_]+)=(/\S+)", dockerfile))
    model_dir = compose["services"]["user_code"]["environment"]["FRAUD_MODEL_DIR"]
    assert env["FRAUD_MODEL_DIR"] == model_dir
    assert (
        env["FRAUD_DATA_DIR"] == compose["services"]["user_code"]["environment"]["FRAUD_DATA_DIR"]
    )
    assert f"COPY sql {env['FRAUD_SQL_DIR']}" in dockerfile
    assert f"docker/dagster.yaml {env['DAGSTER_HOME']}/dagster.yaml" in dockerfile
    storage = dict(
        v.split(":")[:2]
        for v in yaml.safe_load(INSTANCE_YAML.read_text())["run_launcher"]["config"][
            "container_kwargs"
        ]["volumes"]
    )["fraud_dagster_storage"]
    assert storage == f"{env['DAGSTER_HOME']}/storage"


def test_build_context_allowlist_covers_every_copied_path() -> None:
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = set()
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            sources = [part for part in line.split()[1:-1] if not part.startswith("--")]
            copied.update(source.rstrip("/") for source in sources)
    assert copied == allowed
    for path in copied:
        if path != "README.md":  # written alongside, present in any full checkout
            assert (REPO / path).exists(), path


def test_definitions_load_without_tensorflow() -> None:
    """Code-location load (gRPC server, every run container) must not pay for TensorFlow."""
    probe = (
        "import json, sys, time\n"
        "start = time.perf_counter()\n"
        "from fraud_assets.definitions import defs\n"
        "defs.get_repository_def()\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'tensorflow', 'keras'})\n"
        "print(json.dumps({'seconds': time.perf_counter() - start, 'heavy': heavy[:5]}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], f"TensorFlow imported at load: {report['heavy']}"


def test_readme_documents_the_deployment() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Production deployment (Docker)", 1)[1].split("\n## ", 1)[0]
    compose_text = COMPOSE_FILE.read_text()
    x_env = yaml.safe_load(compose_text)["x-fraud-env"]
    for name in [*x_env, "DAGSTER_HOME", "DAGSTER_CURRENT_IMAGE", "fraud_assets/partition"]:
        assert name in section, name
    assert "docker compose -f docker/docker-compose.yml --env-file docker/.env up" in section
