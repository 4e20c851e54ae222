"""Reduced public-data check: the detectors on ADBench datasets against published ROC-AUC.

The full check (ten datasets, ten seeds, both detectors and the ensemble) is
``python -m fraud_assets.evaluation.public_benchmarks``; here the Isolation
Forest runs the full PyOD protocol (it is cheap), the autoencoder and the
ensemble run two seeds of it on all ten datasets (about three minutes on a loaded
2-core machine), and all three run the semi-supervised protocol's three seeds
(about four minutes more). Under the PyOD protocol the ensemble is the exchange's
``StackedCombiner`` fitted on the training split's labels (the detectors never
see them), as the weekly training fits it on ``transaction_labels``.

Goals missed on some datasets, in the full check as in this one (see the README's
public-data section), are named below; any other miss fails the test.
"""

from __future__ import annotations

import os

import pytest

from fraud_assets.evaluation.public_benchmarks import (
    DATASETS,
    PUBLISHED,
    DatasetResult,
    Scores,
    data_dir,
    format_table,
    run,
    run_one,
    split,
    summarize,
)

# CI always has shared/ beside the checkout: there, missing data is a failure, not a skip.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (data_dir() / "6_cardio.npz").exists() and not os.environ.get("CI"),
        reason=f"benchmark data not in {data_dir()}",
    ),
]


def test_isolation_forest_matches_published_pyod_roc_auc():
    from sklearn.metrics import roc_auc_score

    from fraud_assets.detectors import IsolationForestDetector
    from fraud_assets.evaluation.public_benchmarks import load_dataset

    gaps = {}
    for name in DATASETS:
        X, y = load_dataset(name)
        rocs = []
        for seed in range(10):
            X_train, X_test, _, y_test = split(X, y, "pyod", seed)
            detector = IsolationForestDetector(random_state=seed).fit(X_train)
            rocs.append(roc_auc_score(y_test, detector.anomaly_score(X_test)))
        gaps[name] = round(PUBLISHED[name].iforest_gap(sum(rocs) / len(rocs), "pyod"), 4)
    assert all(abs(gap) <= 0.02 for gap in gaps.values()), gaps


REDUCED_SEEDS = (0, 1)
# Over ten seeds mammography (0.860) and mnist (0.853) miss, as PyOD's own AutoEncoder does
# on the same splits (0.854, 0.855: benchmarks/pyod_reference.py); mnist is in range on
# these two (0.867), mammography is not (0.845).
AUTOENCODER_MISSES = {"23_mammography", "24_mnist"}
# The fitted ensemble (the exchange's combiner, its penalty chosen by cross-validation) is
# within 0.02 of the better detector on every dataset over ten seeds. On these two seeds
# vowels is 0.002 inside (0.898 against 0.916), close enough for another CPU's arithmetic
# in the autoencoder's training to tip it, so it alone is tolerated here.
ENSEMBLE_DATASET_MISSES = {"40_vowels"}


@pytest.fixture(scope="module")
def reduced_summary():
    summary = summarize(run("pyod", seeds=REDUCED_SEEDS), if_tolerance=0.05)
    print(format_table(summary))  # two seeds: the IForest check gets the two-split spread
    return summary


def _missed(summary, kind: str) -> set[str]:
    return {message.split(":")[0] for message in summary.failed(kind)}


def test_isolation_forest_in_the_reduced_run(reduced_summary):
    assert not reduced_summary.failed("iforest")


def test_autoencoder_is_within_the_published_range(reduced_summary):
    assert _missed(reduced_summary, "autoencoder") <= AUTOENCODER_MISSES, reduced_summary.failed(
        "autoencoder"
    )


def test_ensemble_mean_roc_auc_and_ap_beat_the_better_single_detector(reduced_summary):
    assert not reduced_summary.failed("ensemble_roc")
    assert not reduced_summary.failed("ensemble_ap")


def test_ensemble_stays_near_the_better_detector_per_dataset(reduced_summary):
    assert _missed(reduced_summary, "ensemble_dataset") <= ENSEMBLE_DATASET_MISSES, (
        reduced_summary.failed("ensemble_dataset")
    )


