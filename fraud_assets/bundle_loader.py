"""Load a registered model bundle from the model volume, verifying every artifact.

The registry row of each model type holds the artifact path and its sha256;
the model store refuses a missing, changed or foreign artifact, so scoring
fails safe instead of deciding with an unverified model. The refusal is an
``UnverifiedModelError``: a ``dagster.Failure`` that is never retried (the same
files fail the same way) and names the bundle, the component and the reason.
Deserialised artifacts are cached per process by (path, sha256), so a
single-run backfill parses each model once, but the files are checked against
their manifest on every load: an artifact changed after it was cached is
refused too.
"""

from __future__ import annotations

import functools
from typing import Any

import dagster as dg
from clickhouse_connect.driver.client import Client

from fraud_assets import registry, settings
from fraud_assets.bundle import ModelThresholds, ScoringBundle


class UnverifiedModelError(dg.Failure):
    """A bundle component that failed verification: nothing is scored with it, no retries."""

    def __init__(self, description: str) -> None:
        super().__init__(description=description, allow_retries=False)


@functools.lru_cache(maxsize=16)
def _load_artifact(root: str, path: str, sha256: str) -> Any:
    from fraud_assets.io import ModelStore

    return ModelStore(root).load(path, expected_sha256=sha256)


def load_artifact(path: str, sha256: str) -> Any:
    from fraud_assets.io import ModelStore

    if not sha256:
        raise registry.NoActiveModelError(f"registry has no sha256 for {path}: refusing to load it")
    root = str(settings.model_dir())
    ModelStore(root).verify(path, expected_sha256=sha256)
    return _load_artifact(root, path, sha256)


def _refusal(version: str, component: str, path: str, exc: Exception) -> UnverifiedModelError:
    return UnverifiedModelError(
        f"model bundle {version}: refusing to load its {component} ({path}): {exc}. No "
        "transaction is scored with an unverified model; restore the artifact or retrain and "
        "promote a new version."
    )


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
        path, sha256 = records["ensemble"].scaler_path, records["ensemble"].scaler_sha256
    elif component == "thresholds":
        path, sha256 = records["ensemble"].model_path, records["ensemble"].model_sha256
    else:
        path, sha256 = records[component].model_path, records[component].model_sha256
    try:
        artifact = load_artifact(path, sha256)
    except Exception as exc:  # changed, missing, foreign or unparsable: all refused alike
        raise _refusal(version, component, path, exc) from exc
    if component == "thresholds" and not isinstance(artifact, ModelThresholds):
        raise _refusal(version, component, path, TypeError(f"it holds {type(artifact).__name__}"))
    return artifact


def load_bundle(client: Client, version: str) -> ScoringBundle:
    return ScoringBundle(
        version=version,
        scaler=load_component(client, version, "scaler"),
        isolation_forest=load_component(client, version, "isolation_forest"),
        autoencoder=load_component(client, version, "autoencoder"),
        thresholds=load_component(client, version, "thresholds"),
    )
