"""The seed's first pipeline as assets: sensor readings → normalised staging → detected anomalies.

Seed piece → here:

* ``generate_fresh_data.py`` → the ``sensor_data`` asset in ``generator`` mode
  (and ``fraud-assets generate-sensors``), with ``sensor_fault_labels`` as the
  ground truth of the injected faults. In ``table`` mode the asset takes the
  readings already in ``sensor_data`` (devices, the CLI) as they are.
* ``clickhouse_test_dag`` (test_clickhouse_connection → fetch_data →
  validate_data → print_summary) → the ``validate_sensor_data`` checks: they
  connect, fetch the stored partition back and run the seed's validation
  (empty, nulls, physical ranges); the summary is Markdown metadata.
* ``staging_normalized_data`` and ``detected_anomalies`` keep the seed's
  columns; ``dag_id`` is the Dagster job name.

Daily partitions (UTC): at one reading per 5 minutes a day gives every
sensor 288 points, enough for its own noise and baseline statistics, and the
daily cycle is the natural unit to normalise over. Every day of a range is
processed on its own, so a single-run backfill writes exactly what one run per
day would, and rerunning a day replaces its slice (the IO manager deletes the
partition's time window before inserting).
"""

import os
from datetime import UTC, datetime
from typing import Literal

import dagster as dg
import pandas as pd

from fraud_assets.clickhouse import ClickHouseResource, redact_dsn
from fraud_assets.generator.sensors import (
    LABEL_COLUMNS,
    FaultRates,
    SensorFleet,
    generate_sensor_range,
)
from fraud_assets.iot import detection, evaluation, validation
from fraud_assets.iot.queries import (
    connection_report,
    fetch_detections,
    fetch_fault_labels,
    fetch_sensor_data,
)
from fraud_assets.partitions import daily_partitions

GROUP = "iot_sensors"
CLICKHOUSE = "clickhouse_io_manager"
JOB_NAME = "iot_sensor_pipeline"

_daily = {"partitions_def": daily_partitions, "backfill_policy": dg.BackfillPolicy.single_run()}
OWNERS = ["team:fraud-ml"]
_by_time = {"partition_expr": "timestamp"}


class SensorSourceConfig(dg.Config):
    """Where a day's readings come from, and the generator's fleet when it makes them."""

    source: Literal["generator", "table"] = "generator"
    n_sensors: int = 8
    interval_minutes: int = 5
    seed: int = 7
    spike_rate: float = 2.0
    stuck_rate: float = 0.4
    drift_rate: float = 0.3
    dropout_rate: float = 0.4

    def fleet(self) -> SensorFleet:
        rates = FaultRates(self.spike_rate, self.stuck_rate, self.drift_rate, self.dropout_rate)
        return SensorFleet(self.n_sensors, self.interval_minutes, self.seed, rates)


class DetectionConfig(dg.Config):
    """Thresholds of the detectors (see ``fraud_assets.iot.detection``)."""

    stuck_min_repeats: int = 3
    spike_z: float = 10.0
    drift_z: float = 6.0
    drift_min_sensors: int = 4
    dropout_min_missing: int = 2
    iforest_max_alert_rate: float = 0.005
    use_isolation_forest: bool = True

    def params(self) -> detection.DetectionParams:
        return detection.DetectionParams(
            stuck_min_repeats=self.stuck_min_repeats,
            spike_z=self.spike_z,
            drift_z=self.drift_z,
            drift_min_sensors=self.drift_min_sensors,
            dropout_min_missing=self.dropout_min_missing,
            iforest_max_alert_rate=self.iforest_max_alert_rate,
        )


def _days(start: datetime, end: datetime) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    first = pd.Timestamp(start).tz_convert("UTC")
    stop = pd.Timestamp(end).tz_convert("UTC")
    days = pd.date_range(first, stop, freq="D", inclusive="left")
    return [(day, day + pd.Timedelta(days=1)) for day in days]


