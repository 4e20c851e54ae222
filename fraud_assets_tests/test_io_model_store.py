"""The model store and the model IO manager on a real folder, with real skops and Keras files."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.preprocessing import StandardScaler

from fraud_assets.io import ArtifactRef, ModelIntegrityError, ModelIOManager, ModelStore
from fraud_assets.io.formats import UntrustedArtifactError, dump_skops, load_skops
from fraud_assets.io.model_store import MANIFEST

TEST_PREFIXES = ("fraud_assets.", "fraud_assets_tests.")


class Weights:
    """A tiny artifact with the detectors' protocol: native files in, native files out."""

    def __init__(self, values: list[float], threshold: float = 0.5) -> None:
        self.values = values
        self.threshold = threshold

    def save(self, directory: Path) -> None:
        np.save(directory / "weights.npy", np.asarray(self.values))
        (directory / "threshold.json").write_text(json.dumps({"threshold": self.threshold}))

    @classmethod
    def load(cls, directory: Path) -> "Weights":
        values = np.load(directory / "weights.npy", allow_pickle=False).tolist()
        threshold = json.loads((directory / "threshold.json").read_text())["threshold"]
        return cls(values, threshold)


class CrashingWeights(Weights):
    def save(self, directory: Path) -> None:
        (directory / "weights.npy").write_bytes(b"half a file")
        raise OSError("disk full")


class KerasModel:
    """A Keras model saved as ``.keras`` and loaded with safe_mode through ``formats``."""

    def __init__(self, model) -> None:
        self.model = model

    def save(self, directory: Path) -> None:
        self.model.save(directory / "model.keras")

    @classmethod
    def load(cls, directory: Path) -> "KerasModel":
        from fraud_assets.io.formats import load_keras

        return cls(load_keras(directory / "model.keras"))


@pytest.fixture
def store(model_dir: Path) -> ModelStore:
    return ModelStore(model_dir, loader_prefixes=TEST_PREFIXES)


def test_round_trip_layout_and_ref(store: ModelStore, model_dir: Path):
    ref = store.save(
        Weights([1.0, 2.0], 0.7),
        asset="train_isolation_forest",
        version="v20250302_abc",
        partition="2025-02-23-02:00",
    )
    assert ref.path == "train_isolation_forest/2025-02-23-02_00/v20250302_abc"
    assert ArtifactRef.from_dict(ref.to_dict()) == ref
    loaded = store.load(ref)
    assert (loaded.values, loaded.threshold) == ([1.0, 2.0], 0.7)
    manifest = json.loads((model_dir / ref.path / MANIFEST).read_text())
    assert manifest["class"].endswith("test_io_model_store.Weights")
    assert set(manifest["files"]) == {"weights.npy", "threshold.json"}
    assert store.load(model_dir / ref.path, expected_sha256=ref.sha256).values == [1.0, 2.0]
    json_ref = store.save_json({"a": 1}, asset="cfg", version="1")
    assert json_ref.path == "cfg/_/1" and store.load(json_ref) == {"a": 1}
    assert not list((model_dir / ".staging").iterdir())


def test_tampering_is_refused(store: ModelStore, model_dir: Path):
    ref = store.save(Weights([1.0, 2.0, 3.0]), asset="m", version="1")
    directory = model_dir / ref.path
    weights = directory / "weights.npy"
    original = weights.read_bytes()

    flipped = bytearray(original)
    flipped[-1] ^= 0x01
    weights.write_bytes(bytes(flipped))
    with pytest.raises(ModelIntegrityError, match="changed since it was stored"):
        store.load(ref)
    weights.write_bytes(original)
    store.load(ref)

    (directory / "extra.py").write_text("print('hi')")
    with pytest.raises(ModelIntegrityError, match=r"unexpected \['extra.py'\]"):
        store.load(ref)
    (directory / "extra.py").unlink()

    weights.unlink()
    with pytest.raises(ModelIntegrityError, match=r"missing \['weights.npy'\]"):
        store.load(ref)
    weights.write_bytes(original)

    with pytest.raises(ModelIntegrityError, match="differs from the recorded"):
        store.load(ref, expected_sha256="0" * 64)
    with pytest.raises(ModelIntegrityError, match="outside the model root"):
        store.load("../elsewhere")
    with pytest.raises(ModelIntegrityError, match="manifest.json is missing"):
        store.load("m/_/2")


def test_loader_class_must_live_under_fraud_assets(model_dir: Path):
    ref = ModelStore(model_dir, loader_prefixes=TEST_PREFIXES).save(
        Weights([1.0]), asset="m", version="1"
    )
    with pytest.raises(ModelIntegrityError, match="only classes under fraud_assets"):
        ModelStore(model_dir).load(ref)
    manifest_path = model_dir / ref.path / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["class"] = "os.system"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError, match="'os.system'"):
        ModelStore(model_dir, loader_prefixes=TEST_PREFIXES).load(ref.path)


def test_torn_write_leaves_the_previous_version_loadable(store: ModelStore, model_dir: Path):
    ref = store.save(Weights([1.0]), asset="m", version="1")
    with pytest.raises(OSError, match="disk full"):
        store.save(CrashingWeights([9.0]), asset="m", version="1")
    assert store.load(ref).values == [1.0]
    assert not list((model_dir / ".staging").iterdir())
    replaced = store.save(Weights([2.0]), asset="m", version="1")
    assert replaced.sha256 != ref.sha256 and store.load(replaced).values == [2.0]
    assert sorted(p.name for p in (model_dir / "m" / "_").iterdir()) == ["1"]
    with pytest.raises(ModelIntegrityError):
        store.load(ref)  # the registry's old sha256 no longer matches


