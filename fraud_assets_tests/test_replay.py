"""The replay gate and the stable score scale in the weekly graph, on generated data.

Two weekly partitions on one generated world: the first bundle passes the
gate because nothing is active; a deliberately worse second candidate (its
combiner's weights negated, so it ranks frauds lowest) is refused, its
verdict stored, the first bundle kept; the retrained, honest candidate then
passes and is promoted with its risk mapped onto the first bundle's scale.
Also: a replay in small chunks gives the one-pass outcomes and verdict, and
``calculate_thresholds`` with capacity options keeps the training window's
review volume at the capacity.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pytest

from fraud_assets import registry
from fraud_assets.assets import training
from fraud_assets.assets.replay_steps import (
    decide,
    replay_chunks,
    replay_outcomes,
    replay_window_features,
    split_by_rows,
)
from fraud_assets.bundle import ModelThresholds, ScoringBundle
from fraud_assets.bundle_loader import load_bundle
from fraud_assets.evaluation import replay as comparison
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


def generated_env(tmp_path_factory: pytest.TempPathFactory, name: str):
    """A world with 40 days of generated traffic for 300 users, up to ``SECOND_END``."""
    root = tmp_path_factory.mktemp(name)
    mp = pytest.MonkeyPatch()
    mp.setenv("FRAUD_MODEL_DIR", str(root / "models"))
    environment = Env(root)
    generate_into_clickhouse(
        environment.clickhouse,
        GeneratorConfig(start=SECOND_END - timedelta(days=40), end=SECOND_END, users=300),
    )
    yield environment
    mp.undo()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    yield from generated_env(tmp_path_factory, "replay")


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
    assert replay["replay_rows"] > 1000 and replay["replay_chunks"] == 14  # a day at a time
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


def test_replay_chunks_tile_the_window_and_refuse_a_bad_size():
    start = SECOND_END - timedelta(weeks=2)
    chunks = replay_chunks(start, SECOND_END, 24 * 5)
    assert [c[0] for c in chunks] == [start + timedelta(days=d) for d in (0, 5, 10)]
    assert chunks[-1] == (start + timedelta(days=10), SECOND_END)
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="chunk_hours"):
            replay_chunks(start, SECOND_END, bad)


def test_busy_chunks_are_cut_at_hour_boundaries_to_the_row_cap():
    start = SECOND_END - timedelta(days=1)
    hours = [start + timedelta(hours=h) for h in range(24)]
    rows = dict.fromkeys(hours, 100) | {hours[5]: 1_000}  # one hour above the cap
    chunks = split_by_rows(replay_chunks(start, SECOND_END, 12), rows, 250)
    assert chunks[:4] == [
        (hours[0], hours[2]),
        (hours[2], hours[4]),
        (hours[4], hours[5]),
        (hours[5], hours[6]),  # alone: hours are the smallest unit
    ]
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))
    assert chunks[-1][1] == SECOND_END and hours[12] in [c[0] for c in chunks]
    for start_, end_ in chunks:
        held = sum(n for hour, n in rows.items() if start_ <= hour < end_)
        assert held <= 250 or end_ - start_ == timedelta(hours=1)
    assert split_by_rows([(start, SECOND_END)], {}, 1) == [(start, SECOND_END)]
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="max_chunk_rows"):
            split_by_rows([(start, SECOND_END)], rows, bad)


def test_a_bad_chunk_size_fails_the_replay_step_at_once_without_retries(env: Env, first):
    result = dg.materialize(
        [*training.defs.assets],
        selection=["replay_backtest"],
        partition_key=FIRST_WEEK,
        instance=env.instance,
        resources=env.defs.resources,
        run_config={"ops": {"replay_backtest": {"config": {"chunk_hours": 0}}}},
        raise_on_error=False,
    )
    assert not result.success
    assert "chunk_hours must be a whole number of hours ≥ 1, got 0" in _errors(result)
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def _worse_copy(bundle: ScoringBundle) -> ScoringBundle:
    """The bundle with its combiner's weights negated (a copy: loaded bundles are cached)."""
    combiner = copy.deepcopy(bundle.thresholds.combiner)
    assert combiner is not None, "the comparison needs a fitted combiner"
    combiner.coef_ = -combiner.coef_
    thresholds = dataclasses.replace(bundle.thresholds, combiner=combiner)
    return dataclasses.replace(bundle, version="v-worse", thresholds=thresholds)


