"""Monitoring end to end on generated data: trained bundles, the scoring graph, the checks.

Two weekly versions are trained by the training job (which also stores their
drift references); scoring runs carry the drift checks; injected performance
decay (frauds labelled on approved transactions) makes the daily matured-label
asset roll the registry back, and the next scoring run uses the previous
models. Injected drift (amounts × 100 in a few hours) fails the feature drift
check on the amount features.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from fraud_assets import registry
from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets.generator.config import GeneratorConfig
from fraud_assets.generator.load import generate_into_clickhouse
from fraud_assets.io import ClickHousePandasIOManager, ClickHousePolarsIOManager, ModelIOManager
from fraud_assets.io.intermediate import IntermediateFrameIOManager
from fraud_assets.monitoring import drift_sql, snapshots
from fraud_assets.notify import NotifierResource

WEEK1, WEEK2 = "2026-11-01", "2026-11-08"  # ending Sunday 2026-11-08 / 2026-11-15 02:00 UTC
DAY1, DAY2 = date(2026, 11, 15), date(2026, 11, 16)
TRAIN_CONFIG = {
    "ops": {
        "train_autoencoder": {"config": {"epochs": 2, "batch_size": 64}},
        "train_isolation_forest": {"config": {"n_estimators": 50}},
        # the second version must be promoted for the rollback to have somewhere to go
        "a_b_test": {"config": {"max_alert_rate_increase": 100.0, "max_recall_drop": 1.0}},
    }
}
CHECK_CONFIG = {"config": {"min_rows": 40, "max_window_hours": 6}}  # 350 users: ~20 rows an hour
SCORE_CONFIG = {
    "ops": {
        "feature_snapshots_feature_drift": CHECK_CONFIG,
        "detected_anomalies_ensemble_score_drift": CHECK_CONFIG,
    }
}
MATURED_CONFIG = {
    "label_delay_days": 1,
    "consecutive_days": 2,
    "min_recall": 0.5,
    "min_precision": None,
    "max_fp_rate": None,
    "min_decisions": 50,
    "min_frauds": 5,
}


class Env:
    def __init__(self, root: Path):
        self.dsn = f"chdb://{root / 'clickhouse'}"
        self.clickhouse = ClickHouseResource(dsn=self.dsn)
        self.instance = dg.DagsterInstance.ephemeral()
        resources = {
            "clickhouse": self.clickhouse,
            "polars_io_manager": ClickHousePolarsIOManager(dsn=self.dsn),
            "clickhouse_io_manager": ClickHousePandasIOManager(dsn=self.dsn),
            "model_io_manager": ModelIOManager(root=str(root / "models")),
            "intermediate_io_manager": IntermediateFrameIOManager(root=str(root / "intermediate")),
            "notifier": NotifierResource(),
        }
        from fraud_assets.assets import monitoring, scoring, training

        # The hourly scoring job with the feature snapshot (and so both drift checks).
        scoring_with_snapshots = dg.define_asset_job(
            "scoring_with_snapshots",
            selection=dg.AssetSelection.assets(
                *scoring.SCORING_ASSETS, monitoring.feature_snapshots
            ),
        )
        # The weekly training job without its quality gates: they are tested in test_graphs,
        # and this test needs two promoted versions whatever 350 users' labels allow.
        training_without_gates = dg.define_asset_job(
            "training_without_gates",
            selection=dg.AssetSelection.groups(training.GROUP).without_checks(),
            partitions_def=training.weekly_partitions,
        )
        self.defs = dg.Definitions.merge(
            training.defs,
            scoring.defs,
            monitoring.defs,
            dg.Definitions(
                resources=resources, jobs=[scoring_with_snapshots, training_without_gates]
            ),
        )

    def train(self, partition_key: str):
        return self.defs.resolve_job_def("training_without_gates").execute_in_process(
            partition_key=partition_key,
            instance=self.instance,
            run_config=TRAIN_CONFIG,
            raise_on_error=False,
        )

    def score(self, first: str, last: str):
        return self.defs.resolve_job_def("scoring_with_snapshots").execute_in_process(
            instance=self.instance,
            run_config=SCORE_CONFIG,
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last,
            },
            raise_on_error=False,
        )

    def matured(self, as_of: date):
        return self.defs.resolve_job_def("monitor_matured_labels").execute_in_process(
            partition_key=as_of.isoformat(),
            instance=self.instance,
            run_config={"ops": {"matured_label_performance": {"config": MATURED_CONFIG}}},
            raise_on_error=False,
        )

    def query(self, sql: str, **parameters):
        with self.clickhouse.get_client() as client:
            return client.query(sql, parameters=parameters).result_rows

    def active(self) -> str:
        with self.clickhouse.get_client() as client:
            return registry.active_version(client)


def _errors(result) -> str:
    return "\n".join(
        f"{e.step_key}: {e.event_specific_data.error.message}"
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    )


def _checks(result) -> dict:
    return {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def _materialization(result, key: str) -> dict:
    events = [
        m for m in result.get_asset_materialization_events() if m.asset_key.to_user_string() == key
    ]
    assert events, f"no {key} materialization"
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("monitoring_graphs")
    mp = pytest.MonkeyPatch()
    mp.setenv("FRAUD_MODEL_DIR", str(root / "models"))
    environment = Env(root)
    generate_into_clickhouse(
        environment.clickhouse,
        GeneratorConfig(
            start=datetime(2026, 10, 8, tzinfo=UTC),
            end=datetime(2026, 11, 17, tzinfo=UTC),
            users=350,
        ),
    )
    yield environment
    mp.undo()


@pytest.fixture(scope="module")
def versions(env: Env) -> tuple[str, str]:
    found = []
    for week in (WEEK1, WEEK2):
        result = env.train(week)
        assert result.success, _errors(result)
        found.append(_materialization(result, "drift_reference")["model_version"])
    assert env.active() == found[1]
    return found[0], found[1]


def test_training_stores_drift_references_per_version(env: Env, versions):
    rows = env.query(
        "SELECT model_version, series, count(), min(rows), max(length(counts)) "
        "FROM drift_reference FINAL GROUP BY model_version, series ORDER BY 1, 2"
    )
    features = len(snapshots.monitored_features())
    scores = len(drift_sql.SCORE_COLUMNS)
    assert [(v, s, n) for v, s, n, _, _ in rows] == [
        (versions[0], "feature", features),
        (versions[0], "score", scores),
        (versions[1], "feature", features),
        (versions[1], "score", scores),
    ]
    assert all(reference_rows > 1000 and bins >= 2 for *_, reference_rows, bins in rows)


def test_scoring_runs_snapshot_features_and_both_drift_checks(env: Env, versions):
    for day in (DAY1, DAY2):
        result = env.score(f"{day:%Y-%m-%d}-02:00", f"{day:%Y-%m-%d}-07:00")
        assert result.success, _errors(result)
        checks = _checks(result)
        assert set(checks) == {"feature_drift", "score_drift"}
        for check in checks.values():
            assert check.metadata["hours"].value == 6
            assert check.metadata["hours_judged"].value >= 1
            assert check.metadata["seconds"].value < 60
    (scored,) = env.query("SELECT count() FROM detected_anomalies_ensemble")[0]
    (snapshotted, versions_seen) = env.query(
        "SELECT count(), groupUniqArray(model_version) FROM feature_snapshots"
    )[0]
    assert scored == snapshotted > 0 and versions_seen == [versions[1]]


def test_performance_decay_rolls_back_and_the_next_run_uses_the_previous_models(env: Env, versions):
    previous, current = versions
    # Decay: frauds surface on transactions the active bundle approved (labels within a day).
    with env.clickhouse.get_client() as client:
        for day in (DAY1, DAY2):
            approved = client.query(
                "SELECT transaction_id FROM detected_anomalies_ensemble "
                "WHERE toDate(timestamp) = {day:Date} AND final_decision = 'approved' "
                "ORDER BY transaction_id LIMIT 40",
                parameters={"day": day},
            ).result_rows
            labeled_at = datetime(day.year, day.month, day.day, 23, tzinfo=UTC)
            client.insert(
                "transaction_labels",
                [[tx, 1, "account_takeover", labeled_at, "analyst"] for (tx,) in approved],
                column_names=["transaction_id", "is_fraud", "fraud_type", "labeled_at", "source"],
            )

    first = env.matured(DAY2)  # labels known by the end of DAY2 → measures DAY1
    assert first.success, _errors(first)
    meta = _materialization(first, "matured_label_performance")
    assert meta["evaluated_date"] == DAY1.isoformat() and meta["recall"] < 0.5
    assert meta["action"] == "none: 1 of 2 consecutive breached day(s)"
    assert env.active() == current

    second = env.matured(DAY2 + timedelta(days=1))  # measures DAY2: the second breached day
    assert second.success, _errors(second)
    meta = _materialization(second, "matured_label_performance")
    assert meta["rolled_back"] == current and meta["restored"] == previous
    assert _materialization(second, "production_models")["version"] == previous
    assert env.active() == previous
    statuses = {
        version: status
        for _, version, status in env.query(
            "SELECT model_type, version, status FROM model_registry FINAL WHERE model_type = 'ensemble'"
        )
    }
    assert statuses == {previous: registry.ACTIVE, current: registry.ROLLED_BACK}

    result = env.score("2026-11-16-08:00", "2026-11-16-08:00")
    assert result.success, _errors(result)
    scored_by = env.query(
        "SELECT DISTINCT model_version FROM detected_anomalies_ensemble "
        "WHERE timestamp >= toDateTime('2026-11-16 08:00:00', 'UTC') "
        "AND timestamp < toDateTime('2026-11-16 09:00:00', 'UTC')"
    )
    assert scored_by == [(previous,)]


def test_injected_drift_fails_the_feature_drift_check_on_the_shifted_feature(env: Env, versions):
    with env.clickhouse.get_client() as client:
        client.command(
            "ALTER TABLE crypto_transactions UPDATE amount = amount * 100 "
            "WHERE timestamp >= toDateTime('2026-11-16 09:00:00', 'UTC') "
            "AND timestamp < toDateTime('2026-11-16 15:00:00', 'UTC')",
            settings={"mutations_sync": 2},
        )
    result = env.score("2026-11-16-09:00", "2026-11-16-14:00")
    assert result.success, _errors(result)
    check = _checks(result)["feature_drift"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    breaches = check.metadata["breaches"].value
    assert "| log_amount |" in breaches and "| amount |" in breaches
    assert "error" in breaches
