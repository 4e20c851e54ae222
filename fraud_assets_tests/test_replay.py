"""The replay gate and the stable score scale in the weekly graph, on generated data.

Two weekly partitions on one generated world: the first bundle passes the
gate because nothing is active; a deliberately worse second candidate (its
combiner's weights negated, so it ranks frauds lowest) is refused, its
verdict stored, the first bundle kept; the retrained, honest candidate then
passes and is promoted with its risk mapped onto the first bundle's scale.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pytest

from fraud_assets import registry
from fraud_assets.assets import training
from fraud_assets.assets.replay_steps import decide, replay_window_features
from fraud_assets.bundle import ModelThresholds
from fraud_assets.bundle_loader import load_bundle
from fraud_assets.generator.config import GeneratorConfig
from fraud_assets.generator.load import generate_into_clickhouse
from fraud_assets.io.model_store import ModelStore
from fraud_assets_tests.test_graphs import TRAIN_CONFIG, Env, _errors

FIRST_WEEK, SECOND_WEEK = "2026-11-01", "2026-11-08"
SECOND_END = datetime(2026, 11, 15, 2, tzinfo=UTC)
SCORED = ("2026-11-08-02:00", "2026-11-08-04:00")
UPSTREAM = (
    "extract_training_data", "feature_engineering_train", "feature_scaler",
    "train_isolation_forest", "train_autoencoder", "calculate_thresholds",
)  # fmt: skip
# Only the replay gate judges here (2 epochs on 300 users can miss the validation floors).
OPEN_GATES = {
    "validate_models_validation_quality_gates": {
        "config": {
            "min_roc_auc": 0.0,
            "min_recall_at_2pct": 0.0,
            "min_block_precision": 0.0,
            "max_block_rate": 1.0,
        }
    },
    "a_b_test": {"config": {"max_alert_rate_increase": 100.0, "max_recall_drop": 1.0}},
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("replay")
    mp = pytest.MonkeyPatch()
    mp.setenv("FRAUD_MODEL_DIR", str(root / "models"))
    environment = Env(root)
    generate_into_clickhouse(
        environment.clickhouse,
        GeneratorConfig(start=SECOND_END - timedelta(days=40), end=SECOND_END, users=300),
    )
    yield environment
    mp.undo()


def _active(env: Env) -> str:
    with env.clickhouse.get_client() as client:
        return registry.active_version(client)


def _verdict(env: Env, version: str) -> registry.ReplayVerdict:
    with env.clickhouse.get_client() as client:
        found = registry.replay_verdict(client, version)
    assert found is not None
    return found


def _metadata(result, asset: str) -> dict:
    (event,) = [
        m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey(asset)
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


@pytest.fixture(scope="module")
def first(env: Env):
    result = env.train(partition_key=FIRST_WEEK)
    assert result.success, _errors(result)
    scored = env.score(*SCORED)
    assert scored.success, _errors(scored)
    return result


def test_the_first_bundle_passes_because_nothing_is_active(env: Env, first):
    replay = _metadata(first, "replay_backtest")
    assert replay["passed"] is True and "no active bundle" in replay["reason"]
    version = _active(env)
    verdict = _verdict(env, version)
    assert verdict.passed and verdict.active_version == "" and "no active bundle" in verdict.reason
    scale = _metadata(first, "calculate_thresholds")
    assert "identity" in scale["score_mapping"] and "candidate after" in scale["score_distribution"]


def test_the_replay_scores_exactly_as_the_hourly_graph_did(env: Env, first):
    """One pass over the gate's two-week window gives the stored decisions of the scored hours."""
    with env.clickhouse.get_client() as client:
        bundle = load_bundle(client, _active(env))
        features = replay_window_features(
            client, SECOND_END - timedelta(weeks=2), SECOND_END, known_by=SECOND_END
        )
        stored = client.query(
            "SELECT transaction_id, total_risk_score, final_decision "
            "FROM detected_anomalies_ensemble ORDER BY transaction_id"
        ).result_rows
    risk, decision = decide(bundle, features)
    replayed = dict(
        zip(features["transaction_id"].to_list(), zip(risk, decision, strict=True), strict=True)
    )
    assert len(stored) > 20
    for transaction_id, stored_risk, stored_decision in stored:
        assert replayed[transaction_id][0] == pytest.approx(stored_risk, abs=1e-3)
        assert replayed[transaction_id][1] == stored_decision


