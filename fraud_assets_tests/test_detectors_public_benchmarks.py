"""Reduced public-data check: the detectors on ADBench datasets against published ROC-AUC.

The full check (ten datasets, ten seeds, both detectors and the ensemble) is
``python -m fraud_assets.evaluation.public_benchmarks``; here the Isolation
Forest runs the full PyOD protocol (it is cheap) and the autoencoder and
ensemble run one seed on the four smallest datasets. The goal that the ensemble's
mean average precision beats the better single detector's is not met yet (see
the README's detection-quality section); it is reported, not asserted.
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

SMALL_DATASETS = ("6_cardio", "20_letter", "40_vowels", "31_satimage-2")


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


@pytest.fixture(scope="module")
def small_summary():
    summary = summarize(run("pyod", seeds=[0], datasets=SMALL_DATASETS), if_tolerance=0.05)
    print(format_table(summary))  # one seed: the IForest check gets the one-split spread
    return summary


def test_autoencoder_is_within_the_published_range(small_summary):
    assert not small_summary.failed("autoencoder")
    assert not small_summary.failed("iforest")


def test_ensemble_mean_roc_auc_beats_the_better_single_detector(small_summary):
    assert not small_summary.failed("ensemble_roc")


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
    passing = summarize([DatasetResult("6_cardio", "pyod", 0, *(Scores(0.92, 0.5),) * 3, 1.0)])
    assert passing.passed, passing.failures


def test_semi_supervised_split_trains_on_the_first_half_of_normals():
    import numpy as np

    X = np.arange(20, dtype=float).reshape(10, 2)
    y = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 0])
    X_train, X_test, y_train, y_test = split(X, y, "semi_supervised", seed=3)
    assert X_train[:, 0].tolist() == [0, 4, 6, 10]
    assert y_train.sum() == 0 and y_test.sum() == 2 and len(y_test) == 6
