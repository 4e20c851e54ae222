"""The model registry's lifecycle on the real embedded engine."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fraud_assets import registry
from fraud_assets.clickhouse import ClickHouseResource


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


def test_no_active_model_is_a_clear_error(clickhouse: ClickHouseResource):
    with (
        clickhouse.get_client() as client,
        pytest.raises(registry.NoActiveModelError, match="train"),
    ):
        registry.active_version(client)


def test_register_promote_archive_and_rollback(clickhouse: ClickHouseResource):
    with clickhouse.get_client() as client:
        registry.register(client, _bundle("v20261101_abc", 1))
        assert registry.active_models(client) == {}
        assert registry.promote(client, "v20261101_abc", "first model") == []
        assert registry.active_version(client) == "v20261101_abc"

        registry.register(client, _bundle("v20261108_abc", 8))
        assert registry.promote(client, "v20261108_abc", "better") == ["v20261101_abc"]
        active = registry.active_models(client)
        assert {r.version for r in active.values()} == {"v20261108_abc"}
        statuses = {(r.model_type, r.version): r.status for r in registry.all_versions(client)}
        assert statuses[("autoencoder", "v20261101_abc")] == registry.ARCHIVED

        assert registry.rollback(client, "precision floor breached") == "v20261101_abc"
        assert registry.active_version(client) == "v20261101_abc"
        statuses = {(r.model_type, r.version): r.status for r in registry.all_versions(client)}
        assert statuses[("ensemble", "v20261108_abc")] == registry.ROLLED_BACK


def test_reregistering_a_version_is_idempotent_and_keeps_its_status(
    clickhouse: ClickHouseResource,
):
    with clickhouse.get_client() as client:
        registry.register(client, _bundle("v1", 1))
        registry.promote(client, "v1", "first")
        registry.register(client, _bundle("v1", 1))
        rows = client.query("SELECT model_type, status FROM model_registry").result_rows
    assert sorted(rows) == sorted((t, registry.ACTIVE) for t in registry.MODEL_TYPES)


def test_promotion_is_one_insert_so_readers_never_see_a_half_promoted_set(
    clickhouse: ClickHouseResource,
):
    """On a ClickHouse server readers run concurrently; one INSERT block is applied atomically."""
    with clickhouse.get_client() as client:
        registry.register(client, _bundle("v1", 1))
        registry.promote(client, "v1", "first")
        registry.register(client, _bundle("v2", 8))
        real_insert = client.insert
        inserts: list[int] = []

        def counting_insert(table, data, **kwargs):
            inserts.append(len(data))
            return real_insert(table, data, **kwargs)

        client.insert = counting_insert
        try:
            registry.promote(client, "v2", "next")
        finally:
            client.insert = real_insert
        active = registry.active_models(client)
    assert inserts == [6], "3 activations and 3 archivals in a single INSERT"
    assert {r.version for r in active.values()} == {"v2"} and len(active) == 3
