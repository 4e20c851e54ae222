"""Crashes: runs killed with SIGKILL mid-write, then rerun.

Runs go through the code location in a subprocess, as a deployment's run
worker does, on a copy of the trained world:

* Scoring, killed while writing its results (the embedded engine's insert
  file is the hook: it exists only between the slice's DELETE and the end of
  its INSERT) and at random moments of further runs. The write journal marks
  the slice incomplete; the rerun leaves every hour complete and free of
  duplicates.
* Training, killed while the Isolation Forest artifact is being saved, after
  the scaler and the autoencoder of the new run were stored. The registry
  still names the active bundle's files, which verify and score; the rerun
  registers a complete new set. No half-written artifact is ever loadable.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Callable

from fraud_assets import registry
from fraud_assets.bundle_loader import load_bundle
from fraud_assets.io.model_store import ModelStore
from fraud_assets_tests.reliability_support import (  # noqa: F401 (fixtures)
    SCORING_JOB,
    TRAINING_JOB,
    World,
    assert_one_copy,
    failures,
    hour,
    range_tags,
    world_fixture,
    world_template_fixture,
)

SPAWN_TIMEOUT_S = 300
FAULTS = {"sigkill": 0}


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], what: str) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` holds (polled every few milliseconds)."""
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    while not ready():
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"the run ended before {what}:\n{output[-3000:]}")
        assert time.monotonic() < deadline, f"no {what} within {SPAWN_TIMEOUT_S}s"
        time.sleep(0.003)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    FAULTS["sigkill"] += 1


def incomplete_writes(world: World) -> list[tuple]:
    return world.query(
        "SELECT table_name, run_id FROM io_manager_writes FINAL WHERE state = 'writing'"
    )


def registry_rows(world: World) -> list[tuple]:
    return world.query(
        "SELECT model_type, version, status, model_path, model_sha256, scaler_path, scaler_sha256 "
        "FROM model_registry ORDER BY model_type, version"
    )


def assert_registry_points_at_verified_files(world: World) -> None:
    store = ModelStore(world.model_dir)
    rows = registry_rows(world)
    assert len(rows) == len({(r[0], r[1]) for r in rows}), "one registry row per model version"
    for _, _, _, model_path, model_sha, scaler_path, scaler_sha in rows:
        store.verify(model_path, expected_sha256=model_sha)
        store.verify(scaler_path, expected_sha256=scaler_sha)
    with world.clickhouse.get_client() as client:
        load_bundle(client, registry.active_version(client))


def test_scoring_killed_during_its_write_then_rerun_is_complete_and_duplicate_free(world: World):
    first, last, end = hour(8), hour(10), hour(11)
    insert_files = lambda: any(world.tmp_dir.glob("fraud_assets_insert_*.arrow"))  # noqa: E731
    kill_when(world.spawn(SCORING_JOB, range_tags(first, last)), insert_files, "a result insert")
    for leftover in world.tmp_dir.glob("fraud_assets_insert_*.arrow"):
        leftover.unlink()  # a killed process leaves its temporary file, as it would in /tmp

    pending = incomplete_writes(world)
    assert pending, "the kill landed between a slice's DELETE and the end of its INSERT"

    # More crashes at random moments of further runs of the same hours.
    rng = random.Random(20260301)
    for _ in range(2):
        process = world.spawn(SCORING_JOB, range_tags(first, last))
        time.sleep(rng.uniform(4.0, 14.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
            FAULTS["sigkill"] += 1

    rerun = world.score(first, last)
    assert rerun.success, failures(rerun)
    assert incomplete_writes(world) == [], "the rerun completed every slice it had left open"
    for n in range(8, 11):
        assert_one_copy(world, hour(n), hour(n + 1), nonempty=False)
    assert_one_copy(world, first, end)


def _isolation_forest_being_saved(world: World) -> Callable[[], bool]:
    staging = world.model_dir / ".staging"

    def ready() -> bool:
        if not staging.is_dir():
            return False
        return any((d / "model.skops").exists() for d in staging.iterdir())

    return ready


def test_training_killed_while_saving_a_model_never_leaves_the_registry_dangling(world: World):
    before = registry_rows(world)
    active = world.active_version()
    saving = _isolation_forest_being_saved(world)
    kill_when(world.spawn(TRAINING_JOB), saving, "an Isolation Forest save")

    registered = {world.model_dir / r[3] for r in before}
    new_autoencoders = [
        m.parent
        for m in (world.model_dir / "train_autoencoder").rglob("manifest.json")
        if m.parent not in registered
    ]
    assert new_autoencoders, "the killed run had stored its autoencoder already"
    assert registry_rows(world) == before, "a killed training run changes no registry row"
    assert_registry_points_at_verified_files(world)
    scored = world.score(hour(12))
    assert scored.success, failures(scored)
    assert world.query("SELECT DISTINCT model_version FROM detected_anomalies_ensemble") == [
        (active,)
    ]

    retrained = world.train()
    assert retrained.success, failures(retrained)
    after = registry_rows(world)
    assert [(r[0], r[1], r[2]) for r in after] == [(r[0], r[1], r[2]) for r in before]
    assert {r[3] for r in after}.isdisjoint({r[3] for r in before}), "new files, old ones kept"
    assert_registry_points_at_verified_files(world)
    store = ModelStore(world.model_dir)
    for row in before:  # what the earlier registry named is still intact
        store.verify(row[3], expected_sha256=row[4])
    rescored = world.score(hour(12))
    assert rescored.success, failures(rescored)
    assert_one_copy(world, hour(12), hour(13))
