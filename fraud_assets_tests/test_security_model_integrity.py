"""Model integrity: a tampered or swapped artifact is refused at load and scoring fails safe.

The attacks, on the active bundle of a trained world: a flipped byte, a
swapped artifact directory (complete and self-consistent, but not the one
registered), a registry row whose sha256 does not match, and files replaced
by payloads that run code when unpickled — with the manifest and the registry
rewritten to match, as an attacker who controls both the volume and the
registry would. Every load is refused with an error that names the bundle,
the component and the reason; no payload runs; a scoring run writes no
decision and is not retried.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import shutil
import threading
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from fraud_assets import bundle_loader, registry
from fraud_assets.bundle_loader import UnverifiedModelError, load_component, prefetch_bundle
from fraud_assets.io.model_store import MANIFEST, sha256_file
from fraud_assets_tests.reliability_support import (  # noqa: F401 (fixtures)
    World,
    events_of,
    failures,
    hour,
    hour_key,
    world_fixture,
    world_template_fixture,
)

MARKER_NAME = "payload_ran"


class Payload:
    """Unpickling this creates a marker file: proof that loading ran attacker code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _record(world: World, model_type: str) -> registry.ModelRecord:
    with world.clickhouse.get_client() as client:
        return registry.get_version(client, world.active_version())[model_type]


def _directory(world: World, model_type: str) -> Path:
    return world.model_dir / _record(world, model_type).model_path