# Semi-supervised protocol (DTE-S: train on half the normal rows, no labels, so the ensemble
# is the label-free fusion), seeds 0–2 as in the README's table. Every autoencoder miss is
# against DTE-S's VAE, which is the distance from the mean (test below); pendigits is within
# 0.001 of it either way. On vowels the forest is near chance (0.615) and the fusion, which
# has no labels to tell it so, lands between the two detectors.
SEMI_SEEDS = (0, 1, 2)
SEMI_AUTOENCODER_MISSES = {"5_campaign", "6_cardio", "23_mammography", "28_pendigits"}
SEMI_ENSEMBLE_DATASET_MISSES = {"40_vowels"}
# The fusion's mean ROC-AUC is 0.842 against the autoencoder's 0.841 on these seeds (0.842
# against 0.843 on seeds 0–1): a tie that another CPU's arithmetic could tip either way.
SEMI_MEAN_ROC_SLACK = 0.002


@pytest.fixture(scope="module")
def semi_summary():
    summary = summarize(run("semi_supervised", seeds=SEMI_SEEDS))
    print(format_table(summary))
    return summary


def test_semi_supervised_isolation_forest_matches_dte_s(semi_summary):
    assert not semi_summary.failed("iforest")


def test_semi_supervised_autoencoder_misses_only_the_distance_from_the_mean(semi_summary):
    missed = _missed(semi_summary, "autoencoder")
    assert missed <= SEMI_AUTOENCODER_MISSES, semi_summary.failed("autoencoder")
    for name in missed:  # each reference there is the model-free distance from the mean
        row = semi_summary.rows[name]
        assert abs(row["distance_roc"] - row["published_ae_low"]) <= 0.001, (name, row)


def test_semi_supervised_fusion_against_the_better_detector(semi_summary):
    assert not semi_summary.failed("ensemble_ap")
    assert (
        semi_summary.mean("ensemble_roc")
        >= max(semi_summary.mean("iforest_roc"), semi_summary.mean("autoencoder_roc"))
        - SEMI_MEAN_ROC_SLACK
    ), semi_summary.failed("ensemble_roc")
    assert _missed(semi_summary, "ensemble_dataset") <= SEMI_ENSEMBLE_DATASET_MISSES, (
        semi_summary.failed("ensemble_dataset")
    )


def test_summary_flags_each_goal():
    def result(name: str, iforest: float, autoencoder: float, ensemble: float) -> DatasetResult:
        return DatasetResult(
            name,
            "pyod",
            0,
            Scores(iforest, 0.5),
            Scores(autoencoder, 0.4),
            Scores(ensemble, 0.3),
            1.0,
        )

    summary = summarize([result("6_cardio", 0.95, 0.70, 0.96)])
    # IForest +0.032 off, AE below 0.785, ensemble AP below the IForest's; ensemble ROC passes.
    assert len(summary.failures) == 3
    assert summary.failed("iforest") and summary.failed("autoencoder")
    assert summary.failed("ensemble_ap") and not summary.failed("ensemble_roc")
    assert not summary.failed("ensemble_dataset")
    lagging = summarize([result("6_cardio", 0.92, 0.80, 0.899)])  # 0.021 below the IForest
    assert lagging.failed("ensemble_dataset") and not lagging.failed("iforest")
    passing = summarize([DatasetResult("6_cardio", "pyod", 0, *(Scores(0.92, 0.5),) * 3, 1.0)])
    assert passing.passed, passing.failures


def test_semi_supervised_split_trains_on_the_first_half_of_normals():
    import numpy as np

    X = np.arange(20, dtype=float).reshape(10, 2)
    y = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 0])
    X_train, X_test, y_train, y_test = split(X, y, "semi_supervised", seed=3)
    first = np.array([0.0, 4, 6, 10])  # column 0 of the normal rows 0, 2, 3, 5
    assert np.allclose(X_train[:, 0], (first - first.mean()) / first.std())  # z-scored on them
    assert np.allclose(X_test[:, 0], (X[[1, 4, 6, 7, 8, 9], 0] - first.mean()) / first.std())
    assert y_train.sum() == 0 and y_test.sum() == 2 and len(y_test) == 6


