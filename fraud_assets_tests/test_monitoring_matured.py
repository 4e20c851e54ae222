"""Matured-label performance and the automatic rollback, on the real embedded engine.

Decisions and labels are written by hand so every count is known; the registry
holds two registered bundles (their artifacts are never loaded here: the
rollback is a registry change). The end-to-end version, with trained models
and the scoring graph picking up the restored version, is in
test_monitoring_graphs.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from fraud_assets import registry
from fraud_assets.assets import monitoring
from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets.monitoring import matured
from fraud_assets.notify import NotifierResource

V1, V2 = "v20261101_abc", "v20261108_abc"
DAY1, DAY2 = date(2026, 11, 10), date(2026, 11, 11)


def _bundle(version: str, day: int) -> list[registry.ModelRecord]:
    return [
        registry.ModelRecord(
            model_type=model_type,
            version=version,
            trained_at=datetime(2026, 11, day, 2, tzinfo=UTC),
            training_samples=1000,
            model_path=f"/models/{model_type}/{version}",
            scaler_path=f"/models/scaler/{version}",
            model_sha256="ab" * 32,
        )
        for model_type in registry.MODEL_TYPES
    ]


def _decisions(
    client, day: date, version: str, flagged: int, approved: int, prefix: str
) -> list[str]:
    """Write decisions for ``day``; returns the transaction ids, flagged first."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    ids = [f"{prefix}{i}" for i in range(flagged + approved)]
    rows = [
        [
            tx,
            start + timedelta(minutes=i),
            "u1",
            10.0,
            "review" if i < flagged else "approved",
            version,
        ]
        for i, tx in enumerate(ids)
    ]
    client.insert(
        "detected_anomalies_ensemble",
        rows,
        column_names=[
            "transaction_id",
            "timestamp",
            "user_id",
            "amount",
            "final_decision",
            "model_version",
        ],
    )
    return ids


def _labels(client, ids: list[str], is_fraud: int, labeled_at: datetime) -> None:
    client.insert(
        "transaction_labels",
        [
            [tx, is_fraud, "account_takeover" if is_fraud else "", labeled_at, "analyst"]
            for tx in ids
        ],
        column_names=["transaction_id", "is_fraud", "fraud_type", "labeled_at", "source"],
    )


# ------------------------------------------------------------------ pure rules


def test_floors_breaches_and_evaluability():
    day = matured.DayPerformance(DAY1, DAY2, V1, 1, 1000, 100, 20, 5, 95, 15, 885)
    assert day.precision == 0.05 and day.recall == 0.25 and day.fp_rate == pytest.approx(95 / 980)
    day.judge(matured.Floors(min_precision=0.1, min_recall=0.3, max_fp_rate=0.05))
    assert day.evaluable
    assert day.breaches == [
        "precision 0.050 < 0.100",
        "recall 0.250 < 0.300",
        "FP rate 0.097 > 0.050",
    ]
    day.judge(matured.Floors(min_precision=None, min_recall=None, max_fp_rate=None))
    assert day.breaches == []
    thin = matured.DayPerformance(DAY1, DAY2, V1, 1, 50, 0, 1, 0, 0, 1, 49).judge(matured.Floors())
    assert not thin.evaluable and thin.breaches == [] and thin.precision is None


def test_only_consecutive_breached_days_call_for_rollback():
    history = {DAY1: ["recall 0.1 < 0.3"], DAY2: ["recall 0.1 < 0.3"]}
    assert matured.breached_every_day(history, DAY2, 2)
    assert not matured.breached_every_day(history, DAY2, 3)
    assert not matured.breached_every_day({DAY2: ["x"], DAY1: []}, DAY2, 2)
    assert not matured.breached_every_day({DAY2: ["x"]}, DAY2 + timedelta(days=1), 1)


# ------------------------------------------------------------------ SQL


def test_measure_day_counts_only_labels_known_by_the_as_of_day(clickhouse: ClickHouseResource):
    known_by = datetime(2026, 11, 12, tzinfo=UTC)  # end of as-of day 2026-11-11
    with clickhouse.get_client() as client:
        ids = _decisions(client, DAY1, V1, flagged=10, approved=90, prefix="a")
        _decisions(client, DAY1, V2, flagged=1, approved=9, prefix="b")
        _decisions(client, DAY2, V1, flagged=5, approved=5, prefix="c")  # another day: ignored
        _labels(client, ids[:4], 1, known_by - timedelta(hours=1))  # 4 flagged frauds
        _labels(client, ids[10:13], 1, known_by - timedelta(hours=1))  # 3 missed frauds
        _labels(client, ids[13:15], 1, known_by + timedelta(hours=1))  # not known yet
        _labels(client, ids[4:5], 1, known_by - timedelta(days=2))
        _labels(client, ids[4:5], 0, known_by - timedelta(days=1))  # latest label wins: legit
        days = matured.measure_day(client, DAY1, DAY2, label_delay_days=1)
    by_version = {d.model_version: d for d in days}
    ours = by_version[V1]
    assert (ours.decisions, ours.flagged, ours.frauds) == (100, 10, 7)
    assert (ours.true_positives, ours.false_positives) == (4, 6)
    assert (ours.false_negatives, ours.true_negatives) == (3, 87)
    assert by_version[V2].decisions == 10 and by_version[V2].frauds == 0