def _sabotage(env: Env) -> None:
    """Store a second-week calculate_thresholds whose combiner ranks frauds lowest."""

    @dg.asset(
        name="calculate_thresholds",
        partitions_def=training.weekly_partitions,
        group_name=training.GROUP,
        io_manager_key=training.MODELS,
    )
    def worse_thresholds(context) -> ModelThresholds:  # annotations are strings here
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("calculate_thresholds"),
                asset_partitions=[context.partition_key],
            ),
            limit=1,
        ).records
        metadata = records[0].event_log_entry.asset_materialization.metadata
        honest = ModelStore(env.model_dir).load(
            str(metadata["path"].value), expected_sha256=str(metadata["sha256"].value)
        )
        combiner = honest.combiner
        assert combiner is not None, "the sabotage needs a fitted combiner"
        combiner.coef_ = -combiner.coef_
        combiner.intercept_ = float(combiner.intercept_) + 4.0
        return dataclasses.replace(honest, combiner=combiner, score_mapping=None)

    run = dg.materialize(
        [*training.defs.assets],
        selection=list(UPSTREAM),
        partition_key=SECOND_WEEK,
        instance=env.instance,
        resources=env.defs.resources,
        run_config=TRAIN_CONFIG,
        raise_on_error=False,
    )
    assert run.success, _errors(run)
    swapped = dg.materialize(
        [worse_thresholds],
        partition_key=SECOND_WEEK,
        instance=env.instance,
        resources=env.defs.resources,
    )
    assert swapped.success


def test_a_worse_candidate_is_refused_and_the_active_bundle_kept(env: Env, first):
    active = _active(env)
    (scored_rows,) = env.query("SELECT count() FROM detected_anomalies_ensemble")[0]
    _sabotage(env)
    downstream = [
        "validate_models", "register_models", "a_b_test", "replay_backtest",
        "promote_to_production",
    ]  # fmt: skip
    job = dg.define_asset_job("after_thresholds", selection=dg.AssetSelection.assets(*downstream))
    defs = dg.Definitions.merge(env.defs, dg.Definitions(jobs=[job]))
    result = defs.resolve_job_def("after_thresholds").execute_in_process(
        partition_key=SECOND_WEEK,
        instance=env.instance,
        run_config={"ops": OPEN_GATES},
        raise_on_error=False,
    )
    assert result.success, _errors(result)
    candidate = training.model_version(SECOND_WEEK)
    replay = _metadata(result, "replay_backtest")
    assert replay["passed"] is False and "frauds caught" in replay["reason"]
    assert "| check |" in replay["comparison"] and "**no**" in replay["comparison"]
    assert replay["replay_rows"] > 1000
    verdict = _verdict(env, candidate)
    assert not verdict.passed and verdict.active_version == active
    assert verdict.report["candidate"]["caught"] < verdict.report["active"]["caught"]
    assert _active(env) == active, "the active bundle stays"
    with env.clickhouse.get_client() as client:
        status = registry.get_version(client, candidate)["ensemble"]
    assert status.status == registry.REJECTED and "replay gate" in status.status_reason
    (after,) = env.query("SELECT count() FROM detected_anomalies_ensemble")[0]
    assert after == scored_rows, "the replay writes nothing to production tables"


def test_an_honest_retrained_candidate_passes_and_is_mapped_onto_the_active_scale(env: Env, first):
    previous = _active(env)
    result = env.train({"ops": {**TRAIN_CONFIG["ops"], **OPEN_GATES}}, partition_key=SECOND_WEEK)
    assert result.success, _errors(result)
    candidate = training.model_version(SECOND_WEEK)
    replay = _metadata(result, "replay_backtest")
    assert replay["passed"] is True, replay["comparison"]
    assert _verdict(env, candidate).passed and _active(env) == candidate != previous
    scale = _metadata(result, "calculate_thresholds")
    assert f"active {previous}" in scale["score_mapping"]
    with env.clickhouse.get_client() as client:
        mapped = load_bundle(client, candidate)
        reference = load_bundle(client, previous)
        features = replay_window_features(
            client, SECOND_END - timedelta(weeks=1), SECOND_END, known_by=SECOND_END
        )
    new_risk, _ = decide(mapped, features)
    old_risk, _ = decide(reference, features)
    quantiles = [0.5, 0.9, 0.99]
    assert np.abs(np.quantile(new_risk, quantiles) - np.quantile(old_risk, quantiles)).max() < 5.0
