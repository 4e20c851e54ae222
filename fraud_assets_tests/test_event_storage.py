"""Event logs that store a batch at once record what storing it one event at a time does.

For each storage, two single-run backfills of the same six hours, one on
Dagster's own storage and one on ours (the local instance's
``fraud_assets/local_dagster.yaml``, the deployment's ``docker/dagster.yaml``),
leave the same rows in every event log table, and ours took the batch path.
"""

import collections
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import dagster as dg
import pytest
import yaml
from dagster._core.storage.event_log import SqliteEventLogStorage

from fraud_assets.event_storage import (
    BATCH_SIZE_VARIABLE,
    LOCAL_INSTANCE_YAML,
    BatchingSqliteEventLogStorage,
    ensure_local_instance,
)
from fraud_assets_tests.postgres_support import PostgresCluster, connect

REPO = Path(__file__).parents[1]
HOURS = dg.HourlyPartitionsDefinition(start_date="2025-03-01-00:00")
RANGE = [f"2025-03-01-{hour:02d}:00" for hour in range(6)]
SINGLE_RUN = {"partitions_def": HOURS, "backfill_policy": dg.BackfillPolicy.single_run()}
CHECK = ('["scores"]', "sane")
# The run plans 25 events (4 assets × 6 hours, 1 check) and materializes 6 per asset: in
# batches of 7 none is left alone (a batch of one is stored singly, by Dagster's own path).
BATCH = 7


@dg.multi_asset(specs=[dg.AssetSpec("rows"), dg.AssetSpec("rejects")], **SINGLE_RUN)
def rows(context: dg.AssetExecutionContext):
    yield dg.MaterializeResult(
        asset_key="rows", metadata={"hours": len(context.partition_keys)}, tags={"origin": "test"}
    )
    yield dg.MaterializeResult(asset_key="rejects")


@dg.asset(deps=["rows"], check_specs=[dg.AssetCheckSpec("sane", asset="scores")], **SINGLE_RUN)
def scores() -> dg.MaterializeResult:
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=True)])


@dg.asset(deps=["scores"], **SINGLE_RUN)
def alerts() -> None:
    """Fails: what its planned events recorded stays visible (no materialization overwrites it)."""
    raise RuntimeError("alerts fail on purpose")


def _backfill(home: Path, environment: dict[str, str]) -> str:
    """Six hours in one run, on the instance in ``home``, in batches of ``BATCH`` events."""
    environment = {**environment, "DAGSTER_HOME": str(home), BATCH_SIZE_VARIABLE: str(BATCH)}
    with mock.patch.dict(os.environ, environment), dg.DagsterInstance.get() as instance:
        result = dg.materialize(
            [rows, scores, alerts],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": RANGE[0],
                "dagster/asset_partition_range_end": RANGE[-1],
            },
            raise_on_error=False,
        )
        assert [e.step_key for e in result.all_events if e.is_step_failure] == ["alerts"]
        for key in ("rows", "rejects", "scores"):
            assert instance.get_materialized_partitions(dg.AssetKey(key)) == set(RANGE)
        assert not instance.get_materialized_partitions(dg.AssetKey("alerts"))
        return result.run_id


def _recorded(query: Callable[[str], list[tuple]]) -> dict[str, collections.Counter]:
    """The event log tables' rows, without ids, times and run ids."""
    return {
        "events": collections.Counter(
            query("SELECT dagster_event_type, asset_key, partition, step_key FROM event_logs")
        ),
        "asset keys": collections.Counter(
            query(
                "SELECT asset_key, last_materialization IS NOT NULL, "
                "last_materialization_timestamp IS NOT NULL, last_run_id IS NOT NULL "
                "FROM asset_keys"
            )
        ),
        # A data version is a hash over the run: equal counts, not equal values.
        "event tags": collections.Counter(
            query(
                "SELECT asset_key, key, CASE WHEN key = 'dagster/data_version' THEN '' "
                "ELSE value END FROM asset_event_tags"
            )
        ),
        "check executions": collections.Counter(
            query(
                "SELECT asset_key, check_name, partition, execution_status "
                "FROM asset_check_executions"
            )
        ),
    }


def _expected_check_rows() -> collections.Counter:
    # Dagster plans the check for each hour and records one evaluation for the run.
    return collections.Counter(
        {**{(*CHECK, hour, "PLANNED"): 1 for hour in RANGE}, (*CHECK, None, "SUCCEEDED"): 1}
    )


def _recording(cls: type, name: str, calls: list) -> mock._patch:
    """Patch ``cls.name`` to record its event argument(s) and go on."""
    original = getattr(cls, name)

    def record(storage, events):
        calls.append(events)
        return original(storage, events)

    return mock.patch.object(cls, name, record)


# ----------------------------------------------------------------------------- SQLite


def _sqlite_rows(home: Path, run_id: str) -> dict[str, collections.Counter]:
    runs = home / "history" / "runs"

    def query(database: Path) -> Callable[[str], list[tuple]]:
        def run(sql: str) -> list[tuple]:
            with sqlite3.connect(database) as connection:
                return connection.execute(sql).fetchall()

        return run

    index = _recorded(query(runs / "index.db"))
    index["run's own events"] = collections.Counter(
        query(runs / f"{run_id}.db")(
            "SELECT dagster_event_type, asset_key, partition, step_key FROM event_logs"
        )
    )
    return index


