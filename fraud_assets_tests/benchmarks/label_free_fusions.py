"""Eight label-free ways to combine the two detectors, on the public check's splits.

Where no labels can fit a combiner (the semi-supervised protocol trains on
normal rows only), the ensemble has to combine the Isolation Forest and the
autoencoder without knowing which of the two is right on a dataset. This
scores the public check's exact splits (``public_benchmarks.split``, the same
detectors and parameters as ``run_one``) and puts the goals' three ensemble
checks to each combination: mean ROC-AUC and mean AP at least the better
detector's, and no dataset more than 0.02 ROC-AUC below it.

Every combination is fitted on the training rows' scores only (the test rank
mean uses the test rows' own ranks, no labels). It is a measurement, not a
selection: the check keeps ``StandardizedScoreFusion`` (the z-score sum).

    python fraud_assets_tests/benchmarks/label_free_fusions.py --protocol semi_supervised
    python fraud_assets_tests/benchmarks/label_free_fusions.py --protocol pyod
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from fraud_assets.evaluation.public_benchmarks import (
    AUTOENCODER_PARAMS,
    DATASETS,
    ENSEMBLE_TOLERANCE,
    load_dataset,
    split,
)

Scores = dict[str, np.ndarray]  # iso_train, ae_train, iso_test, ae_test


def _standardized(s: Scores, *, ae_in_log: bool = True) -> list[np.ndarray]:
    """Each detector's test scores in its training scores' standard deviations: the
    check's own ``StandardizedScoreFusion`` (the autoencoder's error in log space)."""
    from fraud_assets.detectors import StandardizedScoreFusion

    fusion = StandardizedScoreFusion(log_scale=(False, ae_in_log))
    return fusion.fit([s["iso_train"], s["ae_train"]]).standardized([s["iso_test"], s["ae_test"]])


def _robust_z(train: np.ndarray, test: np.ndarray, *, log: bool = False) -> np.ndarray:
    """Test scores in units of the training scores' median absolute deviation."""
    if log:
        train, test = np.log(np.maximum(train, 1e-12)), np.log(np.maximum(test, 1e-12))
    center = np.median(train)
    spread = 1.4826 * np.median(np.abs(train - center))
    return (test - center) / (spread if spread > 0 else 1.0)


