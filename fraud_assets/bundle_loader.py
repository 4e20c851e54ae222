"""Load a registered model bundle from the model volume, verifying every artifact.

The registry row of each model type holds the artifact path and its sha256;
the model store refuses a missing, changed or foreign artifact, so scoring
fails safe instead of deciding with an unverified model. Loaded artifacts are
cached per process by (path, sha256): a single-run backfill loads each model
once.
"""

from __future__ import annotations

import functools
from typing import Any

from clickhouse_connect.driver.client import Client

from fraud_assets import registry, settings
from fraud_assets.bundle import ModelThresholds, ScoringBundle


@functools.lru_cache(maxsize=16)
def _load_artifact(root: str, path: str, sha256: str) -> Any:
    from fraud_assets.io import ModelStore

    return ModelStore(root).load(path, expected_sha256=sha256)


def load_artifact(path: str, sha256: str) -> Any:
    if not sha256:
        raise registry.NoActiveModelError(f"registry has no sha256 for {path}: refusing to load it")
    return _load_artifact(str(settings.model_dir()), path, sha256)


def _records(client: Client, version: str) -> dict[str, registry.ModelRecord]:
    records = registry.get_version(client, version)
    missing = set(registry.MODEL_TYPES) - set(records)
    if missing:
        raise registry.NoActiveModelError(
            f"model bundle {version} lacks {sorted(missing)} in model_registry"
        )
    return records


def load_component(client: Client, version: str, component: str) -> Any:
    """One piece of a bundle: 'scaler', 'isolation_forest', 'autoencoder' or 'thresholds'."""
    records = _records(client, version)
    if component == "scaler":
        record = records["ensemble"]
        return load_artifact(record.scaler_path, record.scaler_sha256)
    if component == "thresholds":
        record = records["ensemble"]
        thresholds = load_artifact(record.model_path, record.model_sha256)
        if not isinstance(thresholds, ModelThresholds):
            raise TypeError(
                f"{record.model_path} holds {type(thresholds).__name__}, not thresholds"
            )
        return thresholds
    record = records[component]
    return load_artifact(record.model_path, record.model_sha256)


def load_bundle(client: Client, version: str) -> ScoringBundle:
    return ScoringBundle(
        version=version,
        scaler=load_component(client, version, "scaler"),
        isolation_forest=load_component(client, version, "isolation_forest"),
        autoencoder=load_component(client, version, "autoencoder"),
        thresholds=load_component(client, version, "thresholds"),
    )