def test_the_local_instance_stores_a_batch_as_one_by_one_does(tmp_path: Path) -> None:
    default_home, batched_home = tmp_path / "default", tmp_path / "batched"
    default_home.mkdir()
    assert ensure_local_instance(batched_home).read_text() == LOCAL_INSTANCE_YAML.read_text()

    singly: list = []
    with _recording(SqliteEventLogStorage, "store_event", singly):
        default_run = _backfill(default_home, {})
        by_default = collections.Counter(event.dagster_event_type.value for event in singly)
        singly.clear()
        batches: list = []
        with _recording(BatchingSqliteEventLogStorage, "store_event_batch", batches):
            batched_run = _backfill(batched_home, {})
        when_batched = collections.Counter(event.dagster_event_type.value for event in singly)

    # 4 and 3 assets × 6 hours of planned events and of materializations.
    for kind, count in (("ASSET_MATERIALIZATION_PLANNED", 24), ("ASSET_MATERIALIZATION", 18)):
        assert by_default[kind] == count
        assert when_batched[kind] == 0
    assert max(map(len, batches)) == BATCH and sum(map(len, batches)) >= 24 + 18

    expected = _sqlite_rows(default_home, default_run)
    assert _sqlite_rows(batched_home, batched_run) == expected
    assert expected["check executions"] == _expected_check_rows()


def test_the_local_instance_batches_events_and_runs_one_run_at_a_time(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ensure_local_instance(home)
    (home / "dagster.yaml").write_text(
        (home / "dagster.yaml").read_text() + "# kept: an existing file is not replaced\n"
    )
    assert ensure_local_instance(home).read_text().endswith("not replaced\n")
    with mock.patch.dict(os.environ, {"DAGSTER_HOME": str(home)}):
        os.environ.pop(BATCH_SIZE_VARIABLE, None)
        with dg.DagsterInstance.get() as instance:
            storage = instance.event_log_storage
            assert isinstance(storage, BatchingSqliteEventLogStorage)
            assert int(os.environ[BATCH_SIZE_VARIABLE]) > 1
            assert Path(storage._base_dir) == home / "history" / "runs"
            # Runs take turns on the embedded ClickHouse anyway: the daemon starts one at a time.
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
            assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1


def test_make_dev_writes_the_local_instance_into_dagster_home(tmp_path: Path) -> None:
    """The command the Makefile's dev target runs before `dagster dev`."""
    makefile = (REPO / "Makefile").read_text()
    assert '$(BIN)/python -m fraud_assets.event_storage "$$DAGSTER_HOME"' in makefile
    home = tmp_path / "new home"
    subprocess.run([sys.executable, "-m", "fraud_assets.event_storage", str(home)], check=True)
    assert (home / "dagster.yaml").read_text() == LOCAL_INSTANCE_YAML.read_text()


# ------------------------------------------------------------------------- PostgreSQL


def _postgres_rows(environment: dict[str, str]) -> dict[str, collections.Counter]:
    connection = connect(environment)

    def query(sql: str) -> list[tuple]:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()

    try:
        return _recorded(query)
    finally:
        connection.close()


@pytest.mark.postgres
def test_the_deployment_stores_a_batch_of_planned_events_as_one_by_one_does(
    postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    from dagster_postgres import PostgresEventLogStorage

    from fraud_assets.postgres_event_storage import BatchingPostgresEventLogStorage

    deployment = yaml.safe_load((REPO / "docker" / "dagster.yaml").read_text())
    default_home, batched_home = tmp_path / "default", tmp_path / "batched"
    default_home.mkdir()
    # Dagster's own PostgreSQL storage, on the deployment's database settings.
    database = deployment["run_storage"]["config"]["postgres_db"]
    (default_home / "dagster.yaml").write_text(
        yaml.safe_dump({"storage": {"postgres": {"postgres_db": database}}})
    )
    batched_home.mkdir()
    shutil.copy(REPO / "docker" / "dagster.yaml", batched_home / "dagster.yaml")
    default_db = postgres_cluster.database("events_one_by_one")
    batched_db = postgres_cluster.database("events_batched")

    singly: list = []
    with _recording(PostgresEventLogStorage, "store_event", singly):
        _backfill(default_home, default_db)
        by_default = collections.Counter(event.dagster_event_type.value for event in singly)
        singly.clear()
        batches: list = []
        with _recording(BatchingPostgresEventLogStorage, "store_event_batch", batches):
            _backfill(batched_home, batched_db)
        when_batched = collections.Counter(event.dagster_event_type.value for event in singly)

    # 4 assets × 6 hours and the check planned; materializations are batched either way.
    for kind, count in (
        ("ASSET_MATERIALIZATION_PLANNED", 24),
        ("ASSET_CHECK_EVALUATION_PLANNED", 1),
    ):
        assert by_default[kind] == count
        assert when_batched[kind] == 0
    assert max(map(len, batches)) == BATCH

    expected = _postgres_rows(default_db)
    assert _postgres_rows(batched_db) == expected
    assert expected["check executions"] == _expected_check_rows()
