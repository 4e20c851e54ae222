"""Concurrency: two runs of the same hour at once, and a promotion while scoring runs.

* A schedule-shaped run of one hour and a backfill-shaped run of a range that
  holds it start together, as two processes on one embedded database and one
  Dagster instance whose pools have a limit of 1 (as ``docker/dagster.yaml``
  sets), stored in PostgreSQL as in the deployment: Dagster's SQLite storage
  claims pool slots without row locks, so two processes can both take the
  last slot there. The steps that write scoring tables share a pool, so their
  executions never overlap in time; both runs succeed and every hour ends with
  one copy of its rows.
* A promotion between the first steps of a scoring run and its model steps:
  the version resolved by ``feature_engineering`` travels with the rows, so
  the whole run scores with the bundle it started with; the next run uses the
  promoted one.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime

import dagster as dg
import polars as pl
import pytest
import yaml

from fraud_assets import registry
from fraud_assets.assets.scoring import WRITE_POOL
from fraud_assets.bundle_loader import load_component
from fraud_assets.io.model_store import ModelStore
from fraud_assets_tests.postgres_support import PostgresCluster
from fraud_assets_tests.reliability_support import (  # noqa: F401 (fixtures)
    SCORING_JOB,
    World,
    assert_one_copy,
    failures,
    hour,
    range_tags,
    world_fixture,
    world_template_fixture,
)

POOLED_STEPS = ("extract_transactions", "detected_anomalies_ensemble", "daily_model_performance")


def _step_windows(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    starts, ends = {}, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key not in POOLED_STEPS:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = record.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            ends[event.step_key] = record.timestamp
    return {step: (starts[step], ends[step]) for step in starts}


@pytest.mark.postgres
def test_two_runs_of_the_same_hour_at_once_never_interleave_writes(
    world: World, postgres_cluster: PostgresCluster
):
    db = postgres_cluster.database(f"concurrency_{uuid.uuid4().hex[:12]}")
    (world.dagster_home / "dagster.yaml").write_text(
        yaml.safe_dump(
            {
                "storage": {
                    "postgres": {
                        "postgres_db": {
                            "scheme": "postgresql+psycopg2",
                            "hostname": db["DAGSTER_POSTGRES_HOST"],
                            "port": int(db["DAGSTER_POSTGRES_PORT"]),
                            "db_name": db["DAGSTER_POSTGRES_DB"],
                            "username": db["DAGSTER_POSTGRES_USER"],
                            "password": db["DAGSTER_POSTGRES_PASSWORD"],
                        }
                    }
                },
                "concurrency": {"pools": {"default_limit": 1}},
                "telemetry": {"enabled": False},
            }
        )
    )
    # Create the instance's storage and the pool once, as a running deployment has them: two
    # processes creating either at the same moment race on it (a Dagster limitation, not ours).
    with dg.DagsterInstance.from_config(str(world.dagster_home)) as instance:
        instance.get_runs()
        instance.event_log_storage.initialize_concurrency_limit_to_default(WRITE_POOL)
    target, first, last = hour(13), hour(12), hour(14)
    schedule = world.spawn(SCORING_JOB, range_tags(target, target) | {"source": "schedule"})
    backfill = world.spawn(SCORING_JOB, range_tags(first, last) | {"source": "backfill"})
    outputs = [p.communicate(timeout=600)[0] for p in (schedule, backfill)]
    assert schedule.returncode == 0, outputs[0][-3000:]
    assert backfill.returncode == 0, outputs[1][-3000:]

    with dg.DagsterInstance.from_config(str(world.dagster_home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 2 and all(r.is_success for r in runs)
        assert instance.event_log_storage.get_pool_limits()[0].name == WRITE_POOL
        windows = [_step_windows(instance, run.run_id) for run in runs]
    assert all(set(w) == set(POOLED_STEPS) for w in windows)
    for a_start, a_end in windows[0].values():
        for b_start, b_end in windows[1].values():
            assert a_end <= b_start or b_end <= a_start, "pooled steps of two runs overlapped"

    for n in (12, 13, 14):
        assert_one_copy(world, hour(n), hour(n + 1), nonempty=False)
    assert_one_copy(world, first, hour(15))


def _register_a_distinguishable_version(world: World, version: str) -> None:
    """A bundle whose Isolation Forest threshold flags every transaction."""
    with world.clickhouse.get_client() as client:
        active = registry.active_version(client)
        records = registry.get_version(client, active)
        thresholds = load_component(client, active, "thresholds")
    flag_all = dataclasses.replace(thresholds, isolation_forest=-1e30)
    ref = ModelStore(world.model_dir).save(flag_all, asset="calculate_thresholds", version=version)
    candidate = []
    for record in records.values():
        record = dataclasses.replace(record, version=version, status=registry.TESTING)
        if record.model_type == "ensemble":
            record = dataclasses.replace(record, model_path=ref.path, model_sha256=ref.sha256)
        candidate.append(record)
    with world.clickhouse.get_client() as client:
        registry.register(client, candidate)


def _scored(world: World, first: datetime) -> pl.DataFrame:
    rows = world.query(
        "SELECT model_version, isolation_prediction FROM detected_anomalies_ensemble "
        "WHERE timestamp >= {s:DateTime('UTC')} AND timestamp < addHours({s:DateTime('UTC')}, 1)",
        s=first,
    )
    return pl.DataFrame(rows, schema=["model_version", "isolation_prediction"], orient="row")


def test_a_promotion_while_scoring_runs_leaves_the_run_on_one_model_version(world: World):
    target = hour(8)
    started_with = world.active_version()
    promoted = "v20260301_midrun"
    _register_a_distinguishable_version(world, promoted)
    job = world.defs.resolve_job_def(SCORING_JOB)
    upstream = [
        dg.AssetKey(k)
        for k in ("extract_transactions", "quarantined_transactions", "feature_engineering")
    ]
    rest = [
        dg.AssetKey(k)
        for k in (
            "statistical_layer",
            "isolation_forest_prediction",
            "autoencoder_prediction",
            "ensemble_decision",
            "detected_anomalies_ensemble",
            "send_alerts",
            "daily_model_performance",
        )
    ]

    def run(selection: list[dg.AssetKey]) -> dg.ExecuteInProcessResult:
        result = job.execute_in_process(
            instance=world.instance,
            tags=range_tags(target, target),
            asset_selection=selection,
            raise_on_error=False,
        )
        assert result.success, failures(result)
        return result

    run(upstream)  # the run's first steps resolve the version …
    with world.clickhouse.get_client() as client:  # … a promotion lands …
        registry.promote(client, promoted, "promoted while an hour was being scored")
    run(rest)  # … and the run's model steps still use the version it started with

    during = _scored(world, target)
    assert during.height > 1
    assert during["model_version"].unique().to_list() == [started_with]
    assert (during["isolation_prediction"] == 1).any(), "the old thresholds, not the new ones"

    after = world.score(target)  # the next run of the hour uses the promoted bundle
    assert after.success, failures(after)
    rescored = _scored(world, target)
    assert rescored["model_version"].unique().to_list() == [promoted]
    assert (rescored["isolation_prediction"] == -1).all()
    assert_one_copy(world, target, hour(9))


def test_the_deployment_runs_one_write_step_at_a_time():
    import yaml

    from fraud_assets.definitions import defs
    from fraud_assets_tests.reliability_support import REPO

    instance = yaml.safe_load((REPO / "docker" / "dagster.yaml").read_text())
    assert instance["concurrency"]["pools"]["default_limit"] == 1
    limits = {t["key"] for t in instance["concurrency"]["runs"]["tag_concurrency_limits"]}
    assert {"dagster/partition", "fraud_assets/partition"} <= limits
    for step in POOLED_STEPS:
        assert defs.resolve_assets_def(step).op.pool == WRITE_POOL, step
    assets = [defs.resolve_assets_def(k) for k in defs.resolve_asset_graph().get_all_asset_keys()]
    pooled = [
        key.to_user_string()
        for asset in assets
        if asset.is_executable and asset.op.pool == WRITE_POOL
        for key in asset.keys
    ]
    assert {*POOLED_STEPS, "quarantined_transactions"} <= set(pooled)
