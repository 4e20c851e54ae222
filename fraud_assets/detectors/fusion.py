"""Label-free fusion of anomaly scores: standardise each model on its own training scores, add.

Where there are no labels to fit a combiner on (and no rules), two detectors'
raw scores are put on one scale by the mean and standard deviation of each
model's *training* scores, and the standardised scores are summed with equal
weights (the z-score average of the outlier-ensemble literature). Scores on a
ratio scale, such as an autoencoder's squared reconstruction error, are
standardised in log space: their training distribution is heavily skewed,
so one row with a hundred-fold error would otherwise decide the sum alone,
and in log space a ten-fold error is the same step wherever it starts.

Ranking only: the fused score has no calibrated meaning. On the public
benchmark (``evaluation/public_benchmarks.py``) it is the ensemble of the
semi-supervised protocol (normal-only training rows, no labels) and the
label-free comparison beside the fitted ``StackedCombiner`` under the PyOD
protocol; the exchange's scoring uses ``EnsembleCombiner`` on calibrated risks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LOG_FLOOR = 1e-12  # a perfect reconstruction (error 0) still has a finite log


class StandardizedScoreFusion:
    """Sum of per-model standardised scores; ``log_scale[i]`` standardises model i's log."""

    def __init__(self, log_scale: Sequence[bool]) -> None:
        self.log_scale = tuple(bool(flag) for flag in log_scale)

    def fit(self, training_scores: Sequence[np.ndarray]) -> StandardizedScoreFusion:
        """Learn each model's location and scale from its scores on the training rows."""
        if len(training_scores) != len(self.log_scale):
            raise ValueError("need one training score array per model")
        self.center_, self.scale_ = [], []
        for scores, log in zip(training_scores, self.log_scale, strict=True):
            values = self._transform(scores, log)
            if values.size < 2:
                raise ValueError("need at least two training scores per model")
            std = float(values.std())
            self.center_.append(float(values.mean()))
            self.scale_.append(std if std > 0 else 1.0)
        return self

    def standardized(self, scores: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Each model's scores in standard deviations of its training scores."""
        if not hasattr(self, "center_"):
            raise RuntimeError("fit the fusion on training scores first")
        if len(scores) != len(self.log_scale):
            raise ValueError("need one score array per model")
        return [
            (self._transform(s, log) - c) / sd
            for s, log, c, sd in zip(scores, self.log_scale, self.center_, self.scale_, strict=True)
        ]

    def combine(self, scores: Sequence[np.ndarray]) -> np.ndarray:
        """The fused score per row (higher = more anomalous)."""
        columns = self.standardized(scores)
        if len({c.shape for c in columns}) != 1:
            raise ValueError("all models must score the same rows")
        return np.sum(columns, axis=0)

    @staticmethod
    def _transform(scores: np.ndarray, log: bool) -> np.ndarray:
        values = np.asarray(scores, dtype=np.float64).ravel()
        if not np.isfinite(values).all():
            raise ValueError("scores must be finite")
        if log:
            if (values < 0).any():
                raise ValueError("log-scaled scores must be non-negative")
            return np.log(np.maximum(values, LOG_FLOOR))
        return values