def test_a_column_constant_up_to_rounding_keeps_a_scale_of_one():
    import numpy as np

    # 0.1 + 0.2 is 0.30000000000000004: a standard deviation of ~1e-17 in the training rows.
    column = np.array([0.3, 0.1 + 0.2, 0.3, 0.3, 0.5, 0.3, 0.3, 0.3])
    X = np.c_[np.arange(8.0), column]
    y = np.array([0, 0, 0, 0, 1, 0, 0, 0])
    _, X_test, _, y_test = split(X, y, "semi_supervised", seed=0)
    assert X_test[y_test == 1, 1] == pytest.approx(0.2)  # 0.5 − 0.3, not 0.2 / 1e-17


def test_dte_unsupervised_split_fits_on_a_bootstrap_sample_and_reports_on_every_row():
    import numpy as np

    X = np.c_[np.arange(10.0), np.arange(10.0) ** 2]
    y = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 0])
    X_train, X_test, y_train, y_test = split(X, y, "dte_unsupervised", seed=3)
    # Both parts are scaled alike, so each training row is one of the reported rows.
    drawn = [int(np.flatnonzero(np.isclose(X_test[:, 0], v))[0]) for v in X_train[:, 0]]
    assert np.allclose(X_train, X_test[drawn]) and np.array_equal(y_train, y[drawn])
    assert len(drawn) == len(y) and len(set(drawn)) < len(y)  # drawn with replacement
    # every row z-scored with all rows' statistics before the draw (as DTE does); all reported
    assert np.allclose(X_test.mean(axis=0), 0) and np.allclose(X_test.std(axis=0), 1)
    assert np.array_equal(y_test, y)
    again = split(X, y, "dte_unsupervised", seed=3)
    other = split(X, y, "dte_unsupervised", seed=4)
    assert np.array_equal(again[0], X_train) and not np.array_equal(other[0], X_train)


def test_labelled_protocols_fit_the_ensemble_and_semi_supervised_is_the_fusion(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(570, 4)), rng.normal(1.5, 1.0, size=(30, 4))])
    y = np.r_[np.zeros(570), np.ones(30)]
    np.savez(tmp_path / "6_cardio.npz", X=X, y=y)
    pyod = run_one("6_cardio", "pyod", 0, {"epochs": 2}, tmp_path)
    assert pyod.fusion is not None and pyod.ensemble != pyod.fusion
    assert pyod.ensemble.roc_auc > 0.8
    semi = run_one("6_cardio", "semi_supervised", 0, {"epochs": 2}, tmp_path)
    assert semi.fusion is None  # no labels in the training rows: the fusion is the ensemble
    table = format_table(summarize([pyod]))
    assert "StackedCombiner fitted on the training split's labels" in table
    assert "fusion ROC / AP" in table
    dte = run_one("6_cardio", "dte_unsupervised", 0, {"epochs": 2}, tmp_path)
    assert dte.fusion is not None and dte.ensemble.roc_auc > 0.8
    row = summarize([dte]).rows["6_cardio"]  # judged against DTE-U's own figures
    assert (row["published_if_low"], row["published_ae_low"]) == (0.9221, 0.9500)
    assert "published IF (DTE-U)" in format_table(summarize([dte]))
    assert dte.distance is not None and "‖z‖² ROC" in format_table(summarize([dte]))


def test_dte_vae_figures_are_the_distance_from_the_mean():
    """DTE's published VAE ROC-AUC is reproduced by a score with no model at all."""
    from sklearn.metrics import roc_auc_score

    from fraud_assets.evaluation.public_benchmarks import distance_from_mean, load_dataset

    gaps = {}
    for name in DATASETS:
        X, y = load_dataset(name)
        for protocol, published in (
            ("semi_supervised", PUBLISHED[name].dte_s_vae),
            ("dte_unsupervised", PUBLISHED[name].dte_u_vae),
        ):
            _, X_test, _, y_test = split(X, y, protocol, seed=0)
            gaps[name, protocol] = roc_auc_score(y_test, distance_from_mean(X_test)) - published
    apart = {key for key, gap in gaps.items() if abs(gap) > 0.002}
    # satimage-2 is the one dataset where the VAE ranks better than the distance alone.
    assert apart == {("31_satimage-2", "semi_supervised"), ("31_satimage-2", "dte_unsupervised")}
    assert all(-0.01 < gaps[key] < 0 for key in apart), gaps
