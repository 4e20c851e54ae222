"""Detectors, thresholds and calibration on tiny arrays (real scikit-learn and Keras)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.ensemble import IsolationForest

from fraud_assets.detectors import (
    AutoencoderDetector,
    IsolationForestDetector,
    ScoreCalibrator,
    ThresholdStrategy,
    fit_threshold,
)


def _data(n: int = 400, d: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d))


def _outliers(d: int = 6, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc=6.0, size=(10, d))


# -- thresholds ---------------------------------------------------------------


def test_percentile_threshold_is_exact_on_a_known_range():
    scores = np.arange(100.0)
    assert fit_threshold(scores, ThresholdStrategy.percentile(95)) == pytest.approx(94.05)
    assert fit_threshold(scores, ThresholdStrategy.percentile(50)) == pytest.approx(49.5)
    assert fit_threshold(scores) == pytest.approx(94.05)  # default: 95th percentile


def test_mean_std_threshold_on_a_normal_sample():
    scores = np.random.default_rng(0).normal(loc=2.0, scale=0.5, size=200_000)
    assert fit_threshold(scores, ThresholdStrategy.mean_std(3)) == pytest.approx(3.5, abs=0.01)
    small = np.array([1.0, 2.0, 3.0, 4.0])
    assert fit_threshold(small, ThresholdStrategy.mean_std(2)) == pytest.approx(
        2.5 + 2 * np.std(small)
    )


def test_max_alert_rate_flags_at_most_the_rate():
    scores = np.arange(100.0)
    threshold = fit_threshold(scores, ThresholdStrategy.max_alert_rate(0.05))
    assert threshold == pytest.approx(94.5)
    assert np.count_nonzero(scores > threshold) == 5
    tied = np.r_[np.zeros(90), np.full(10, 7.0)]  # cannot flag 5 of 10 tied scores
    threshold = fit_threshold(tied, ThresholdStrategy.max_alert_rate(0.05))
    assert np.count_nonzero(tied > threshold) == 0
    assert fit_threshold(tied, ThresholdStrategy.max_alert_rate(0.10)) == pytest.approx(3.5)


@pytest.mark.parametrize("strategy", [ThresholdStrategy.f1_optimal(), ThresholdStrategy.youden()])
def test_label_optimal_thresholds_separate_separable_scores(strategy):
    scores = np.r_[np.linspace(0, 1, 50), np.linspace(2, 3, 5)]
    labels = np.r_[np.zeros(50), np.ones(5)]
    threshold = fit_threshold(scores, strategy, labels)
    assert threshold == pytest.approx(1.5)
    np.testing.assert_array_equal(scores > threshold, labels.astype(bool))


def test_f1_optimal_trades_precision_for_recall():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    labels = np.array([0, 0, 1, 0, 1, 1])
    # Flag the top 2 -> F1 = 0.8 (tp 2, fn 1); the top 4 -> 0.857 (tp 3, fp 1) is best.
    threshold = fit_threshold(scores, ThresholdStrategy.f1_optimal(), labels)
    assert threshold == pytest.approx(0.25)


def test_threshold_strategy_validation_and_round_trip():
    with pytest.raises(ValueError, match="unknown threshold kind"):
        ThresholdStrategy("median")
    with pytest.raises(ValueError, match="takes no parameter"):
        ThresholdStrategy("percentile", {"k": 3})
    with pytest.raises(ValueError, match="needs labels"):
        fit_threshold(np.arange(5.0), ThresholdStrategy.f1_optimal())
    strategy = ThresholdStrategy.mean_std(2.5)
    assert ThresholdStrategy.from_dict(strategy.to_dict()) == strategy
    assert ThresholdStrategy("percentile").params == {"q": 95.0}


# -- calibration --------------------------------------------------------------


def test_calibration_is_monotone_in_range_and_anchored():
    scores = np.random.default_rng(0).exponential(size=5000)
    calibrator = ScoreCalibrator().fit(scores)
    grid = np.linspace(-1, scores.max() * 3, 20_000)
    risk = calibrator.transform(grid)
    assert np.all(np.diff(risk) >= 0)
    assert risk.min() >= 0.0 and risk.max() < 1.0
    inside = (grid > scores.min()) & (grid < scores.max())
    assert np.all(np.diff(risk[inside]) > 0)
    # The score exceeded by 1 % of training rows maps to 0.5; the median to about 0.1.
    assert calibrator.transform(np.quantile(scores, 0.99)) == pytest.approx(0.5, abs=0.01)
    assert calibrator.transform(np.median(scores)) == pytest.approx(0.099, abs=0.01)


def test_calibration_ranks_extreme_outliers_above_the_training_tail():
    scores = np.random.default_rng(1).normal(size=1000)
    calibrator = ScoreCalibrator().fit(scores)
    top = scores.max()
    risk = calibrator.transform(np.array([np.quantile(scores, 0.99), top, top + 1, top + 10]))
    assert np.all(np.diff(risk) > 0)


def test_calibration_round_trip_and_degenerate_input(tmp_path):
    scores = np.random.default_rng(2).normal(size=300)
    calibrator = ScoreCalibrator().fit(scores)
    calibrator.save(tmp_path / "calibration.json")
    restored = ScoreCalibrator.load(tmp_path / "calibration.json")
    probe = np.linspace(-5, 5, 101)
    np.testing.assert_array_equal(calibrator.transform(probe), restored.transform(probe))
    constant = ScoreCalibrator().fit(np.ones(10))
    assert np.all(np.diff(constant.transform(np.array([0.0, 1.0, 1.1, 2.0]))) >= 0)


# -- Isolation Forest ---------------------------------------------------------


def test_isolation_forest_defaults_match_scikit_learn():
    X = _data()
    detector = IsolationForestDetector().fit(X)
    reference = IsolationForest(contamination=0.01, random_state=0).fit(X)
    np.testing.assert_allclose(detector.score_samples(X), reference.score_samples(X))
    np.testing.assert_array_equal(detector.predict(X), reference.predict(X))
    assert detector.threshold_ == pytest.approx(-reference.offset_)
    np.testing.assert_allclose(detector.anomaly_score(X), -detector.score_samples(X))
    np.testing.assert_allclose(
        detector.decision_function(X), detector.threshold_ - detector.anomaly_score(X)
    )


def test_isolation_forest_ranks_outliers_and_calibrates():
    X = _data()
    detector = IsolationForestDetector(n_estimators=50).fit(X)
    normal, outliers = detector.evaluate(X), detector.evaluate(_outliers())
    assert outliers.risk.min() > np.median(normal.risk)
    assert np.all(outliers.prediction == -1)
    assert normal.risk.min() >= 0 and normal.risk.max() <= 100
    assert np.mean(normal.prediction == -1) <= 0.02


def test_isolation_forest_save_load_round_trip(tmp_path):
    X = _data()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    detector = IsolationForestDetector(
        n_estimators=20, threshold_strategy=ThresholdStrategy.percentile(90)
    ).fit(frame)
    detector.save(tmp_path / "iforest")
    restored = IsolationForestDetector.load(tmp_path / "iforest")
    np.testing.assert_array_equal(detector.score_samples(frame), restored.score_samples(frame))
    np.testing.assert_array_equal(detector.risk_score(frame), restored.risk_score(frame))
    assert restored.threshold_ == detector.threshold_
    assert restored.threshold_strategy == ThresholdStrategy.percentile(90)
    assert restored.feature_names_in_ == list(frame.columns)
    assert restored.get_params() == detector.get_params()


def test_frames_are_reordered_by_fitted_column_names():
    X = _data(d=3)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    detector = IsolationForestDetector(n_estimators=10).fit(frame)
    shuffled = frame[["c", "a", "b"]].assign(extra=1.0)
    np.testing.assert_array_equal(detector.score_samples(frame), detector.score_samples(shuffled))
    np.testing.assert_array_equal(
        detector.score_samples(frame), detector.score_samples(pl.from_pandas(shuffled))
    )
    with pytest.raises(KeyError, match="missing"):
        detector.score_samples(frame[["a", "b"]])


def test_isolation_forest_threaded_scoring_equals_serial():
    X = _data(n=50_000, d=4)
    serial = IsolationForestDetector(n_estimators=10).fit(X[:2000])
    threaded = IsolationForestDetector(n_estimators=10, n_jobs=2).fit(X[:2000])
    np.testing.assert_array_equal(serial.anomaly_score(X), threaded.anomaly_score(X))


def test_threshold_can_be_set_and_refitted():
    X = _data()
    detector = IsolationForestDetector(n_estimators=20).fit(X)
    detector.set_threshold(np.inf)
    assert np.all(detector.predict(X) == 1)
    detector.fit_threshold(X, ThresholdStrategy.max_alert_rate(0.1))
    assert np.mean(detector.predict(X) == -1) == pytest.approx(0.1, abs=0.005)


# -- Autoencoder ----------------------------------------------------------------


@pytest.fixture(scope="module")
def autoencoder() -> tuple[AutoencoderDetector, np.ndarray]:
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(300, 3))
    X = latent @ rng.normal(size=(3, 8)) + 0.1 * rng.normal(size=(300, 8))
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(8)])
    detector = AutoencoderDetector(epochs=3, batch_size=32, random_state=7).fit(frame)
    return detector, X


def test_autoencoder_numpy_forward_pass_equals_keras(autoencoder):
    detector, X = autoencoder
    keras_out = detector.keras_model().predict(detector.standardized(X), verbose=0)
    np.testing.assert_allclose(detector.reconstruct(X), keras_out, atol=1e-5)
    expected_error = np.mean((keras_out - detector.standardized(X)) ** 2, axis=1)
    np.testing.assert_allclose(detector.reconstruction_error(X), expected_error, atol=1e-5)


def test_autoencoder_batch_norm_is_folded_into_the_numpy_forward_pass(autoencoder, tmp_path):
    _, X = autoencoder
    detector = AutoencoderDetector(
        hidden_units=(16,),
        latent_dim=4,
        activation="relu",
        latent_activation="relu",
        dropout=0.2,
        batch_norm=True,
        epochs=3,
        validation_fraction=0.0,
        random_state=7,
    ).fit(X)
    model = detector.keras_model()
    assert {type(layer).__name__ for layer in model.layers} >= {"BatchNormalization", "Dropout"}
    assert [W.shape for W, _, _ in detector.layers_] == [(8, 16), (16, 4), (4, 16), (16, 8)]
    # The folded map must use the moving statistics, not the initial identity ones.
    norm = model.get_layer("latent_norm")
    assert not np.allclose(norm.moving_variance.numpy(), 1.0)
    keras_out = model.predict(detector.standardized(X), verbose=0)  # inference: no dropout
    np.testing.assert_allclose(detector.reconstruct(X), keras_out, atol=1e-4)
    restored = AutoencoderDetector.load(detector.save(tmp_path / "ae"))
    np.testing.assert_array_equal(restored.anomaly_score(X), detector.anomaly_score(X))
    assert restored.batch_norm and restored.dropout == 0.2


def test_autoencoder_torch_initializer_draws_like_pytorch_linear_layers():
    import keras

    detector = AutoencoderDetector(hidden_units=(64,), latent_dim=32, initializer="torch")
    _, blocks = detector._build(keras, 16, detector._layer_plan(16))
    for (dense, _), fan_in in zip(blocks, (16, 64, 32, 64), strict=True):
        bound = 1 / np.sqrt(fan_in)
        for weights in (dense.kernel.numpy(), dense.bias.numpy()):
            assert np.abs(weights).max() <= bound + 1e-7
            assert np.abs(weights).max() > 0.8 * bound  # uniform over the range, biases too
    with pytest.raises(ValueError, match="initializer"):
        AutoencoderDetector(initializer="he", epochs=1).fit(np.ones((10, 3)))


def test_autoencoder_pyod_initializer_draws_hidden_kernels_he_uniform():
    """PyOD 2's LinearBlock: hidden kernels in ±√(6/fan_in), biases and the output layer as
    nn.Linear leaves them (±1/√fan_in)."""
    import keras

    detector = AutoencoderDetector(hidden_units=(64,), latent_dim=32, initializer="pyod")
    _, blocks = detector._build(keras, 16, detector._layer_plan(16))
    for i, ((dense, _), fan_in) in enumerate(zip(blocks, (16, 64, 32, 64), strict=True)):
        kernel_bound = np.sqrt(6 / fan_in) if i < 3 else 1 / np.sqrt(fan_in)
        kernel = np.abs(dense.kernel.numpy())
        assert kernel.max() <= kernel_bound + 1e-7 and kernel.max() > 0.8 * kernel_bound
        bias = np.abs(dense.bias.numpy())
        assert bias.max() <= 1 / np.sqrt(fan_in) + 1e-7


def test_autoencoder_weight_decay_is_l2_on_every_trainable_variable():
    """Coupled L2 as torch.optim.Adam applies it: kernels, biases, batch-norm gamma and beta."""
    import keras

    detector = AutoencoderDetector(
        hidden_units=(16,), latent_dim=4, batch_norm=True, initializer="torch", weight_decay=0.1
    )
    model, _ = detector._build(keras, 8, detector._layer_plan(8))
    trainable = model.trainable_variables
    assert len(trainable) == 3 * 4 + 2  # (kernel, bias, gamma, beta) x 3 blocks + output layer
    assert len(model.losses) == len(trainable)  # the moving statistics are not decayed
    penalty = sum(0.05 * np.sum(np.square(v.numpy())) for v in trainable)
    assert float(sum(loss.numpy() for loss in model.losses)) == pytest.approx(penalty, rel=1e-5)
    plain = AutoencoderDetector(hidden_units=(16,), latent_dim=4, batch_norm=True)
    assert not plain._build(keras, 8, plain._layer_plan(8))[0].losses
    assert plain.adam_epsilon == keras.optimizers.Adam().epsilon  # default: Keras' own Adam
    with pytest.raises(ValueError, match="weight_decay"):
        AutoencoderDetector(weight_decay=-1.0, epochs=1).fit(np.ones((10, 3)))


# A small network in PyOD's style (batch norm, ReLU, PyTorch's initial weights).
PYOD_LIKE = dict(
    hidden_units=(16,),
    latent_dim=4,
    activation="relu",
    latent_activation="relu",
    batch_norm=True,
    initializer="torch",
    validation_fraction=0.0,
    random_state=7,
)


def test_autoencoder_weight_decay_shrinks_the_trained_weights(autoencoder, tmp_path):
    _, X = autoencoder
    pyod_like = dict(PYOD_LIKE, epochs=3, adam_epsilon=1e-8)
    plain = AutoencoderDetector(**pyod_like).fit(X)
    decayed = AutoencoderDetector(**pyod_like, weight_decay=0.5).fit(X)

    def norm(detector: AutoencoderDetector) -> float:
        return sum(
            float(np.sum(v.numpy() ** 2)) for v in detector.keras_model().trainable_variables
        )

    assert norm(decayed) < 0.95 * norm(plain)
    assert not np.allclose(plain.anomaly_score(X), decayed.anomaly_score(X))
    keras_out = decayed.keras_model().predict(decayed.standardized(X), verbose=0)
    np.testing.assert_allclose(decayed.reconstruct(X), keras_out, atol=1e-4)
    restored = AutoencoderDetector.load(decayed.save(tmp_path / "ae"))
    assert (restored.weight_decay, restored.adam_epsilon) == (0.5, 1e-8)
    np.testing.assert_array_equal(restored.anomaly_score(X), decayed.anomaly_score(X))
    assert restored.keras_model().losses  # the .keras artifact keeps its regularisers


def test_autoencoder_pytorch_batches_full_only_and_unbiased_running_variance(autoencoder):
    """300 rows in batches of 32: 9 full batches per epoch (Keras alone also trains on the
    last 12 rows); the running variances are the biased run's times 32/31, nothing else moves."""
    _, X = autoencoder
    pyod_like = dict(PYOD_LIKE, epochs=2)
    keras_batches = AutoencoderDetector(**pyod_like).fit(X)
    full = AutoencoderDetector(**pyod_like, drop_last_batch=True).fit(X)
    unbiased = AutoencoderDetector(
        **pyod_like, drop_last_batch=True, unbiased_running_variance=True
    ).fit(X)
    assert int(keras_batches.keras_model().optimizer.iterations) == 2 * 10
    assert int(full.keras_model().optimizer.iterations) == 2 * 9

    def variables(detector: AutoencoderDetector, moving: bool) -> list[np.ndarray]:
        return [
            v.numpy()
            for v in detector.keras_model().variables
            if ("moving_variance" in v.path) == moving and "optimizer" not in v.path
        ]

    for a, b in zip(variables(full, False), variables(unbiased, False), strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(variables(full, True)) == 3  # one batch norm per hidden layer
    for a, b in zip(variables(full, True), variables(unbiased, True), strict=True):
        np.testing.assert_allclose(b, a * 32 / 31, rtol=1e-6)
    keras_out = unbiased.keras_model().predict(unbiased.standardized(X), verbose=0)
    np.testing.assert_allclose(unbiased.reconstruct(X), keras_out, atol=1e-4)


def test_autoencoder_saved_before_the_optimiser_options_still_loads(autoencoder, tmp_path):
    detector, X = autoencoder
    directory = detector.save(tmp_path / "ae")
    state = json.loads((directory / "config.json").read_text())
    del state["params"]["weight_decay"], state["params"]["adam_epsilon"]
    (directory / "config.json").write_text(json.dumps(state))
    restored = AutoencoderDetector.load(directory)
    assert (restored.weight_decay, restored.adam_epsilon) == (0.0, 1e-7)
    np.testing.assert_array_equal(restored.anomaly_score(X), detector.anomaly_score(X))


def test_autoencoder_architecture_history_and_latent(autoencoder):
    detector, X = autoencoder
    assert [W.shape for W, _, _ in detector.layers_] == [(8, 30), (30, 10), (10, 30), (30, 8)]
    assert set(detector.history_) == {"loss", "val_loss"}
    assert 1 <= detector.n_epochs_ <= 3
    assert detector.transform(X).shape == (300, 10)
    np.testing.assert_allclose(detector.score_samples(X), -detector.reconstruction_error(X))
    assert np.mean(detector.predict(X) == -1) == pytest.approx(0.05, abs=0.01)


def test_autoencoder_error_and_latent_in_one_pass_equal_the_two_methods(autoencoder):
    detector, X = autoencoder
    X = np.vstack([X] * 30)  # several scoring chunks
    error, latent = detector.error_and_latent(X)
    np.testing.assert_array_equal(error, detector.reconstruction_error(X))
    np.testing.assert_array_equal(latent, detector.transform(X))


def test_autoencoder_flags_off_manifold_rows(autoencoder):
    detector, X = autoencoder
    outliers = X[:10] + np.random.default_rng(3).normal(scale=5.0, size=(10, 8))
    assert np.median(detector.risk_score(outliers)) > np.quantile(detector.risk_score(X), 0.9)


def test_autoencoder_rejects_missing_values(autoencoder):
    detector, X = autoencoder
    bad = X[:3].copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        detector.anomaly_score(bad)


def test_autoencoder_save_load_round_trip_without_tensorflow(autoencoder, tmp_path):
    detector, X = autoencoder
    detector.save(tmp_path / "ae")
    assert {p.name for p in (tmp_path / "ae").iterdir()} == {
        "model.keras",
        "weights.npz",
        "config.json",
    }
    np.save(tmp_path / "X.npy", X)
    expected = detector.score_samples(X)
    np.save(tmp_path / "expected.npy", expected)
    # A fresh interpreter proves the scoring path never imports TensorFlow.
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import pandas as pd
        from fraud_assets.detectors import AutoencoderDetector
        X = np.load({str(tmp_path / "X.npy")!r})
        frame = pd.DataFrame(X, columns=[f"f{{i}}" for i in range(8)])
        detector = AutoencoderDetector.load({str(tmp_path / "ae")!r})
        scores = detector.score_samples(frame)
        assert np.array_equal(scores, np.load({str(tmp_path / "expected.npy")!r}))
        detector.transform(frame)
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)

    restored = AutoencoderDetector.load(tmp_path / "ae")
    np.testing.assert_array_equal(restored.risk_score(X), detector.risk_score(X))
    assert restored.threshold_ == detector.threshold_
    assert restored.history_ == detector.history_
    keras_out = restored.keras_model().predict(restored.standardized(X), verbose=0)
    np.testing.assert_allclose(restored.reconstruct(X), keras_out, atol=1e-5)
    restored.save(tmp_path / "ae_copy")  # re-saving a loaded model keeps the .keras artifact
    assert (tmp_path / "ae_copy" / "model.keras").exists()


def test_importing_detectors_does_not_import_tensorflow():
    script = (
        "import sys, fraud_assets.detectors as d; d.AutoencoderDetector; d.StatisticalRules;"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_autoencoder_chunked_execution_trains_the_same_weights():
    """steps_per_execution only removes per-batch overhead: same updates, same weights."""
    frame = np.random.default_rng(3).normal(size=(700, 6)).astype(np.float32)
    fitted = [
        AutoencoderDetector(epochs=2, batch_size=32, steps_per_execution=steps, random_state=5).fit(
            frame
        )
        for steps in (1, 64)
    ]
    for (w1, b1, _), (w64, b64, _) in zip(fitted[0].layers_, fitted[1].layers_, strict=True):
        np.testing.assert_allclose(w1, w64, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b1, b64, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        fitted[0].score_samples(frame), fitted[1].score_samples(frame), rtol=1e-4
    )
