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

``prefetch_bundle`` fills that cache from a background thread: loading a
bundle costs seconds (scikit-learn's import, skops' scan of its trusted
types), which the hourly graph overlaps with reading the hour and its
features instead of paying in its model steps (100k-transaction hour: job
10.5–11.4 → 9.2–9.3 s started from the features step, 8.7–9.3 → 7.5–8.2 s
started from the first step). Loads take turns, so a step that needs an
artifact being prefetched waits for it instead of loading it twice.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any

import dagster as dg
from clickhouse_connect.driver.client import Client

from fraud_assets import registry, settings
from fraud_assets.bundle import ModelThresholds, ScoringBundle

COMPONENTS = ("scaler", "autoencoder", "thresholds", "isolation_forest")  # the steps' order
_one_load_at_a_time = threading.Lock()


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
    with _one_load_at_a_time:
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


def _artifact(records: dict[str, registry.ModelRecord], component: str) -> tuple[str, str]:
    """The path and sha256 of one piece of a bundle."""
    if component == "scaler":
        return records["ensemble"].scaler_path, records["ensemble"].scaler_sha256
    if component == "thresholds":
        return records["ensemble"].model_path, records["ensemble"].model_sha256
    return records[component].model_path, records[component].model_sha256


def prefetch_bundle(client: Client, version: str) -> threading.Thread | None:
    """Start loading the bundle's artifacts into this process's cache; the loading thread.

    Best effort: nothing is reported from it. A piece that fails to load (or a
    bundle the registry does not complete) is left to the step that needs it,
    which refuses it as ``load_component`` does.
    """
    try:
        records = _records(client, version)
    except registry.NoActiveModelError:
        return None
    artifacts = [_artifact(records, component) for component in COMPONENTS]

    def load_all() -> None:
        for path, sha256 in artifacts:
            with contextlib.suppress(Exception):
                load_artifact(path, sha256)

    thread = threading.Thread(target=load_all, name=f"prefetch {version}", daemon=True)
    thread.start()
    return thread


def prefetch_active_bundle(client: Client) -> threading.Thread | None:
    """``prefetch_bundle`` for the active bundle; None when no bundle is promoted.

    The hourly graph calls it from its first step, so the model imports
    overlap reading the hour. Whether a bundle is active is left to the steps
    that need one: they fail with the registry's message.
    """
    try:
        version = registry.active_version(client)
    except registry.NoActiveModelError:
        return None
    return prefetch_bundle(client, version)


def load_component(client: Client, version: str, component: str) -> Any:
    """One piece of a bundle: 'scaler', 'isolation_forest', 'autoencoder' or 'thresholds'."""
    path, sha256 = _artifact(_records(client, version), component)
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