# ------------------------------------------------------------------ the asset


@pytest.fixture
def two_versions(clickhouse: ClickHouseResource) -> ClickHouseResource:
    with clickhouse.get_client() as client:
        registry.register(client, _bundle(V1, 1))
        registry.promote(client, V1, "first")
        registry.register(client, _bundle(V2, 8))
        registry.promote(client, V2, "second")
    return clickhouse


def _run(clickhouse, as_of: date, instance, **config):
    return dg.materialize(
        [monitoring.matured_label_performance],
        partition_key=as_of.isoformat(),
        instance=instance,
        resources={"clickhouse": clickhouse, "notifier": NotifierResource()},
        run_config={
            "ops": {
                "matured_label_performance": {
                    "config": {"label_delay_days": 1, "consecutive_days": 2, "min_decisions": 50}
                    | config
                }
            }
        },
    )


def _decayed_day(client, day: date, prefix: str) -> None:
    """Most frauds approved: recall 2/12."""
    ids = _decisions(client, day, V2, flagged=5, approved=195, prefix=prefix)
    labeled = datetime(day.year, day.month, day.day, 20, tzinfo=UTC)
    _labels(client, ids[:2], 1, labeled)
    _labels(client, ids[5:15], 1, labeled)


def _metadata(result, key: str = "matured_label_performance") -> dict:
    (event,) = [
        m for m in result.get_asset_materialization_events() if m.asset_key.to_user_string() == key
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_k_breached_days_roll_back_to_the_previous_version_once(two_versions: ClickHouseResource):
    instance = dg.DagsterInstance.ephemeral()
    with two_versions.get_client() as client:
        _decayed_day(client, DAY1, "d1-")
        _decayed_day(client, DAY2, "d2-")

    first = _run(two_versions, DAY2, instance)  # measures DAY1
    meta = _metadata(first)
    assert meta["evaluated_date"] == DAY1.isoformat()
    assert meta["recall"] == pytest.approx(2 / 12)
    assert meta["action"] == "none: 1 of 2 consecutive breached day(s)"
    with two_versions.get_client() as client:
        assert registry.active_version(client) == V2

    second = _run(two_versions, DAY2 + timedelta(days=1), instance)  # measures DAY2
    meta = _metadata(second)
    assert meta["rolled_back"] == V2 and meta["restored"] == V1
    assert meta["notify/log"].startswith("delivered")
    production = _metadata(second, "production_models")
    assert production["version"] == V1 and production["rolled_back"] == V2
    assert "recall 0.167 < 0.500" in production["reason"]
    with two_versions.get_client() as client:
        assert registry.active_version(client) == V1
        statuses = {
            r.version: r for r in registry.all_versions(client) if r.model_type == "ensemble"
        }
        stored = client.query(
            "SELECT evaluated_date, model_version, breaches FROM model_performance_matured FINAL "
            "ORDER BY evaluated_date"
        ).result_rows
    assert (
        statuses[V2].status == registry.ROLLED_BACK and "consecutive" in statuses[V2].status_reason
    )
    assert statuses[V1].status == registry.ACTIVE
    assert [(d, v) for d, v, _ in stored] == [(DAY1, V2), (DAY2, V2)]
    assert all(b for _, _, b in stored)

    again = _run(two_versions, DAY2 + timedelta(days=1), instance)  # re-materialized: no-op
    assert _metadata(again)["action"].startswith("none: no decisions by the active version")
    with two_versions.get_client() as client:
        assert registry.active_version(client) == V1


def test_healthy_days_and_disabled_rollback_change_nothing(two_versions: ClickHouseResource):
    instance = dg.DagsterInstance.ephemeral()
    with two_versions.get_client() as client:
        for day, prefix in ((DAY1, "h1-"), (DAY2, "h2-")):
            ids = _decisions(client, day, V2, flagged=10, approved=190, prefix=prefix)
            _labels(client, ids[:8], 1, datetime(day.year, day.month, day.day, 20, tzinfo=UTC))
    _run(two_versions, DAY2, instance)
    meta = _metadata(_run(two_versions, DAY2 + timedelta(days=1), instance))
    assert meta["recall"] == 1.0 and meta["action"] == "none: 0 of 2 consecutive breached day(s)"

    notified = _run(
        two_versions, DAY2 + timedelta(days=1), instance, min_recall=1.01, rollback=False
    )
    assert _metadata(notified)["action"] == "none: 1 of 2 consecutive breached day(s)"
    _run(two_versions, DAY2, instance, min_recall=1.01, rollback=False)
    meta = _metadata(
        _run(two_versions, DAY2 + timedelta(days=1), instance, min_recall=1.01, rollback=False)
    )
    assert meta["action"] == "notified only (rollback disabled)"
    with two_versions.get_client() as client:
        assert registry.active_version(client) == V2
