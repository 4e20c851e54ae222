"""The docker deployment's services, run for real on loopback.

A throwaway PostgreSQL cluster (Debian's ``postgresql`` package) backs a Dagster
instance loaded from docker/dagster.yaml verbatim: only the DAGSTER_POSTGRES_*
environment differs from the compose file. The user-code gRPC server and the
webserver are started as the compose file starts them, with the workspace
pointing at 127.0.0.1 instead of the ``user_code`` service.
"""

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import dagster as dg
import pytest
import yaml

from fraud_assets.partitions import hourly_partitions
from fraud_assets_tests.postgres_support import (
    PostgresCluster,
    connect,
    free_port,
    run_checked,
)

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
PARTITION = "2025-03-01-05:00"
STARTUP_TIMEOUT_S = 180.0


@pytest.fixture(scope="session")
def postgres_env(postgres_cluster: PostgresCluster) -> dict[str, str]:
    """The DAGSTER_POSTGRES_* variables of a ``dagster`` database on the test server."""
    return postgres_cluster.database("dagster")


@pytest.fixture
def docker_home(tmp_path: Path, postgres_env: dict[str, str]) -> Iterator[Path]:
    """A DAGSTER_HOME holding docker/dagster.yaml unchanged, its env pointing at the test server."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DOCKER / "dagster.yaml", home / "dagster.yaml")
    with mock.patch.dict(os.environ, {**postgres_env, "DAGSTER_HOME": str(home)}):
        yield home


def _scoring_entry_resources(clickhouse_dsn: str, tmp_path: Path) -> dict[str, Any]:
    """The code location's resources, on this test's embedded ClickHouse and scratch folder."""
    from fraud_assets.clickhouse import ClickHouseResource
    from fraud_assets.io import ClickHousePolarsIOManager
    from fraud_assets.io.intermediate import IntermediateFrameIOManager
    from fraud_assets.resources import default_resources

    return {
        **default_resources(),
        "clickhouse": ClickHouseResource(dsn=clickhouse_dsn),
        "polars_io_manager": ClickHousePolarsIOManager(dsn=clickhouse_dsn),
        "intermediate_io_manager": IntermediateFrameIOManager(root=str(tmp_path / "frames")),
    }


def test_partition_materialization_persists_in_postgres(
    docker_home: Path, postgres_env: dict[str, str], clickhouse_dsn: str, tmp_path: Path
) -> None:
    """The scoring graph's first hourly step, run on the docker instance, is recorded in Postgres."""
    from dagster_docker import DockerRunLauncher
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    from fraud_assets.assets.scoring import extract_transactions

    assert extract_transactions.partitions_def == hourly_partitions
    keys = sorted(extract_transactions.keys)
    with dg.DagsterInstance.from_config(str(docker_home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert type(instance.event_log_storage).__name__ == "BatchingPostgresEventLogStorage"
        assert isinstance(instance.run_launcher, DockerRunLauncher)
        assert instance.run_retries_enabled and instance.run_monitoring_enabled
        result = dg.materialize(
            [extract_transactions],
            partition_key=PARTITION,
            instance=instance,
            resources=_scoring_entry_resources(clickhouse_dsn, tmp_path),
            tags={"fraud_assets/partition": PARTITION},
        )
        assert result.success
        run_id = result.run_id

    # A fresh instance, as the webserver or the daemon would open it.
    with dg.DagsterInstance.from_config(str(docker_home)) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition"] == PARTITION
        assert run.tags["fraud_assets/partition"] == PARTITION
        for key in keys:
            event = instance.get_latest_materialization_event(key)
            assert event is not None and event.run_id == run_id
            assert event.asset_materialization.partition == PARTITION
            assert PARTITION in instance.get_materialized_partitions(key)

    connection = connect(postgres_env)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
            assert cursor.fetchall() == [("SUCCESS",)]
            cursor.execute(
                "SELECT asset_key, partition FROM event_logs"
                " WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'"
                " ORDER BY asset_key",
                (run_id,),
            )
            assert cursor.fetchall() == [(key.to_string(), PARTITION) for key in keys]
    finally:
        connection.close()


def test_a_single_run_backfill_records_every_partition_in_batches(
    docker_home: Path, clickhouse_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the compose file's event batching, a range in one run still records each
    hour's materialization of both outputs in Postgres (batches of 4 here, so the six
    hours take several batches and a partial last one)."""
    from fraud_assets.assets.scoring import extract_transactions
    from fraud_assets.postgres_event_storage import BatchingPostgresEventLogStorage

    batches: list[int] = []
    write_batch = BatchingPostgresEventLogStorage.store_event_batch
    monkeypatch.setattr(
        BatchingPostgresEventLogStorage,
        "store_event_batch",
        lambda storage, events: batches.append(len(events)) or write_batch(storage, events),
    )
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    assert int(compose["x-fraud-env"]["DAGSTER_EVENT_BATCH_SIZE"]) > 1
    hours = [f"2025-03-01-{h:02d}:00" for h in range(6)]
    with (
        mock.patch.dict(os.environ, {"DAGSTER_EVENT_BATCH_SIZE": "4"}),
        dg.DagsterInstance.from_config(str(docker_home)) as instance,
    ):
        result = dg.materialize(
            [extract_transactions],
            instance=instance,
            resources=_scoring_entry_resources(clickhouse_dsn, tmp_path),
            tags={
                "dagster/asset_partition_range_start": hours[0],
                "dagster/asset_partition_range_end": hours[-1],
            },
        )
        assert result.success
        assert batches and max(batches) == 4, batches
        for key in extract_transactions.keys:
            records = instance.fetch_materializations(key, limit=100).records
            assert sorted(r.partition_key for r in records if r.run_id == result.run_id) == hours
            assert instance.get_materialized_partitions(key) >= set(hours)


@contextlib.contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A child process in its own group, killed with everything it started at exit."""
    with log.open("w") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


def _wait_for(check, process: subprocess.Popen, log: Path, what: str) -> float:
    """Poll ``check`` until it is true; the seconds it took. Fails on exit or timeout."""
    start = time.monotonic()
    while time.monotonic() - start < STARTUP_TIMEOUT_S:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        if check():
            return time.monotonic() - start
        time.sleep(0.25)
    pytest.fail(f"{what} not ready after {STARTUP_TIMEOUT_S:.0f}s:\n{log.read_text()[-4000:]}")


def _grpc_healthy(port: int) -> bool:
    from dagster._grpc.client import DagsterGrpcClient

    # The client prints the connection error of every probe before the server is up.
    with contextlib.redirect_stdout(io.StringIO()):
        status = DagsterGrpcClient(port=port, host="127.0.0.1").health_check_query()
    return status == "SERVING"


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


_WORKSPACE_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        displayMetadata { key value }
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { repositories { name assetNodes { id } } }
          ... on PythonError { message }
        }
      }
    }
  }
}
"""


def _graphql(port: int, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert "errors" not in body, body["errors"]
    return body["data"]


def _daemons_healthy(instance: dg.DagsterInstance) -> bool:
    from dagster._daemon.controller import all_daemons_healthy

    return all_daemons_healthy(instance, heartbeat_tolerance_seconds=120)


def test_webserver_and_daemon_use_the_code_location_over_grpc(
    docker_home: Path, tmp_path: Path, postgres_env: dict[str, str]
) -> None:
    """The compose file's three Dagster processes, on the Postgres-backed docker instance."""
    from fraud_assets.definitions import defs

    (entry,) = yaml.safe_load((DOCKER / "workspace.yaml").read_text())["load_from"]
    location_name = entry["grpc_server"]["location_name"]
    grpc_port, web_port = free_port(), free_port()
    workspace = tmp_path / "workspace.yaml"
    entry["grpc_server"].update(host="127.0.0.1", port=grpc_port)
    workspace.write_text(yaml.safe_dump({"load_from": [entry]}))

    env = {**os.environ, **postgres_env, "DAGSTER_HOME": str(docker_home)}
    env["DAGSTER_CURRENT_IMAGE"] = "fraud-assets:test"
    env["DAGSTER_DAEMON_HEARTBEAT_TOLERANCE"] = "300"
    bin_dir = Path(sys.executable).parent
    grpc_argv = [
        str(bin_dir / "dagster"),
        *("api", "grpc", "--host", "127.0.0.1", "--port", str(grpc_port)),
        *("--module-name", "fraud_assets.definitions"),
    ]
    web_argv = [
        str(bin_dir / "dagster-webserver"),
        *("--host", "127.0.0.1", "--port", str(web_port), "--workspace", str(workspace)),
    ]
    daemon_argv = [str(bin_dir / "dagster-daemon"), "run", "--workspace", str(workspace)]
    logs = {name: tmp_path / f"{name}.log" for name in ("grpc", "webserver", "daemon")}

    with _process(grpc_argv, env, logs["grpc"]) as grpc_server:
        seconds = _wait_for(
            lambda: _grpc_healthy(grpc_port), grpc_server, logs["grpc"], "gRPC server"
        )
        print(f"gRPC code server healthy after {seconds:.1f}s")
        # The compose healthcheck's command.
        run_checked(
            [str(bin_dir / "dagster"), "api", "grpc-health-check", "--port", str(grpc_port)]
        )

        with (
            _process(web_argv, env, logs["webserver"]) as webserver,
            _process(daemon_argv, env, logs["daemon"]) as daemon,
            dg.DagsterInstance.from_config(str(docker_home)) as instance,
        ):
            url = f"http://127.0.0.1:{web_port}/server_info"
            seconds = _wait_for(lambda: _http_ok(url), webserver, logs["webserver"], "webserver")
            print(f"webserver answering after {seconds:.1f}s")
            data = _graphql(web_port, _WORKSPACE_QUERY)
            seconds = _wait_for(
                lambda: _daemons_healthy(instance), daemon, logs["daemon"], "daemon"
            )
            print(f"daemon heartbeats healthy {seconds:.1f}s later")
            required = set(instance.get_required_daemon_types())
            assert {"QUEUED_RUN_COORDINATOR", "MONITORING", "EVENT_LOG_CONSUMER"} <= required
            # The compose healthcheck's command.
            run_checked([str(bin_dir / "dagster-daemon"), "liveness-check"], env=env)

    workspace_data = data["workspaceOrError"]
    assert workspace_data["__typename"] == "Workspace", workspace_data
    (location,) = workspace_data["locationEntries"]
    assert location["name"] == location_name
    assert location["loadStatus"] == "LOADED"
    loaded = location["locationOrLoadError"]
    assert loaded["__typename"] == "RepositoryLocation", loaded
    metadata = {item["key"]: item["value"] for item in location["displayMetadata"]}
    assert metadata.get("host") == "127.0.0.1" and metadata.get("port") == str(grpc_port)
    (repository,) = loaded["repositories"]
    expected_assets = len(defs.resolve_asset_graph().get_all_asset_keys())
    assert len(repository["assetNodes"]) == expected_assets