def _within(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    return frame[(frame["timestamp"] >= start) & (frame["timestamp"] < end)]


@dg.multi_asset(
    outs={
        "sensor_data": dg.AssetOut(
            io_manager_key=CLICKHOUSE,
            group_name=GROUP,
            metadata=_by_time,
            kinds={"clickhouse", "pandas"},
            owners=OWNERS,
            tags={"seed_task": "generate_fresh_data"},
            description="The day's sensor readings (timestamp, sensor_id, temperature °C, "
            "humidity %, pressure hPa).",
        ),
        "sensor_fault_labels": dg.AssetOut(
            io_manager_key=CLICKHOUSE,
            group_name=GROUP,
            metadata=_by_time,
            kinds={"clickhouse", "pandas"},
            owners=OWNERS,
            description="Ground truth: every fault the generator injected into the day, one row "
            "per affected (or missing) reading. Empty for readings from real devices.",
        ),
    },
    **_daily,
)
def sensor_data(
    context: dg.AssetExecutionContext, config: SensorSourceConfig, clickhouse: ClickHouseResource
):
    window = context.partition_time_window
    if config.source == "generator":
        batch = generate_sensor_range(window.start.date(), window.end.date(), config.fleet())
        readings, labels = batch.readings, batch.labels
    else:
        with clickhouse.get_client() as client:
            readings = fetch_sensor_data(client, window.start, window.end)
            labels = fetch_fault_labels(client, window.start, window.end)
    summary = validation.summary_table(readings)
    yield dg.Output(
        readings,
        output_name="sensor_data",
        metadata={
            "dagster/row_count": len(readings),
            "source": config.source,
            "sensors": int(readings["sensor_id"].nunique()),
            "summary": dg.MetadataValue.md(validation.markdown(summary)),
        },
    )
    faults = evaluation.fault_events(labels)["fault_type"].value_counts().to_dict()
    yield dg.Output(
        labels[list(LABEL_COLUMNS)],
        output_name="sensor_fault_labels",
        metadata={
            "dagster/row_count": len(labels),
            **{f"faults/{kind}": int(n) for kind, n in sorted(faults.items())},
        },
    )


_CHECK_SPECS = [
    dg.AssetCheckSpec(
        "clickhouse_connection",
        asset="sensor_data",
        partitions_def=daily_partitions,
        blocking=True,
        description="Seed task test_clickhouse_connection: the server answers and the "
        "pipeline's tables exist.",
    ),
    dg.AssetCheckSpec(
        "not_empty",
        asset="sensor_data",
        partitions_def=daily_partitions,
        blocking=True,
        description="validate_sensor_data: the stored partition has readings.",
    ),
    dg.AssetCheckSpec(
        "no_nulls",
        asset="sensor_data",
        partitions_def=daily_partitions,
        blocking=True,
        description="validate_sensor_data: no NULL or NaN in any column.",
    ),
    dg.AssetCheckSpec(
        "physical_ranges",
        asset="sensor_data",
        partitions_def=daily_partitions,
        description="validate_sensor_data: temperature −40..85 °C, humidity 0..100 %, "
        "pressure 870..1085 hPa. A warning: out-of-range readings are themselves anomalies.",
    ),
]


@dg.multi_asset_check(specs=_CHECK_SPECS, name="validate_sensor_data")
def validate_sensor_data(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource):
    """The seed's test DAG: connect, fetch the stored partition back, validate it."""
    window = context.partition_time_window
    try:
        with clickhouse.get_client() as client:
            report = connection_report(client)
            readings = fetch_sensor_data(client, window.start, window.end)
    except Exception as exc:  # the connection itself is what this check reports on
        error = f"{type(exc).__name__}: {exc}".replace(clickhouse.dsn, clickhouse.display_dsn)
        yield dg.AssetCheckResult(
            check_name="clickhouse_connection",
            passed=False,
            metadata={"dsn": clickhouse.display_dsn, "error": error[:2000]},
        )
        for name in ("not_empty", "no_nulls", "physical_ranges"):
            yield dg.AssetCheckResult(
                check_name=name, passed=False, metadata={"error": "no connection to ClickHouse"}
            )
        return
    yield dg.AssetCheckResult(
        check_name="clickhouse_connection",
        passed=not report["missing_tables"],
        metadata={
            "dsn": redact_dsn(clickhouse.dsn),
            "server_version": report["version"],
            "database": report["database"],
            "latency_ms": report["latency_ms"],
            "missing_tables": ", ".join(report["missing_tables"]) or "none",
        },
    )
    for name, result in validation.validate_sensor_data(readings).items():
        severity = (
            dg.AssetCheckSeverity.WARN if name == "physical_ranges" else dg.AssetCheckSeverity.ERROR
        )
        yield dg.AssetCheckResult(
            check_name=name,
            passed=result.passed,
            severity=severity,
            description=result.description,
            metadata=result.details,
        )


@dg.asset(
    io_manager_key=CLICKHOUSE,
    group_name=GROUP,
    metadata=_by_time,
    kinds={"clickhouse", "pandas"},
    tags={"seed_task": "normalize"},
    owners=OWNERS,
    **_daily,
)
def staging_normalized_data(
    context: dg.AssetExecutionContext, sensor_data: pd.DataFrame
) -> pd.DataFrame:
    """Readings scaled per sensor over their day ((x − median) / IQR), with the run that made them."""
    days = [
        detection.normalise(_within(sensor_data, start, end))
        for start, end in _days(*context.partition_time_window)
    ]
    days = [day for day in days if not day.empty]
    frame = pd.concat(days, ignore_index=True) if days else detection.normalise(sensor_data)
    frame.insert(0, "run_id", context.run_id)
    context.add_output_metadata({"dagster/row_count": len(frame), "run_id": context.run_id})
    return frame


@dg.asset(
    io_manager_key=CLICKHOUSE,
    group_name=GROUP,
    metadata=_by_time,
    kinds={"clickhouse", "pandas", "scikit-learn"},
    tags={"seed_task": "detect_anomalies"},
    owners=OWNERS,
    **_daily,
)
def detected_anomalies(
    context: dg.AssetExecutionContext,
    config: DetectionConfig,
    sensor_data: pd.DataFrame,
    staging_normalized_data: pd.DataFrame,
) -> pd.DataFrame:
    """Stuck, dropout, spike and drift statistics per sensor plus the Isolation Forest, per day.

    One row per (reading, detector that flagged it); ``threshold`` is the
    detector's, ``model_version`` names the detectors and their thresholds.
    """
    params = config.params()
    staging = staging_normalized_data.drop(columns=["run_id", "created_at"], errors="ignore")
    days = []
    for start, end in _days(*context.partition_time_window):
        readings = _within(sensor_data, start, end)
        days.append(
            detection.detect_anomalies(
                readings,
                _within(staging, start, end),
                params,
                window=(start, end),
                use_isolation_forest=config.use_isolation_forest,
            )
        )
    found = pd.concat(days, ignore_index=True) if days else detection.empty_detections()
    found = detection.tidy_detections(found)
    frame = found.assign(
        run_id=context.run_id,
        dag_id=context.job_name,
        execution_time=pd.Timestamp(datetime.now(UTC).replace(microsecond=0)),
        model_version=params.version,
    )
    frame["execution_time"] = frame["execution_time"].astype("datetime64[us, UTC]")
    frame = frame[
        ["run_id", "dag_id", "execution_time", *detection.DETECTION_COLUMNS, "model_version"]
    ]
    counts = found["anomaly_type"].value_counts().to_dict()
    context.add_output_metadata(
        {
            "dagster/row_count": len(frame),
            "readings": len(sensor_data),
            "model_version": params.version,
            **{f"detections/{kind}": int(counts.get(kind, 0)) for kind in detection.ANOMALY_TYPES},
        }
    )
    return frame


@dg.asset_check(
    asset=detected_anomalies,
    partitions_def=daily_partitions,
    description="Recall and precision per injected fault type, against sensor_fault_labels. "
    "Warns when any fault type's event recall drops below 0.8; passes with no labels.",
)
def detection_quality(
    context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource
) -> dg.AssetCheckResult:
    window = context.partition_time_window
    with clickhouse.get_client() as client:
        labels = fetch_fault_labels(client, window.start, window.end)
        found = fetch_detections(client, window.start, window.end)
    if labels.empty:
        return dg.AssetCheckResult(
            passed=True, metadata={"labels": 0, "note": "no injected faults to measure against"}
        )
    quality = evaluation.detection_quality(found, labels)
    weak = quality[quality["events"] > 0]
    weak = weak[weak["event_recall"] < 0.8]["fault_type"].tolist()
    metadata: dict[str, object] = {
        "quality": dg.MetadataValue.md(validation.markdown(quality, digits=3)),
        "by_detector": dg.MetadataValue.md(
            validation.markdown(
                evaluation.detector_recall(found, labels).reset_index(names="detector"), digits=3
            )
        ),
    }
    for row in quality.itertuples():
        for measure in ("event_recall", "row_recall", "precision"):
            value = getattr(row, measure)
            if pd.notna(value):
                metadata[f"{measure}/{row.fault_type}"] = float(value)
    return dg.AssetCheckResult(
        passed=not weak,
        severity=dg.AssetCheckSeverity.WARN,
        description="recall below 0.8 for " + ", ".join(weak) if weak else "all fault types found",
        metadata=metadata,
    )


IOT_ASSETS = [sensor_data, staging_normalized_data, detected_anomalies]

iot_sensor_pipeline = dg.define_asset_job(
    JOB_NAME,
    selection=dg.AssetSelection.groups(GROUP),
    partitions_def=daily_partitions,
    description="The seed's IoT pipeline: readings → validation checks → normalised staging → "
    "detected anomalies, one UTC day per partition.",
)

_automation = os.environ.get("FRAUD_AUTOMATION_DEFAULT", "stopped").lower() == "running"

iot_daily_schedule = dg.build_schedule_from_partitioned_job(
    iot_sensor_pipeline,
    name="iot_sensor_daily",
    hour_of_day=0,
    minute_of_hour=30,
    description="Every day at 00:30 UTC, process the day that just closed.",
    default_status=(
        dg.DefaultScheduleStatus.RUNNING if _automation else dg.DefaultScheduleStatus.STOPPED
    ),
)

defs = dg.Definitions(
    assets=IOT_ASSETS,
    asset_checks=[validate_sensor_data, detection_quality],
    jobs=[iot_sensor_pipeline],
    schedules=[iot_daily_schedule],
)

__all__ = ["defs", "iot_daily_schedule", "iot_sensor_pipeline"]