def _reseal(world: World, model_type: str) -> None:
    """Rewrite the manifest and the registry sha256 to match the files (a full compromise)."""
    directory = _directory(world, model_type)
    manifest = json.loads((directory / MANIFEST).read_text())
    for name in manifest["files"]:
        path = directory / name
        manifest["files"][name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    raw = json.dumps(manifest, indent=1, sort_keys=True).encode()
    (directory / MANIFEST).write_bytes(raw)
    record = _record(world, model_type)
    with world.clickhouse.get_client() as client:
        registry.register(
            client, [dataclasses.replace(record, model_sha256=hashlib.sha256(raw).hexdigest())]
        )


def _flip_byte(world: World, model_type: str) -> None:
    path = _directory(world, model_type) / (
        "model.skops" if model_type == "isolation_forest" else "weights.npz"
    )
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _swap_directory(world: World, model_type: str) -> None:
    """Replace the artifact with another complete artifact (its own valid manifest)."""
    target = _directory(world, model_type)
    other = _directory(world, "autoencoder" if model_type == "isolation_forest" else "ensemble")
    shutil.rmtree(target)
    shutil.copytree(other, target)


def _wrong_registry_sha(world: World, model_type: str) -> None:
    record = _record(world, model_type)
    with world.clickhouse.get_client() as client:
        registry.register(client, [dataclasses.replace(record, model_sha256="0" * 64)])


def _pickle_payload(world: World, model_type: str) -> None:
    marker = world.root / MARKER_NAME
    directory = _directory(world, model_type)
    if model_type == "isolation_forest":
        (directory / "model.skops").write_bytes(pickle.dumps(Payload(marker)))
    else:  # an .npz whose array is a pickled object
        with (directory / "weights.npz").open("wb") as handle:
            np.savez(handle, mean=np.array([Payload(marker)], dtype=object))
    _reseal(world, model_type)


def _skops_untrusted_type(world: World, model_type: str) -> None:
    import skops.io as sio

    directory = _directory(world, model_type)
    sio.dump({"estimator": Payload(world.root / MARKER_NAME)}, directory / "model.skops")
    _reseal(world, model_type)


TAMPERING = {
    "flipped_byte": (_flip_byte, "changed since it was stored"),
    "swapped_artifact": (_swap_directory, "differs from the recorded"),
    "wrong_registry_sha256": (_wrong_registry_sha, "differs from the recorded"),
    "pickle_payload": (_pickle_payload, "not a skops file|allow_pickle|Object arrays"),
    "skops_untrusted_type": (_skops_untrusted_type, "outside the allowlist"),
}
CASES = [
    ("flipped_byte", "isolation_forest"),
    ("flipped_byte", "autoencoder"),
    ("swapped_artifact", "isolation_forest"),
    ("wrong_registry_sha256", "autoencoder"),
    ("pickle_payload", "isolation_forest"),
    ("pickle_payload", "autoencoder"),
    ("skops_untrusted_type", "isolation_forest"),
]


def test_untouched_bundle_loads(world: World):
    with world.clickhouse.get_client() as client:
        version = registry.active_version(client)
        for component in ("scaler", "isolation_forest", "autoencoder", "thresholds"):
            assert load_component(client, version, component) is not None


def test_prefetched_bundle_is_what_the_steps_load(world: World):
    bundle_loader._load_artifact.cache_clear()
    version = world.active_version()
    with world.clickhouse.get_client() as client:
        prefetch_bundle(client, version).join(timeout=120)
        loaded = bundle_loader._load_artifact.cache_info()
        assert loaded.currsize == len(bundle_loader.COMPONENTS)
        for component in bundle_loader.COMPONENTS:
            load_component(client, version, component)
    after = bundle_loader._load_artifact.cache_info()
    assert after.misses == loaded.misses, "every piece came from the prefetched cache"


def test_the_first_scoring_step_starts_loading_the_active_bundle(world: World):
    from fraud_assets.assets import scoring

    _join_prefetches()  # an earlier test's loads must not land in the cache counted below
    bundle_loader._load_artifact.cache_clear()
    result = dg.materialize(
        [scoring.extract_transactions],
        resources=world.resources(),
        partition_key=hour_key(hour(0)),
        instance=world.instance,
    )
    assert result.success
    _join_prefetches()  # still loading, or done already
    assert bundle_loader._load_artifact.cache_info().currsize == len(bundle_loader.COMPONENTS)


def _join_prefetches() -> None:
    for thread in threading.enumerate():
        if thread.name.startswith("prefetch "):
            thread.join(timeout=120)


def test_prefetching_a_tampered_bundle_reports_nothing_and_the_step_refuses(world: World):
    bundle_loader._load_artifact.cache_clear()
    _pickle_payload(world, "isolation_forest")
    version = world.active_version()
    with world.clickhouse.get_client() as client:
        prefetch_bundle(client, version).join(timeout=120)  # raises nothing
        with pytest.raises(UnverifiedModelError, match="refusing to load its isolation_forest"):
            load_component(client, version, "isolation_forest")
    assert not (world.root / MARKER_NAME).exists(), "the payload must never run"


@pytest.mark.parametrize(("attack", "model_type"), CASES, ids=["-".join(c) for c in CASES])
def test_tampered_artifact_is_refused_at_load(world: World, attack: str, model_type: str):
    tamper, reason = TAMPERING[attack]
    version = world.active_version()
    with world.clickhouse.get_client() as client:
        load_component(client, version, model_type)  # cached in this process before the attack
    tamper(world, model_type)
    with (
        world.clickhouse.get_client() as client,
        pytest.raises(UnverifiedModelError, match=reason) as refused,
    ):
        load_component(client, version, model_type)
    message = str(refused.value)
    assert version in message and f"its {model_type}" in message
    assert refused.value.allow_retries is False
    assert not (world.root / MARKER_NAME).exists(), "the payload must never run"


@pytest.mark.parametrize("attack", ["flipped_byte", "pickle_payload"])
def test_scoring_with_a_tampered_model_fails_safe(world: World, attack: str):
    """The run fails at the model step, once, with the reason; no decision is written."""
    tamper, reason = TAMPERING[attack]
    tamper(world, "isolation_forest")
    result = world.score(hour(1))
    assert not result.success
    failed = failures(result)
    assert "isolation_forest_prediction" in failed and "refusing to load its isolation_forest" in (
        failed
    )
    assert events_of(result, "STEP_UP_FOR_RETRY") == [], "integrity failures are not retried"
    done = {e.step_key for e in events_of(result, "STEP_SUCCESS")}
    assert not done & {"ensemble_decision", "detected_anomalies_ensemble", "send_alerts"}
    assert world.query("SELECT count() FROM detected_anomalies_ensemble") == [(0,)]
    assert not (world.root / MARKER_NAME).exists()