def test_a_replay_in_small_chunks_gives_the_one_pass_outcomes_and_verdict(env: Env, first):
    start, end = SECOND_END - timedelta(weeks=2), SECOND_END
    matured_before = end - timedelta(days=5)
    with env.clickhouse.get_client() as client:
        active = load_bundle(client, training.model_version(FIRST_WEEK))
        candidate = _worse_copy(active)
        runs = {
            hours: replay_outcomes(
                client, candidate, active, start, end, matured_before, chunk_hours=hours
            )
            for hours in (13, 24 * 14)  # 26 chunks, the last one 11 hours; one chunk
        }
        cap = runs[24 * 14]["timing"]["rows"] // 7
        capped = replay_outcomes(
            client,
            candidate,
            active,
            start,
            end,
            matured_before,
            chunk_hours=24 * 14,
            max_chunk_rows=cap,
        )
    chunked, whole = runs[13], runs[24 * 14]
    assert (chunked["timing"]["chunks"], whole["timing"]["chunks"]) == (26, 1)
    assert chunked["timing"]["rows"] == whole["timing"]["rows"] > 1000
    assert chunked["timing"]["largest_chunk_rows"] < whole["timing"]["rows"] / 10
    assert chunked["candidate"] == whole["candidate"] and chunked["active"] == whole["active"]
    assert capped["timing"]["chunks"] >= 7 and capped["timing"]["largest_chunk_rows"] <= cap
    assert capped["candidate"] == whole["candidate"] and capped["active"] == whole["active"]
    assert whole["active"].frauds >= 10 and whole["active"].caught > whole["candidate"].caught
    tolerances = comparison.Tolerances()
    verdicts = [comparison.compare(r["candidate"], r["active"], tolerances) for r in runs.values()]
    assert verdicts[0] == verdicts[1] and not verdicts[0].passed
    tables = [
        comparison.markdown(r["candidate"], r["active"], v)
        for r, v in zip(runs.values(), verdicts, strict=True)
    ]
    assert tables[0] == tables[1]


CAPACITY = {"review_capacity_per_hour": 1.5, "block_precision_target": 0.5}


def test_capacity_options_hold_the_training_windows_review_volume(env: Env, first):
    """``calculate_thresholds`` materialized with the capacity options, then its bundle scores
    the training window it was fit on: reviews per hour within 5% of the capacity (ties at
    the cut and the subsample are the slack) and blocks at least as precise as the target."""
    run = dg.materialize(
        [*training.defs.assets],
        selection=["calculate_thresholds"],
        partition_key=FIRST_WEEK,
        instance=env.instance,
        resources=env.defs.resources,
        run_config={"ops": {"calculate_thresholds": {"config": CAPACITY}}},
        raise_on_error=False,
    )
    assert run.success, _errors(run)
    notes = _metadata(run, "calculate_thresholds")["score_mapping"]
    assert "reviews/hour for a capacity of 1.5" in notes and "block above risk" in notes

    def load(asset: str):
        return env.defs.load_asset_value(asset, partition_key=FIRST_WEEK, instance=env.instance)

    bundle = ScoringBundle(
        version=training.model_version(FIRST_WEEK),
        scaler=load("feature_scaler"),
        isolation_forest=load("train_isolation_forest"),
        autoencoder=load("train_autoencoder"),
        thresholds=load("calculate_thresholds"),
    )
    features = load("feature_engineering_train")
    assert features.height <= 200_000, "the mapping was fit on every row of the window"
    span = features["timestamp"].max() - features["timestamp"].min()
    hours = span.total_seconds() / 3600.0
    _, decision = decide(bundle, features)
    reviews_per_hour = (decision == "review").sum() / hours
    assert reviews_per_hour == pytest.approx(CAPACITY["review_capacity_per_hour"], rel=0.05)
    with env.clickhouse.get_client() as client:  # as first trained: no capacity options
        _, uncapped = decide(load_bundle(client, bundle.version), features)
    assert abs((uncapped == "review").sum() / hours - reviews_per_hour) > 0.2 * reviews_per_hour
    blocked = decision == "blocked"
    assert blocked.sum() > 0
    precision = features["is_fraud"].to_numpy()[blocked].mean()
    assert precision >= CAPACITY["block_precision_target"]
