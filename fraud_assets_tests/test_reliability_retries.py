"""Idempotency and retries: repeated, retried and half-failed runs leave one copy of everything.

* Every scoring asset materialized twice (as a range and as a single hour)
  leaves one row per transaction in ``detected_anomalies_ensemble`` and
  ``quarantined_transactions`` and one row per (day, model) in
  ``daily_model_performance``.
* A transient fault (the embedded database held by another process past the
  lock timeout) is retried by the assets' RetryPolicy, with backoff, and the
  run succeeds with one copy of its rows.
* A permanent error (an unknown table) fails the step once, with the
  ClickHouse code and name in the message, and is not retried; so does an
  error that is not ClickHouse's at all (a bad run config, a bug).
* A run that fails midway (a model artifact missing when the autoencoder step
  runs) writes no decisions; re-executed from the failed step once the
  artifact is back, and then run again whole, it leaves one copy.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time

import dagster as dg

from fraud_assets import registry
from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets_tests.reliability_support import (  # noqa: F401 (fixtures)
    World,
    assert_one_copy,
    events_of,
    failures,
    hour,
    range_tags,
    world_fixture,
    world_template_fixture,
)


def _snapshot(world: World) -> tuple:
    return (
        world.query(
            "SELECT transaction_id, final_decision, model_version FROM detected_anomalies_ensemble "
            "ORDER BY transaction_id"
        ),
        world.query(
            "SELECT transaction_id, reason FROM quarantined_transactions ORDER BY transaction_id, reason"
        ),
        world.query(
            "SELECT date, model_type, total_predictions, anomalies_detected, false_positives "
            "FROM daily_model_performance ORDER BY date, model_type"
        ),
    )


def test_every_scoring_asset_materialized_twice_leaves_one_copy(world: World):
    first, last, end = hour(0), hour(1), hour(2)
    assert world.score(first, last).success
    counts = assert_one_copy(world, first, end)
    snapshot = _snapshot(world)
    again = world.score(last)  # the same hour again, in a run of another shape
    assert again.success, failures(again)
    assert world.score(first, last).success  # and the whole range again
    assert assert_one_copy(world, first, end) == counts
    assert _snapshot(world) == snapshot
    versions = world.query("SELECT DISTINCT model_version FROM detected_anomalies_ensemble")
    assert versions == [(world.active_version(),)]


def _hold_embedded_lock(world: World, seconds: float) -> threading.Thread:
    """Hold the embedded database's inter-process lock, as another run would."""
    lock_path = world.data_dir / ".clickhouse.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)

    def release() -> None:
        time.sleep(seconds)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    holder = threading.Thread(target=release, daemon=True)
    holder.start()
    return holder


def test_transient_fault_is_retried_with_backoff_and_the_run_completes(world: World):
    impatient = ClickHouseResource(dsn=world.dsn, lock_timeout_s=0.5)
    defs = world.definitions(clickhouse=impatient)
    world.query("SELECT 1")  # migrations applied before the database is taken away
    holder = _hold_embedded_lock(world, seconds=2.0)
    result = world.score(hour(4), defs=defs)
    holder.join()
    assert result.success, failures(result)
    retries = events_of(result, "STEP_UP_FOR_RETRY")
    assert retries, "the busy database was retried"
    assert all(e.step_key == "extract_transactions" for e in retries)
    assert "busy" in retries[0].event_specific_data.error.cause.message
    assert len(events_of(result, "STEP_RESTARTED")) == len(retries)
    assert_one_copy(world, hour(4), hour(5))


def test_permanent_error_fails_once_with_a_clear_message(world: World):
    world.query("SELECT 1")  # migrations applied, then the table disappears
    world.command("DROP TABLE crypto_transactions SYNC")
    started = time.monotonic()
    result = world.score(hour(5))
    assert not result.success
    message = failures(result)
    assert "extract_transactions" in message
    assert "code 60 UNKNOWN_TABLE" in message and "retrying cannot fix this" in message
    assert events_of(result, "STEP_UP_FOR_RETRY") == [], "no retry storm on a permanent error"
    assert time.monotonic() - started < 60


def test_an_error_that_is_not_transient_fails_once_without_retries(world: World):
    started = time.monotonic()
    result = world.score(
        hour(6), run_config={"ops": {"ensemble_decision": {"config": {"top_n": 0}}}}
    )
    assert not result.success
    message = failures(result)
    assert "ensemble_decision" in message
    assert "ValueError: top_n must be at least 1" in message and "not retried" in message
    assert events_of(result, "STEP_UP_FOR_RETRY") == [], "a bad config is not retried"
    assert time.monotonic() - started < 60


def test_a_run_failing_midway_then_retried_leaves_one_copy(world: World):
    first, end = hour(6), hour(7)
    with world.clickhouse.get_client() as client:
        record = registry.get_version(client, registry.active_version(client))["autoencoder"]
    artifact = world.model_dir / record.model_path
    aside = artifact.with_name(artifact.name + ".aside")
    shutil.move(artifact, aside)

    failed = world.score(first)
    assert not failed.success
    assert "autoencoder_prediction" in failures(failed)
    assert events_of(failed, "STEP_UP_FOR_RETRY") == []
    assert world.query("SELECT count() FROM detected_anomalies_ensemble") == [(0,)]
    quarantined_first = world.reconcile(first, end)["quarantined"]

    shutil.move(aside, artifact)
    # Re-execute from the failure: the failed step and everything after it, with the
    # upstream intermediates of the failed run.
    not_done = [
        dg.AssetKey(k)
        for k in (
            "autoencoder_prediction",
            "ensemble_decision",
            "detected_anomalies_ensemble",
            "send_alerts",
            "daily_model_performance",
        )
    ]
    resumed = world.defs.resolve_job_def("ensemble_anomaly_detection").execute_in_process(
        instance=world.instance,
        tags=range_tags(first, first),
        asset_selection=not_done,
        raise_on_error=False,
    )
    assert resumed.success, failures(resumed)
    counts = assert_one_copy(world, first, end)
    assert counts["quarantined"] == quarantined_first
    whole = world.score(first)
    assert whole.success, failures(whole)
    assert assert_one_copy(world, first, end) == counts