def test_skops_allows_only_allowlisted_types(tmp_path: Path):
    x = np.random.default_rng(0).normal(size=(200, 4))
    forest = IsolationForest(n_estimators=10, random_state=0).fit(x)
    scaler = StandardScaler().fit(x)
    for name, estimator in [("forest", forest), ("scaler", scaler)]:
        dump_skops(estimator, tmp_path / f"{name}.skops")
    np.testing.assert_allclose(
        load_skops(tmp_path / "forest.skops").score_samples(x), forest.score_samples(x)
    )
    np.testing.assert_allclose(
        load_skops(tmp_path / "scaler.skops").transform(x), scaler.transform(x)
    )

    (tmp_path / "pickled.skops").write_bytes(pickle.dumps(scaler))
    with pytest.raises(UntrustedArtifactError, match="not a skops file"):
        load_skops(tmp_path / "pickled.skops")

    dump_skops({"payload": Weights([1.0])}, tmp_path / "foreign.skops")
    with pytest.raises(UntrustedArtifactError, match="test_io_model_store.Weights"):
        load_skops(tmp_path / "foreign.skops")


def test_sklearn_estimators_are_stored_as_skops(model_dir: Path):
    store = ModelStore(model_dir)
    x = np.arange(20.0).reshape(10, 2)
    ref = store.save(StandardScaler().fit(x), asset="scaler", version="1")
    assert (model_dir / ref.path / "model.skops").is_file()
    np.testing.assert_allclose(store.load(ref).mean_, x.mean(axis=0))


def test_keras_model_round_trip(store: ModelStore):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input(shape=(4,)), keras.layers.Dense(2, activation="relu"), keras.layers.Dense(4)]
    )
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    model.fit(x, x, epochs=2, verbose=0)
    ref = store.save(KerasModel(model), asset="train_autoencoder", version="1", partition="w1")
    loaded = store.load(ref)
    np.testing.assert_allclose(
        loaded.model.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5
    )


# ------------------------------------------------------------------ IO manager


WEEKLY = dg.WeeklyPartitionsDefinition(start_date="2025-01-05", hour_offset=2, timezone="UTC")


def test_model_io_manager_through_materialize(model_dir: Path):
    x = np.arange(40.0).reshape(20, 2)

    @dg.asset(partitions_def=WEEKLY, io_manager_key="models")
    def feature_scaler() -> StandardScaler:
        return StandardScaler().fit(x)

    @dg.asset(partitions_def=WEEKLY, io_manager_key="models")
    def thresholds(feature_scaler: StandardScaler) -> dict:
        return {"threshold": 0.9, "mean": feature_scaler.mean_.tolist()}

    @dg.asset(partitions_def=WEEKLY)
    def uses_thresholds(thresholds: dict) -> None:
        assert thresholds == {"threshold": 0.9, "mean": x.mean(axis=0).tolist()}

    resources = {
        "models": ModelIOManager(root=str(model_dir)),
        "io_manager": dg.FilesystemIOManager(base_dir=str(model_dir.parent / "fs")),
    }
    key = "2025-02-23"
    with dg.instance_for_test() as instance:

        def materialize(assets: list) -> dg.ExecuteInProcessResult:
            return dg.materialize(assets, partition_key=key, resources=resources, instance=instance)

        result = materialize([feature_scaler, thresholds, uses_thresholds])
        event = next(
            e
            for e in result.get_asset_materialization_events()
            if e.asset_key.path == ["thresholds"]
        )
        metadata = event.materialization.metadata
        path, sha = metadata["path"].value, metadata["sha256"].value
        assert path.startswith("thresholds/2025-02-23/") and len(sha) == 64
        assert "data.json" in metadata["files"].value
        assert ModelStore(model_dir).load(ArtifactRef(path, sha))["threshold"] == 0.9

        # a second materialization is a new version; the first stays loadable by its ref
        second = materialize([feature_scaler])
        assert second.success
        assert len(list((model_dir / "feature_scaler" / "2025-02-23").glob("*-*"))) == 2

        # tampering after materialization: the downstream load refuses the artifact
        (model_dir / path / "data.json").write_text('{"threshold": 0.0}')
        with pytest.raises(ModelIntegrityError, match="changed since it was stored"):
            materialize([thresholds.to_source_asset(), uses_thresholds])


def test_model_io_manager_unpartitioned_and_outside_an_instance(model_dir: Path):
    manager = ModelIOManager(root=str(model_dir))

    @dg.asset(io_manager_key="models")
    def rules_config() -> dict:
        return {"max_amount": 10_000}

    @dg.asset
    def uses_rules(rules_config: dict) -> None:
        assert rules_config == {"max_amount": 10_000}

    resources = {
        "models": manager,
        "io_manager": dg.FilesystemIOManager(base_dir=str(model_dir.parent / "fs")),
    }
    assert dg.materialize([rules_config, uses_rules], resources=resources).success
    # without an instance the partition's LATEST pointer names the artifact
    context = dg.build_input_context(asset_key="rules_config")
    assert manager.load_input(context) == {"max_amount": 10_000}
    missing = dg.build_input_context(asset_key="never_materialized")
    with pytest.raises(ModelIntegrityError, match="materialize it first"):
        manager.load_input(missing)


def test_importing_the_io_package_does_not_import_tensorflow():
    code = "import sys, fraud_assets.io, fraud_assets.resources; print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
