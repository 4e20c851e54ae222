"""The local instance: its event log stores a batch in one transaction, as one-by-one would.

Two single-run backfills of the same six hours, one on Dagster's default SQLite
storage and one on the instance ``fraud_assets/local_dagster.yaml`` describes,
leave the same rows in the cross-run index and in the run's own database.
"""

import collections
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from unittest import mock

import dagster as dg
from dagster._core.storage.event_log import SqliteEventLogStorage

from fraud_assets.local_event_log import (
    BATCH_SIZE_VARIABLE,
    LOCAL_INSTANCE_YAML,
    BatchingSqliteEventLogStorage,
    ensure_local_instance,
)

HOURS = dg.HourlyPartitionsDefinition(start_date="2025-03-01-00:00")
RANGE = [f"2025-03-01-{hour:02d}:00" for hour in range(6)]
SINGLE_RUN = {"partitions_def": HOURS, "backfill_policy": dg.BackfillPolicy.single_run()}


@dg.multi_asset(specs=[dg.AssetSpec("rows"), dg.AssetSpec("rejects")], **SINGLE_RUN)
def rows(context: dg.AssetExecutionContext):
    yield dg.MaterializeResult(
        asset_key="rows", metadata={"hours": len(context.partition_keys)}, tags={"origin": "test"}
    )
    yield dg.MaterializeResult(asset_key="rejects")


@dg.asset(deps=["rows"], check_specs=[dg.AssetCheckSpec("sane", asset="scores")], **SINGLE_RUN)
def scores() -> dg.MaterializeResult:
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=True)])


def _backfill(home: Path, *, batch_size: str) -> str:
    environment = {"DAGSTER_HOME": str(home), BATCH_SIZE_VARIABLE: batch_size}
    with mock.patch.dict(os.environ, environment), dg.DagsterInstance.get() as instance:
        result = dg.materialize(
            [rows, scores],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": RANGE[0],
                "dagster/asset_partition_range_end": RANGE[-1],
            },
        )
        assert result.success
        for key in ("rows", "rejects", "scores"):
            assert instance.get_materialized_partitions(dg.AssetKey(key)) == set(RANGE)
        return result.run_id


def _rows(database: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(database) as connection:
        return connection.execute(sql).fetchall()


def _recorded(home: Path, run_id: str) -> dict[str, object]:
    """What the two databases hold, without ids, times and the run id."""
    runs = home / "history" / "runs"
    index, run = runs / "index.db", runs / f"{run_id}.db"
    events = "SELECT dagster_event_type, asset_key, partition, step_key FROM event_logs"
    return {
        "index events": collections.Counter(_rows(index, events)),
        "run events": collections.Counter(_rows(run, events)),
        "asset keys": sorted(
            _rows(index, "SELECT asset_key, last_materialization IS NOT NULL FROM asset_keys")
        ),
        # A data version is a hash over the run: equal counts, not equal values.
        "event tags": collections.Counter(
            _rows(
                index,
                "SELECT asset_key, key, iif(key = 'dagster/data_version', '', value) "
                "FROM asset_event_tags",
            )
        ),
        "check executions": collections.Counter(
            _rows(
                index,
                "SELECT asset_key, check_name, partition, execution_status "
                "FROM asset_check_executions",
            )
        ),
    }


def test_a_batched_backfill_records_what_one_by_one_does(tmp_path: Path) -> None:
    one_by_one_home, batched_home = tmp_path / "default", tmp_path / "batched"
    one_by_one_home.mkdir()
    assert ensure_local_instance(batched_home).read_text() == LOCAL_INSTANCE_YAML.read_text()

    stored_singly: list[str] = []
    store_event = SqliteEventLogStorage.store_event

    def recording_store_event(storage, event):
        stored_singly.append(event.dagster_event_type.value if event.dagster_event else "log")
        return store_event(storage, event)

    batches: list[int] = []
    store_event_batch = BatchingSqliteEventLogStorage.store_event_batch

    def recording_store_event_batch(storage, events):
        batches.append(len(events))
        return store_event_batch(storage, events)

    with (
        mock.patch.object(SqliteEventLogStorage, "store_event", recording_store_event),
        mock.patch.object(
            BatchingSqliteEventLogStorage, "store_event_batch", recording_store_event_batch
        ),
    ):
        one_by_one = _backfill(one_by_one_home, batch_size="4")
        singly_by_default = collections.Counter(stored_singly)
        stored_singly.clear()
        batched = _backfill(batched_home, batch_size="4")
        singly_when_batched = collections.Counter(stored_singly)

    # 3 assets × 6 hours of planned events and of materializations, in batches of 4 (and 2).
    assert singly_by_default["ASSET_MATERIALIZATION"] == 18
    assert singly_by_default["ASSET_MATERIALIZATION_PLANNED"] == 18
    assert singly_when_batched["ASSET_MATERIALIZATION"] == 0
    assert singly_when_batched["ASSET_MATERIALIZATION_PLANNED"] == 0
    assert batches and max(batches) == 4 and sum(batches) >= 36, batches

    expected, actual = _recorded(one_by_one_home, one_by_one), _recorded(batched_home, batched)
    assert actual == expected
    # Both took the check's path: planned per hour, one evaluation for the run.
    check = ('["scores"]', "sane")
    assert expected["check executions"] == {
        **{(*check, hour, "PLANNED"): 1 for hour in RANGE},
        (*check, None, "SUCCEEDED"): 1,
    }


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
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    assert '$(BIN)/python -m fraud_assets.local_event_log "$$DAGSTER_HOME"' in makefile
    home = tmp_path / "new home"
    subprocess.run([sys.executable, "-m", "fraud_assets.local_event_log", str(home)], check=True)
    assert (home / "dagster.yaml").read_text() == LOCAL_INSTANCE_YAML.read_text()
