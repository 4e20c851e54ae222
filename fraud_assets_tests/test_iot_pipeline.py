"""The IoT job on the real embedded engine through the ClickHouse IO manager.

Reruns replace a day instead of duplicating it, a single-run backfill writes
what one run per day writes, the seed's validation runs as checks on the
stored partition, and a dead ClickHouse is reported without its password.
"""

from __future__ import annotations

import socket

import dagster as dg
import pandas as pd

from fraud_assets.assets import iot
from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets.io import ClickHousePandasIOManager

SMALL_FLEET = {"n_sensors": 6, "interval_minutes": 10, "seed": 4}
RUN_CONFIG = {"ops": {"sensor_data": {"config": SMALL_FLEET}}}
TABLES = ("sensor_data", "sensor_fault_labels", "staging_normalized_data", "detected_anomalies")
RANGE_TAGS = {
    "dagster/asset_partition_range_start": "2025-03-01",
    "dagster/asset_partition_range_end": "2025-03-02",
}


def _job(clickhouse_dsn: str, clickhouse: ClickHouseResource | None = None) -> dg.JobDefinition:
    defs = dg.Definitions(
        assets=iot.IOT_ASSETS,
        asset_checks=[iot.validate_sensor_data, iot.detection_quality],
        jobs=[iot.iot_sensor_pipeline],
        resources={
            "clickhouse": clickhouse or ClickHouseResource(dsn=clickhouse_dsn),
            "clickhouse_io_manager": ClickHousePandasIOManager(dsn=clickhouse_dsn),
        },
    )
    return defs.resolve_job_def(iot.JOB_NAME)


def _table(clickhouse: ClickHouseResource, table: str) -> pd.DataFrame:
    with clickhouse.get_client() as client:
        frame = client.query_df(f"SELECT * FROM {table}")
    drop = [c for c in ("run_id", "execution_time", "created_at", "detected_at") if c in frame]
    keys = [c for c in ("timestamp", "sensor_id", "anomaly_type", "fault_id") if c in frame]
    return frame.drop(columns=drop).sort_values(keys).reset_index(drop=True)


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_rerunning_a_day_replaces_it_and_checks_pass(clickhouse_dsn, clickhouse) -> None:
    job = _job(clickhouse_dsn)
    instance = dg.DagsterInstance.ephemeral()
    first = job.execute_in_process(RUN_CONFIG, instance=instance, partition_key="2025-03-01")
    before = {table: _table(clickhouse, table) for table in TABLES}
    second = job.execute_in_process(RUN_CONFIG, instance=instance, partition_key="2025-03-01")

    assert first.success and second.success
    assert _checks(second) == {
        "clickhouse_connection": True,
        "not_empty": True,
        "no_nulls": True,
        "physical_ranges": True,
        "detection_quality": True,
    }
    for table in TABLES:
        pd.testing.assert_frame_equal(_table(clickhouse, table), before[table], check_like=True)
    with clickhouse.get_client() as client:
        rows, distinct = client.query(
            "SELECT count(), uniqExact(timestamp, sensor_id) FROM sensor_data"
        ).result_rows[0]
        run_ids = {
            table: {r[0] for r in client.query(f"SELECT DISTINCT run_id FROM {table}").result_rows}
            for table in ("staging_normalized_data", "detected_anomalies")
        }
        dag_ids = client.query("SELECT DISTINCT dag_id FROM detected_anomalies").result_rows
    assert rows == distinct == len(before["sensor_data"]) > 0
    assert run_ids == {t: {second.run_id} for t in run_ids}
    assert dag_ids == [(iot.JOB_NAME,)]

    quality = next(
        e for e in second.get_asset_check_evaluations() if e.check_name == "detection_quality"
    )
    recall = {k: v.value for k, v in quality.metadata.items() if k.startswith("event_recall/")}
    assert recall and min(recall.values()) >= 0.8


def test_single_run_backfill_writes_what_daily_runs_write(clickhouse_dsn, clickhouse) -> None:
    job = _job(clickhouse_dsn)
    instance = dg.DagsterInstance.ephemeral()
    for day in ("2025-03-01", "2025-03-02"):
        assert job.execute_in_process(RUN_CONFIG, instance=instance, partition_key=day).success
    daily = {table: _table(clickhouse, table) for table in TABLES}

    backfill = job.execute_in_process(RUN_CONFIG, instance=instance, tags=RANGE_TAGS)
    assert backfill.success
    with clickhouse.get_client() as client:
        written = client.query(
            "SELECT toDate(timestamp), groupUniqArray(run_id) FROM staging_normalized_data "
            "GROUP BY 1 ORDER BY 1"
        ).result_rows
    assert [runs for _day, runs in written] == [[backfill.run_id]] * 2
    for table in TABLES:
        pd.testing.assert_frame_equal(_table(clickhouse, table), daily[table], check_like=True)
    assert daily["sensor_data"]["timestamp"].dt.date.nunique() == 2


def test_table_source_keeps_readings_loaded_outside_dagster(
    clickhouse_dsn, clickhouse, monkeypatch
) -> None:
    from fraud_assets.cli import main

    monkeypatch.setenv("CLICKHOUSE_URL", clickhouse_dsn)
    assert main(["generate-sensors", "--start", "2025-03-01", "--days", "1", "--sensors", "5"]) == 0
    loaded = _table(clickhouse, "sensor_data")

    config = {"ops": {"sensor_data": {"config": {"source": "table"}}}}
    result = _job(clickhouse_dsn).execute_in_process(config, partition_key="2025-03-01")
    assert result.success
    pd.testing.assert_frame_equal(_table(clickhouse, "sensor_data"), loaded, check_like=True)
    assert len(_table(clickhouse, "detected_anomalies")) > 0
    assert _checks(result)["detection_quality"]


def test_unreachable_clickhouse_fails_the_connection_check_without_the_password(
    clickhouse_dsn,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = ClickHouseResource(dsn=f"http://alerts:s3cret-pw@127.0.0.1:{port}")
    result = _job(clickhouse_dsn, clickhouse=dead).execute_in_process(
        RUN_CONFIG, partition_key="2025-03-01", raise_on_error=False
    )
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    connection = evaluations["clickhouse_connection"]
    assert not connection.passed
    error = connection.metadata["error"].value
    assert "s3cret-pw" not in error and "***" in connection.metadata["dsn"].value
    # The blocking check stops the day before anything is derived from unchecked data.
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert "staging_normalized_data" not in materialized


def test_schedule_targets_the_day_that_just_closed() -> None:
    from fraud_assets.definitions import defs

    schedule = defs.get_repository_def().get_schedule_def("iot_sensor_daily")
    assert schedule.cron_schedule == "30 0 * * *"
    assert schedule.execution_timezone == "UTC"
    context = dg.build_schedule_context(
        scheduled_execution_time=pd.Timestamp("2025-03-02 00:30", tz="UTC").to_pydatetime()
    )
    requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert [r.partition_key for r in requests] == ["2025-03-01"]
