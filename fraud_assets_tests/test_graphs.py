"""The two seed DAGs end to end on generated data, through the real embedded engine.

One small month of traffic is generated once for the module; the weekly
training job trains, validates, registers and promotes a bundle from it, and
the hourly scoring job scores hours after the training week through a
single-run backfill. Autoencoder epochs are few to keep the suite fast.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from fraud_assets import registry
from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets.demo import _TOP_BLOCKED_SQL
from fraud_assets.generator.config import GeneratorConfig
from fraud_assets.generator.load import generate_into_clickhouse
from fraud_assets.io import ClickHousePandasIOManager, ClickHousePolarsIOManager, ModelIOManager
from fraud_assets.io.intermediate import IntermediateFrameIOManager
from fraud_assets.io.model_store import ModelStore
from fraud_assets.notify import NotifierResource

WEEK_KEY = "2026-11-01"  # Sunday 2026-11-01 02:00 → Sunday 2026-11-08 02:00 UTC
WEEK_END = datetime(2026, 11, 8, 2, tzinfo=UTC)
FIRST_HOUR, LAST_HOUR = "2026-11-08-02:00", "2026-11-08-07:00"
TRAIN_CONFIG = {
    "ops": {
        "train_autoencoder": {"config": {"epochs": 2, "batch_size": 64}},
        "train_isolation_forest": {"config": {"n_estimators": 50}},
    }
}


class Env:
    def __init__(self, root: Path):
        self.dsn = f"chdb://{root / 'clickhouse'}"
        self.model_dir = root / "models"
        self.clickhouse = ClickHouseResource(dsn=self.dsn)
        self.instance = dg.DagsterInstance.ephemeral()
        resources = {
            "clickhouse": self.clickhouse,
            "polars_io_manager": ClickHousePolarsIOManager(dsn=self.dsn),
            "clickhouse_io_manager": ClickHousePandasIOManager(dsn=self.dsn),
            "model_io_manager": ModelIOManager(root=str(self.model_dir)),
            "intermediate_io_manager": IntermediateFrameIOManager(root=str(root / "intermediate")),
            "notifier": NotifierResource(),
        }
        from fraud_assets.assets import scoring, training

        self.defs = dg.Definitions.merge(
            training.defs, scoring.defs, dg.Definitions(resources=resources)
        )

    def train(self, run_config=TRAIN_CONFIG, partition_key=WEEK_KEY):
        job = self.defs.resolve_job_def("train_ensemble_models")
        return job.execute_in_process(
            partition_key=partition_key,
            instance=self.instance,
            run_config=run_config,
            raise_on_error=False,
        )

    def score(self, first=FIRST_HOUR, last=LAST_HOUR):
        job = self.defs.resolve_job_def("ensemble_anomaly_detection")
        return job.execute_in_process(
            instance=self.instance,
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last,
            },
            raise_on_error=False,
        )

    def query(self, sql: str, **parameters):
        with self.clickhouse.get_client() as client:
            return client.query(sql, parameters=parameters).result_rows


def _errors(result) -> str:
    return "\n".join(
        f"{e.step_key}: {e.event_specific_data.error.message}"
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("graphs")
    mp = pytest.MonkeyPatch()
    mp.setenv("FRAUD_MODEL_DIR", str(root / "models"))
    environment = Env(root)
    generate_into_clickhouse(
        environment.clickhouse,
        GeneratorConfig(
            start=WEEK_END - timedelta(days=36), end=WEEK_END + timedelta(hours=8), users=350
        ),
    )
    yield environment
    mp.undo()


@pytest.fixture(scope="module")
def trained(env: Env):
    result = env.train({**TRAIN_CONFIG, "ops": {**TRAIN_CONFIG["ops"], "validate_models": {}}})
    assert result.success, _errors(result)
    return result


def test_scoring_without_a_model_fails_fast_with_a_clear_message(env: Env):
    result = env.score(FIRST_HOUR, FIRST_HOUR)
    assert not result.success
    failures = _errors(result)
    assert "feature_engineering" in failures and "no active model bundle" in failures


def test_training_registers_and_promotes_one_active_version_per_type(env: Env, trained):
    rows = env.query(
        "SELECT model_type, version, status, model_path, model_sha256 FROM model_registry"
    )
    assert sorted(r[0] for r in rows) == sorted(registry.MODEL_TYPES)
    assert {r[2] for r in rows} == {registry.ACTIVE}
    store = ModelStore(env.model_dir)
    for _, _, _, path, sha in rows:
        store.verify(path, expected_sha256=sha)
    promoted = [
        m
        for m in trained.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey("production_models")
    ]
    assert promoted, "promotion records a production_models materialization"


def test_retraining_the_same_week_is_idempotent(env: Env, trained):
    before = env.query("SELECT model_type, version, status FROM model_registry")
    result = env.train()
    assert result.success, _errors(result)
    after = env.query("SELECT model_type, version, status FROM model_registry")
    assert len(after) == len(before) == 3
    assert sorted(after) == sorted(before)


def test_scoring_a_range_in_one_run_scores_every_valid_transaction_once(env: Env, trained):
    result = env.score()
    assert result.success, _errors(result)
    start, end = WEEK_END, WEEK_END + timedelta(hours=6)
    (arrived,) = env.query(
        "SELECT count() FROM crypto_transactions WHERE timestamp >= {s:DateTime('UTC')} "
        "AND timestamp < {e:DateTime('UTC')}",
        s=start,
        e=end,
    )[0]
    (scored, distinct) = env.query(
        "SELECT count(), uniqExact(transaction_id) FROM detected_anomalies_ensemble"
    )[0]
    (quarantined,) = env.query("SELECT count() FROM quarantined_transactions")[0]
    assert arrived > 0 and scored == distinct and scored + quarantined == arrived
    decisions = dict(
        env.query("SELECT final_decision, count() FROM detected_anomalies_ensemble GROUP BY 1")
    )
    assert set(decisions) <= {"approved", "review", "blocked"} and decisions.get("approved", 0) > 0
    versions = env.query("SELECT DISTINCT model_version FROM detected_anomalies_ensemble")
    active = env.query(
        "SELECT version FROM model_registry WHERE status = 'active' AND model_type = 'ensemble'"
    )
    assert versions == active
    metrics = env.query("SELECT model_type, total_predictions FROM daily_model_performance FINAL")
    assert {m[0] for m in metrics} == {"statistical", "isolation_forest", "autoencoder", "ensemble"}
    assert all(m[1] == scored for m in metrics)


def test_scored_rows_carry_their_top_reasons_in_words(env: Env, trained):
    """The reason-code settings reach the step as run config: the riskiest fifth of the run
    explained in full, at most two codes each, any positive evidence kept."""
    job = env.defs.resolve_job_def("ensemble_anomaly_detection")
    config = {"top_n": 2, "min_points": 0.0, "explain_top_fraction": 0.2}
    result = job.execute_in_process(
        instance=env.instance,
        tags={
            "dagster/asset_partition_range_start": FIRST_HOUR,
            "dagster/asset_partition_range_end": LAST_HOUR,
        },
        run_config={"ops": {"ensemble_decision": {"config": config}}},
        raise_on_error=False,
    )
    assert result.success, _errors(result)
    rows = env.query(
        "SELECT final_decision, reason_codes, decision_reasons FROM detected_anomalies_ensemble "
        "ORDER BY total_risk_score DESC"
    )
    assert max(len(r[1]) for r in rows) == 2
    riskiest = rows[: len(rows) // 5]
    assert sum(bool(r[1]) for r in riskiest) >= 0.9 * len(riskiest)
    assert all(r[1] for r in rows if r[0] != "approved"), "every flagged row has a reason"
    # A fired rule is always among the evidence: its row has a reason too.
    assert all(r[1] for r in rows if any(x.startswith("rule:") for x in r[2]))
    events = env.instance.get_latest_materialization_event(dg.AssetKey("ensemble_decision"))
    assert "top_blocked_reasons" in events.asset_materialization.metadata
    # The demo's summary lists the riskiest blocked rows with their reasons.
    top = env.query(_TOP_BLOCKED_SQL, start=WEEK_END, end=WEEK_END + timedelta(hours=6))
    assert len(top) <= 3 and all(reasons for _, _, reasons in top)


def test_rescoring_an_hour_leaves_results_and_metrics_unchanged(env: Env, trained):
    """Risks are compared to 3 decimals: BLAS sums a one-hour batch in another order than six."""
    env.score()
    snapshot = env.query(
        "SELECT transaction_id, final_decision, round(total_risk_score, 3) FROM detected_anomalies_ensemble ORDER BY 1"
    )
    metrics = env.query(
        "SELECT date, model_type, total_predictions, anomalies_detected FROM daily_model_performance FINAL ORDER BY 1, 2"
    )
    result = env.score(FIRST_HOUR, FIRST_HOUR)
    assert result.success, _errors(result)
    assert (
        env.query(
            "SELECT transaction_id, final_decision, round(total_risk_score, 3) FROM detected_anomalies_ensemble ORDER BY 1"
        )
        == snapshot
    )
    assert (
        env.query(
            "SELECT date, model_type, total_predictions, anomalies_detected FROM daily_model_performance FINAL ORDER BY 1, 2"
        )
        == metrics
    )
    (raw_rows,) = env.query("SELECT count() FROM daily_model_performance")[0]
    assert raw_rows == len(metrics), "one physical row per (date, model_type)"


def test_failed_quality_gates_stop_registration_and_promotion(env: Env, trained):
    before = env.query("SELECT model_type, version, status FROM model_registry ORDER BY 1, 2")
    job = env.defs.resolve_job_def("train_ensemble_models")
    result = job.execute_in_process(
        partition_key=WEEK_KEY,
        instance=env.instance,
        run_config={
            "ops": {
                **TRAIN_CONFIG["ops"],
                "validate_models_validation_quality_gates": {"config": {"min_roc_auc": 1.01}},
            }
        },
        raise_on_error=False,
    )
    assert not result.success
    assert "validation_quality_gates" in _errors(result)
    skipped = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert "register_models" not in skipped and "promote_to_production" not in skipped
    assert (
        env.query("SELECT model_type, version, status FROM model_registry ORDER BY 1, 2") == before
    )
