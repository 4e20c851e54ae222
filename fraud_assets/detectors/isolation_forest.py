"""Isolation Forest detector: scikit-learn's IsolationForest behind the common detector API.

Hyperparameters default to scikit-learn's (and the seed's: 100 trees,
contamination 1 %, all features), so results match published IForest
benchmarks. With no explicit threshold strategy the threshold is the
``1 - contamination`` percentile of the training scores, which makes
``predict`` agree with scikit-learn's own ``IsolationForest.predict``.

Scoring splits large inputs into row chunks scored on ``n_jobs`` threads:
tree traversal releases the GIL, so threads scale without copying the model.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest

from fraud_assets.detectors.base import AnomalyDetector
from fraud_assets.detectors.thresholds import ThresholdStrategy

MODEL_FILE = "model.skops"
# Everything inside a fitted IsolationForest that skops does not trust by default.
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]
PARALLEL_MIN_ROWS = 20_000


class IsolationForestDetector(AnomalyDetector):
    """Isolation Forest with a fitted threshold and a 0–100 risk calibration."""

    _input_dtype = np.float32  # the trees split on float32; convert once, not per call

    def __init__(
        self,
        n_estimators: int = 100,
        contamination: float = 0.01,
        max_features: float = 1.0,
        max_samples: int | float | str = "auto",
        bootstrap: bool = False,
        random_state: int | None = 0,
        n_jobs: int | None = None,
        threshold_strategy: ThresholdStrategy | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.contamination = contamination
        self.max_features = max_features
        self.max_samples = max_samples
        self.bootstrap = bootstrap
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.threshold_strategy = threshold_strategy

    @property
    def default_threshold_strategy(self) -> ThresholdStrategy:  # type: ignore[override]
        return ThresholdStrategy.percentile(100.0 * (1.0 - self.contamination))

    def _fit_model(self, X: np.ndarray) -> None:
        self.model_ = IsolationForest(
            n_estimators=self.n_estimators,
            contamination=self.contamination,
            max_features=self.max_features,
            max_samples=self.max_samples,
            bootstrap=self.bootstrap,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        ).fit(X)

    def _anomaly_score_matrix(self, X: np.ndarray) -> np.ndarray:
        n_jobs = self._scoring_threads(X.shape[0])
        if n_jobs == 1:
            return -self.model_.score_samples(X)
        bounds = np.linspace(0, X.shape[0], n_jobs * 4 + 1, dtype=np.int64)
        scores = np.empty(X.shape[0], dtype=np.float64)

        def score_chunk(i: int) -> None:
            lo, hi = bounds[i], bounds[i + 1]
            scores[lo:hi] = -self.model_.score_samples(X[lo:hi])

        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            list(pool.map(score_chunk, range(len(bounds) - 1)))
        return scores

    def _scoring_threads(self, n_rows: int) -> int:
        if n_rows < PARALLEL_MIN_ROWS:
            return 1
        import os

        wanted = self.n_jobs if self.n_jobs not in (None, 0) else 1
        if wanted < 0:
            wanted = max(1, (os.cpu_count() or 1) + 1 + wanted)
        return max(1, min(wanted, n_rows // (PARALLEL_MIN_ROWS // 2)))

    # -- persistence -------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``model.skops`` (the fitted forest) and ``config.json`` (threshold, calibration)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        _dump_skops(self.model_, directory / MODEL_FILE)
        self._write_json(directory, self._common_state())
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> IsolationForestDetector:
        directory = Path(directory)
        state = cls._read_json(directory)
        if state.get("detector") != cls.__name__:
            raise ValueError(f"{directory} holds a {state.get('detector')}, not a {cls.__name__}")
        detector = cls(**cls._params_from_state(state))
        detector.model_ = _load_skops(directory / MODEL_FILE)
        detector._restore_common_state(state)
        return detector


def _dump_skops(obj: Any, path: Path) -> None:
    try:
        from fraud_assets.io.formats import dump_skops
    except ImportError:
        import skops.io as sio

        sio.dump(obj, path)
    else:
        dump_skops(obj, path)


def _load_skops(path: Path) -> Any:
    try:
        from fraud_assets.io.formats import load_skops
    except ImportError:
        import skops.io as sio

        return sio.load(path, trusted=SKOPS_TRUSTED_TYPES)
    return load_skops(path)