def _surprisal(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """−log of the share of training scores above each test score (the exchange's
    calibration: its empirical CDF with the exponential tail above the maximum)."""
    from fraud_assets.detectors.calibration import ScoreCalibrator

    calibrator = ScoreCalibrator().fit(train)
    test = np.asarray(test, dtype=np.float64)
    out = -np.log1p(-np.minimum(calibrator.cdf(test), 1 - 1e-12))
    top = calibrator.knots_[-1]
    above = test > top  # in the tail the log survival is linear: no saturation at u = 1
    out[above] = -np.log(1.0 - calibrator.cdf_[-1]) + (test[above] - top) / calibrator.tail_scale_
    return out


def _risk(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    from fraud_assets.detectors.calibration import ScoreCalibrator

    return ScoreCalibrator().fit(train).transform(test)


def _rank(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(values)


def _both(s: Scores, f: Callable[..., np.ndarray], **ae_options) -> tuple[np.ndarray, np.ndarray]:
    return f(s["iso_train"], s["iso_test"]), f(s["ae_train"], s["ae_test"], **ae_options)


COMBINATIONS: dict[str, Callable[[Scores], np.ndarray]] = {
    "z sum (the check's fusion)": lambda s: np.sum(_standardized(s), axis=0),
    "z max": lambda s: np.max(_standardized(s), axis=0),
    "robust z sum": lambda s: np.sum(_both(s, _robust_z, log=True), axis=0),
    "z sum, error not in log": lambda s: np.sum(_standardized(s, ae_in_log=False), axis=0),
    "surprisal sum (Fisher)": lambda s: np.sum(_both(s, _surprisal), axis=0),
    "surprisal max (min p)": lambda s: np.max(_both(s, _surprisal), axis=0),
    "calibrated risk sum": lambda s: np.sum(_both(s, _risk), axis=0),
    "test rank mean": lambda s: _rank(s["iso_test"]) + _rank(s["ae_test"]),
}


def detector_scores(name: str, protocol: str, seed: int) -> tuple[Scores, np.ndarray]:
    """Both detectors fitted as ``run_one`` fits them; their scores on both parts."""
    from fraud_assets.detectors import AutoencoderDetector, IsolationForestDetector

    X, y = load_dataset(name)
    X_train, X_test, _, y_test = split(X, y, protocol, seed)
    params = {**AUTOENCODER_PARAMS[protocol], "random_state": seed}
    iforest = IsolationForestDetector(random_state=seed).fit(X_train)
    autoencoder = AutoencoderDetector(**params).fit(X_train)
    scores = {
        "iso_train": iforest.anomaly_score(X_train),
        "ae_train": autoencoder.anomaly_score(X_train),
        "iso_test": iforest.anomaly_score(X_test),
        "ae_test": autoencoder.anomaly_score(X_test),
    }
    return {k: np.asarray(v, dtype=np.float64) for k, v in scores.items()}, y_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--protocol", choices=("pyod", "semi_supervised"), default="semi_supervised"
    )
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from sklearn.metrics import average_precision_score, roc_auc_score

    columns = ["IF", "AE", *COMBINATIONS]
    means: dict[str, list[tuple[float, float]]] = {c: [] for c in columns}
    misses = dict.fromkeys(COMBINATIONS, 0)
    worst = dict.fromkeys(COMBINATIONS, 0.0)
    started = time.perf_counter()
    print(f"| dataset | {' | '.join(columns)} |\n|---{'|---:' * len(columns)}|")
    for name in DATASETS:
        per_seed: dict[str, list[tuple[float, float]]] = {c: [] for c in columns}
        for seed in range(args.seeds):
            scores, y = detector_scores(name, args.protocol, seed)
            values = {"IF": scores["iso_test"], "AE": scores["ae_test"]}
            values |= {c: combine(scores) for c, combine in COMBINATIONS.items()}
            for column, v in values.items():
                per_seed[column].append((roc_auc_score(y, v), average_precision_score(y, v)))
        row = {c: np.mean(per_seed[c], axis=0) for c in columns}
        better = max(row["IF"][0], row["AE"][0])
        cells = []
        for column in columns:
            means[column].append(tuple(row[column]))
            mark = ""
            if column in COMBINATIONS:
                gap = row[column][0] - better
                worst[column] = min(worst[column], gap)
                if gap < -ENSEMBLE_TOLERANCE:
                    misses[column] += 1
                    mark = "*"
            cells.append(f"{row[column][0]:.3f}{mark}")
        print(f"| {name} | {' | '.join(cells)} |", flush=True)
    mean = {c: np.mean(means[c], axis=0) for c in columns}
    best_roc = max(mean["IF"][0], mean["AE"][0])
    best_ap = max(mean["IF"][1], mean["AE"][1])
    print(
        "| **mean ROC / AP** | " + " | ".join(f"{r:.3f} / {a:.3f}" for r, a in mean.values()) + " |"
    )
    print(
        "| goals met (of 3) | – | – | "
        + " | ".join(
            str(int(mean[c][0] >= best_roc) + int(mean[c][1] >= best_ap) + int(misses[c] == 0))
            for c in COMBINATIONS
        )
        + " |"
    )
    print(
        "| datasets > 0.02 below (worst) | – | – | "
        + " | ".join(f"{misses[c]} ({worst[c]:+.3f})" for c in COMBINATIONS)
        + " |"
    )
    print(
        f"\n{args.protocol}, seeds 0–{args.seeds - 1}; * more than {ENSEMBLE_TOLERANCE} "
        f"ROC-AUC below the better detector; {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
