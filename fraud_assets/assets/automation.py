"""Schedules and sensors of the scoring graph.

* ``hourly_scoring_schedule``: at five past every hour, score the hour that
  just closed; skips with a reason while no model bundle is active.
* ``late_transactions_sensor``: re-scores a recent hour when ClickHouse holds
  more of its transactions than were scored or quarantined (late arrivals).
* ``model_promotion_sensor``: when a new bundle reaches production, re-scores
  the closed hours of the current day with it, as one single-run backfill.

All are off by default in a local checkout (so ``dagster dev`` does nothing on
its own) and on by default where FRAUD_AUTOMATION_DEFAULT=running, as in the
docker deployment. Runs carry the tag ``fraud_assets/partition`` so the run
queue can keep two runs of the same hour from writing at once.
"""

import os
from datetime import UTC, datetime, timedelta

import dagster as dg

from fraud_assets import registry
from fraud_assets.assets.scoring import ensemble_anomaly_detection
from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets.partitions import hourly_partitions

PARTITION_TAG = "fraud_assets/partition"
_running = os.environ.get("FRAUD_AUTOMATION_DEFAULT", "stopped").lower() == "running"
_schedule_status = (
    dg.DefaultScheduleStatus.RUNNING if _running else dg.DefaultScheduleStatus.STOPPED
)
_sensor_status = dg.DefaultSensorStatus.RUNNING if _running else dg.DefaultSensorStatus.STOPPED


def hour_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d-%H:00")


def scoring_request(partition_key: str, reason: str, run_key: str | None = None) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        partition_key=partition_key,
        tags={PARTITION_TAG: partition_key, "fraud_assets/reason": reason},
    )


@dg.schedule(
    job=ensemble_anomaly_detection,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=_schedule_status,
    description="Every hour at :05, score the hour that just closed.",
)
def hourly_scoring_schedule(context: dg.ScheduleEvaluationContext, clickhouse: ClickHouseResource):
    scheduled = context.scheduled_execution_time or datetime.now(UTC)
    hour = scheduled.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    with clickhouse.get_client() as client:
        if not registry.active_models(client).get("ensemble"):
            return dg.SkipReason("no active model bundle yet: run train_ensemble_models first")
    key = hour_key(hour)
    return scoring_request(key, "schedule", run_key=key)


_LATE_SQL = """
SELECT hour, arrived, scored FROM (
    SELECT toStartOfHour(timestamp) AS hour, count() AS arrived
    FROM crypto_transactions
    WHERE timestamp >= {since:DateTime('UTC')} AND timestamp < {until:DateTime('UTC')}
    GROUP BY hour
) AS t
INNER JOIN (
    SELECT hour, sum(n) AS scored FROM (
        SELECT toStartOfHour(timestamp) AS hour, count() AS n FROM detected_anomalies_ensemble
        WHERE timestamp >= {since:DateTime('UTC')} AND timestamp < {until:DateTime('UTC')}
        GROUP BY hour
        UNION ALL
        SELECT toStartOfHour(timestamp) AS hour, count() AS n FROM quarantined_transactions
        WHERE timestamp >= {since:DateTime('UTC')} AND timestamp < {until:DateTime('UTC')}
        GROUP BY hour
    ) GROUP BY hour
) AS s USING hour
WHERE arrived > scored
ORDER BY hour
"""


@dg.sensor(
    job=ensemble_anomaly_detection,
    minimum_interval_seconds=300,
    default_status=_sensor_status,
    description="Re-score an already scored hour of the last two days when more of its "
    "transactions have arrived since it was scored.",
)
def late_transactions_sensor(context: dg.SensorEvaluationContext, clickhouse: ClickHouseResource):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with clickhouse.get_client() as client:
        rows = client.query(
            _LATE_SQL, parameters={"since": now - timedelta(days=2), "until": now}
        ).result_rows
    if not rows:
        return dg.SkipReason("every scored hour is complete")
    return [
        scoring_request(
            hour_key(hour), f"late arrivals: {arrived} > {scored}", f"{hour_key(hour)}:{arrived}"
        )
        for hour, arrived, scored in rows
    ]


@dg.asset_sensor(
    asset_key=dg.AssetKey("production_models"),
    job=ensemble_anomaly_detection,
    default_status=_sensor_status,
    description="A newly promoted bundle re-scores today's closed hours in one run.",
)
def model_promotion_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    day_start = now.replace(hour=0)
    if now == day_start:
        return dg.SkipReason("no closed hour today yet")
    first, last = hour_key(day_start), hour_key(now - timedelta(hours=1))
    valid = hourly_partitions.get_partition_keys()
    if first not in valid:
        return dg.SkipReason(f"{first} is outside the hourly partitions")
    version = asset_event.asset_materialization.metadata.get("version")
    return dg.RunRequest(
        run_key=f"promotion:{asset_event.storage_id}",
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
            PARTITION_TAG: f"{first}...{last}",
            "fraud_assets/reason": f"model promoted: {version.value if version else 'unknown'}",
        },
    )


defs = dg.Definitions(
    schedules=[hourly_scoring_schedule],
    sensors=[late_transactions_sensor, model_promotion_sensor],
)
