"""Through the webserver's GraphQL API, as the UI drives it: runs, backfills, schedules, sensors.

ClickHouse is read from the test process only after the runs involved have
finished (the embedded engine is shared by waiting on its file lock).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from fraud_assets_tests.e2e.harness import (
    IN_PROCESS,
    SCORING_ASSETS,
    System,
    clickhouse_client,
    expect_type,
    hour_counts,
    hour_key,
    repository_selector,
    wait_for,
)

pytestmark = pytest.mark.e2e

_INSTIGATION_STATE = "scheduleState { id status }"
_TICKS = """ticks(limit: 10) { tickId status timestamp runIds runKeys skipReason
                                error { message } }"""


def test_server_runs_every_daemon_and_the_seeded_bundle_is_active(system: System):
    statuses = system.daemon_statuses()
    for daemon in ("SCHEDULER", "SENSOR", "BACKFILL", "QUEUED_RUN_COORDINATOR"):
        assert statuses.get(daemon), f"{daemon} daemon not healthy: {statuses}"
    data = system.graphql(
        """query($key: AssetKeyInput!) { assetOrError(assetKey: $key) { __typename ... on Asset {
            assetMaterializations(limit: 1) { runId metadataEntries { label
                ... on TextMetadataEntry { text } } } } } }""",
        key={"path": ["production_models"]},
    )
    materializations = expect_type(data["assetOrError"], "Asset")["assetMaterializations"]
    assert materializations, "production_models was never materialized by the seed training run"
    assert materializations[0]["runId"] == system.seed_result["run_id"]


def test_every_asset_has_a_group_description_owner_and_kind(system: System):
    data = system.graphql(
        """{ assetNodes { assetKey { path } groupName description kinds
            owners { __typename } } }"""
    )
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    groups = {n["groupName"] for n in nodes.values()}
    assert {"ingestion", "features", "models", "scoring", "reporting", "training"} <= groups
    incomplete = {
        key: [field for field in ("description", "owners", "kinds") if not node[field]]
        for key, node in nodes.items()
        if not (node["description"] and node["owners"] and node["kinds"])
    }
    assert not incomplete, f"assets the catalog shows without: {incomplete}"


def test_hourly_schedule_turns_on_and_its_tick_scores_the_hour_that_just_closed(system: System):
    selector = {**repository_selector(), "scheduleName": "hourly_scoring_schedule"}
    started = system.graphql(
        f"""mutation($s: ScheduleSelector!) {{ startSchedule(scheduleSelector: $s) {{
            __typename ... on ScheduleStateResult {{ {_INSTIGATION_STATE} }}
            ... on PythonError {{ message }} }} }}""",
        s=selector,
    )["startSchedule"]
    state = expect_type(started, "ScheduleStateResult")["scheduleState"]
    assert state["status"] == "RUNNING"
    try:
        schedule = system.graphql(
            """query($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) {
                __typename ... on Schedule { cronSchedule scheduleState { status }
                futureTicks(limit: 1) { results { timestamp } } } } }""",
            s=selector,
        )["scheduleOrError"]
        schedule = expect_type(schedule, "Schedule")
        assert schedule["scheduleState"]["status"] == "RUNNING"
        next_tick = schedule["futureTicks"]["results"][0]["timestamp"]
        assert int(next_tick) % 3600 == 5 * 60, "the schedule ticks at five past the hour"

        # The tick at :05 of the current hour, evaluated by the code server with the real
        # resources (the UI's "Test schedule"); it must ask for the hour that just closed.
        dry_run = system.graphql(
            """mutation($s: ScheduleSelector!, $t: Float) { scheduleDryRun(selectorData: $s,
                timestamp: $t) { __typename ... on DryRunInstigationTick { evaluationResult {
                runRequests { runKey tags { key value } } skipReason error { message } } }
                ... on PythonError { message } } }""",
            s=selector,
            t=system.plan.now_hour.timestamp(),
        )["scheduleDryRun"]
        evaluation = expect_type(dry_run, "DryRunInstigationTick")["evaluationResult"]
        assert evaluation["error"] is None, evaluation["error"]
        assert evaluation["skipReason"] is None, evaluation["skipReason"]
        hour = system.plan.now_hour - timedelta(hours=1)
        (request,) = evaluation["runRequests"]
        assert request["runKey"] == hour_key(hour)
        tags = {tag["key"]: tag["value"] for tag in request["tags"]}
        assert tags["fraud_assets/partition"] == hour_key(hour)
        assert tags["dagster/partition"] == hour_key(hour)

        # Launch what the tick asked for (the dialog's "Launch all runs").
        run_id = system.launch_run(tags)
        system.wait_run(run_id)
    finally:
        system.graphql(
            """mutation($id: String) { stopRunningSchedule(id: $id) { __typename } }""",
            id=state["id"],
        )
    counts = hour_counts(system, [hour])[hour_key(hour)]
    assert counts.complete, counts


@pytest.fixture(scope="module")
def backfilled(system: System) -> dict:
    """A three-hour asset backfill of the scoring graph, launched as the UI's dialog does."""
    hours = system.plan.hours(6, 4)
    keys = [hour_key(h) for h in hours]
    launched = system.graphql(
        """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
            __typename ... on LaunchBackfillSuccess { backfillId }
            ... on PythonError { message } ... on PartitionKeysNotFoundError { message }
            ... on InvalidSubsetError { message } ... on RunConfigValidationInvalid {
            errors { message } } } }""",
        p={
            "partitionNames": keys,
            "assetSelection": [{"path": [name]} for name in SCORING_ASSETS],
            "runConfigData": IN_PROCESS,
            "title": "e2e: three hours in one run",
        },
    )["launchPartitionBackfill"]
    backfill_id = expect_type(launched, "LaunchBackfillSuccess")["backfillId"]

    def backfill():
        data = system.graphql(
            """query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
                ... on PartitionBackfill { status numPartitions runs { runId status tags {
                key value } } error { message } } } }""",
            id=backfill_id,
        )
        return expect_type(data["partitionBackfillOrError"], "PartitionBackfill")

    done = wait_for(
        lambda: (b := backfill())["status"] not in ("REQUESTED", "CANCELING", "FAILING") and b,
        300,
        f"backfill {backfill_id} to finish",
        interval_s=2,
        on_timeout=system.log_tail,
    )
    return {"id": backfill_id, "hours": hours, "keys": keys, "final": done}


def test_multi_partition_backfill_is_completed_by_the_daemon_in_one_run(
    system: System, backfilled: dict
):
    final = backfilled["final"]
    assert final["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), final
    assert final["numPartitions"] == 3
    # BackfillPolicy.single_run(): the daemon launches one run for the whole range.
    (run,) = final["runs"]
    assert run["status"] == "SUCCESS", system.run_failures(run["runId"])
    tags = {tag["key"]: tag["value"] for tag in run["tags"]}
    assert tags["dagster/asset_partition_range_start"] == backfilled["keys"][0]
    assert tags["dagster/asset_partition_range_end"] == backfilled["keys"][-1]
    counts = hour_counts(system, backfilled["hours"])
    assert all(c.complete for c in counts.values()), counts
    # The local instance's event log stored the run's events in batches (its info names
    # the storage); every hour of every asset of the run is recorded as materialized.
    info = system.graphql("{ instance { info } }")["instance"]["info"]
    assert "BatchingSqliteEventLogStorage" in info, info
    for asset in SCORING_ASSETS:
        data = system.graphql(
            """query($key: AssetKeyInput!, $hours: [String!]) { assetOrError(assetKey: $key) {
                __typename ... on Asset { assetMaterializations(partitions: $hours) {
                    partition runId } } } }""",
            key={"path": [asset]},
            hours=backfilled["keys"],
        )
        recorded = expect_type(data["assetOrError"], "Asset")["assetMaterializations"]
        mine = sorted(m["partition"] for m in recorded if m["runId"] == run["runId"])
        assert mine == sorted(backfilled["keys"]), (asset, recorded)


def test_late_transactions_sensor_ticks_and_rescores_the_late_hour(
    system: System, backfilled: dict
):
    hour = backfilled["hours"][1]
    system.wait_idle()  # no run half-way through writing an hour while the sensor looks
    with clickhouse_client(system) as client:
        client.command(
            """INSERT INTO crypto_transactions
            SELECT * REPLACE (concat(transaction_id, '-late') AS transaction_id, now() AS created_at)
            FROM crypto_transactions
            WHERE timestamp >= {start:DateTime('UTC')} AND timestamp < {end:DateTime('UTC')}
            ORDER BY timestamp DESC LIMIT 1""",
            parameters={"start": hour, "end": hour + timedelta(hours=1)},
        )
    before = hour_counts(system, [hour])[hour_key(hour)]
    assert before.arrived == before.scored + before.quarantined + 1, before

    selector = {**repository_selector(), "sensorName": "late_transactions_sensor"}
    started = system.graphql(
        """mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename
            ... on Sensor { sensorState { id status } } ... on PythonError { message } } }""",
        s=selector,
    )["startSensor"]
    state = expect_type(started, "Sensor")["sensorState"]
    assert state["status"] == "RUNNING"
    try:

        def requested_tick():
            data = system.graphql(
                f"""query($s: SensorSelector!) {{ sensorOrError(sensorSelector: $s) {{
                    __typename ... on Sensor {{ sensorState {{ {_TICKS} }} }} }} }}""",
                s=selector,
            )
            ticks = expect_type(data["sensorOrError"], "Sensor")["sensorState"]["ticks"]
            failed = [t for t in ticks if t["status"] == "FAILURE"]
            assert not failed, f"sensor tick failed: {failed[0]['error']}"
            return next((t for t in ticks if t["status"] == "SUCCESS" and t["runIds"]), None)

        tick = wait_for(
            requested_tick, 180, "a sensor tick that requests a run", 2, system.log_tail
        )
    finally:
        system.graphql(
            """mutation($id: String) { stopSensor(id: $id) { __typename } }""", id=state["id"]
        )
    (run_id,) = tick["runIds"]
    assert tick["runKeys"] == [f"{hour_key(hour)}:{before.arrived}"]
    run = system.wait_run(run_id, timeout_s=300)
    tags = {tag["key"]: tag["value"] for tag in run["tags"]}
    assert tags["dagster/partition"] == hour_key(hour)
    assert tags["fraud_assets/reason"].startswith("late arrivals")
    after = hour_counts(system, [hour])[hour_key(hour)]
    assert after.complete and after.arrived == before.arrived, after
