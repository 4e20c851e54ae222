"""What every anomaly detector shares: input handling, threshold, calibration.

Sign conventions follow scikit-learn: ``score_samples`` is higher for more
normal rows and ``predict`` returns 1 (normal) / -1 (anomaly). Thresholds and
calibration work on ``anomaly_score`` (higher = more anomalous); a row is an
anomaly when ``anomaly_score > threshold_``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin

from fraud_assets.detectors.calibration import ScoreCalibrator
from fraud_assets.detectors.thresholds import ThresholdStrategy, fit_threshold

CONFIG_FILE = "config.json"


def to_matrix(
    X: Any, feature_names: list[str] | None = None, dtype: type = np.float64
) -> tuple[np.ndarray, list[str] | None]:
    """A 2-D C-contiguous float array from numpy, pandas or polars, columns in model order.

    When the model was fitted on named columns, a frame is reordered by name
    (extra columns ignored, missing ones an error); a bare array must already
    be in the fitted order.
    """
    names: list[str] | None = None
    columns = getattr(X, "columns", None)
    if columns is not None and not isinstance(X, np.ndarray):
        names = [str(c) for c in columns]
        if feature_names is not None:
            missing = [c for c in feature_names if c not in names]
            if missing:
                raise KeyError(f"feature columns missing: {missing}")
            if names != feature_names:
                X = X[feature_names]
            names = list(feature_names)
        if type(X).__module__.startswith("pandas"):
            # Per-column conversion: mixed bool/int/float frames would go via object otherwise.
            matrix = X.to_numpy(dtype=dtype, na_value=np.nan)
        else:
            matrix = X.to_numpy()
    else:
        matrix = np.asarray(X)
    if matrix.ndim == 1:
        matrix = matrix.reshape(-1, 1)
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D feature matrix, got shape {matrix.shape}")
    matrix = np.ascontiguousarray(matrix, dtype=dtype)
    return matrix, names


@dataclass(frozen=True)
class DetectorOutput:
    """One scoring pass: raw anomaly score, calibrated 0–100 risk and 1/-1 prediction."""

    anomaly_score: np.ndarray
    risk: np.ndarray
    prediction: np.ndarray


class AnomalyDetector(OutlierMixin, BaseEstimator):
    """Base class: subclasses implement ``_fit_model`` and ``_anomaly_score_matrix``."""

    default_threshold_strategy: ThresholdStrategy = ThresholdStrategy.percentile(95.0)
    _input_dtype: type = np.float64

    # -- subclass hooks -------------------------------------------------
    def _fit_model(self, X: np.ndarray) -> None:
        raise NotImplementedError

    def _anomaly_score_matrix(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- fitting ---------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> AnomalyDetector:
        """Fit on (mostly normal) rows; then threshold and calibrate on their scores.

        ``y`` (1 = fraud) is only used by label-based threshold strategies.
        """
        matrix, names = to_matrix(X, dtype=self._input_dtype)
        if matrix.shape[0] < 2:
            raise ValueError("need at least two rows to fit")
        self.feature_names_in_ = names
        self.n_features_in_ = matrix.shape[1]
        self._fit_model(matrix)
        scores = self._anomaly_score_matrix(matrix)
        self.calibrator_ = ScoreCalibrator().fit(scores)
        strategy = self.threshold_strategy or self.default_threshold_strategy
        labels = y if strategy.needs_labels else None
        self.threshold_ = fit_threshold(scores, strategy, labels)
        return self

    def fit_threshold(
        self, X: Any, strategy: ThresholdStrategy | None = None, labels: Any = None
    ) -> float:
        """Refit ``threshold_`` on the scores of ``X`` (e.g. a labelled validation set)."""
        strategy = strategy or self.threshold_strategy or self.default_threshold_strategy
        self.threshold_ = fit_threshold(self.anomaly_score(X), strategy, labels)
        return self.threshold_

    def fit_calibration(self, X: Any) -> ScoreCalibrator:
        """Refit the 0–1 risk mapping on the scores of ``X`` (normal rows)."""
        self.calibrator_ = ScoreCalibrator().fit(self.anomaly_score(X))
        return self.calibrator_

    def set_threshold(self, threshold: float) -> AnomalyDetector:
        self.threshold_ = float(threshold)
        return self

    # -- scoring ---------------------------------------------------------
    def _prepare(self, X: Any) -> np.ndarray:
        self._check_fitted()
        matrix, _ = to_matrix(X, self.feature_names_in_, dtype=self._input_dtype)
        if matrix.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} features, got {matrix.shape[1]}")
        return matrix

    def anomaly_score(self, X: Any) -> np.ndarray:
        """Higher = more anomalous; what thresholds and calibration use."""
        return self._anomaly_score_matrix(self._prepare(X))

    def score_samples(self, X: Any) -> np.ndarray:
        """Higher = more normal (scikit-learn convention)."""
        return -self.anomaly_score(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """Positive for normal rows, negative for anomalies (``threshold_ - anomaly_score``)."""
        return self.threshold_ - self.anomaly_score(X)

    def predict(self, X: Any) -> np.ndarray:
        return self.prediction_from_scores(self.anomaly_score(X))

    def risk_score(self, X: Any) -> np.ndarray:
        """Calibrated risk on the ensemble's 0–100 scale."""
        return self.risk_from_scores(self.anomaly_score(X))

    def evaluate(self, X: Any) -> DetectorOutput:
        """Anomaly score, risk and prediction from a single scoring pass."""
        scores = self.anomaly_score(X)
        return DetectorOutput(
            scores, self.risk_from_scores(scores), self.prediction_from_scores(scores)
        )

    def prediction_from_scores(self, scores: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return np.where(np.asarray(scores) > self.threshold_, -1, 1).astype(np.int8)

    def risk_from_scores(self, scores: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return 100.0 * self.calibrator_.transform(scores)

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(X) first")

    # -- persistence helpers ----------------------------------------------
    def _common_state(self) -> dict[str, Any]:
        self._check_fitted()
        strategy = self.threshold_strategy
        return {
            "detector": type(self).__name__,
            "params": {
                k: (v.to_dict() if isinstance(v, ThresholdStrategy) else v)
                for k, v in self.get_params().items()
            },
            "threshold_strategy": strategy.to_dict() if strategy else None,
            "threshold": self.threshold_,
            "calibration": self.calibrator_.to_dict(),
            "feature_names": self.feature_names_in_,
            "n_features": self.n_features_in_,
        }

    def _restore_common_state(self, state: dict[str, Any]) -> None:
        self.threshold_ = float(state["threshold"])
        self.calibrator_ = ScoreCalibrator.from_dict(state["calibration"])
        self.feature_names_in_ = state["feature_names"]
        self.n_features_in_ = int(state["n_features"])

    @staticmethod
    def _params_from_state(state: dict[str, Any]) -> dict[str, Any]:
        params = dict(state["params"])
        if params.get("threshold_strategy") is not None:
            params["threshold_strategy"] = ThresholdStrategy.from_dict(params["threshold_strategy"])
        return params

    @staticmethod
    def _write_json(directory: Path, state: dict[str, Any]) -> None:
        (directory / CONFIG_FILE).write_text(json.dumps(state, indent=2, default=_json_default))

    @staticmethod
    def _read_json(directory: Path) -> dict[str, Any]:
        return json.loads((Path(directory) / CONFIG_FILE).read_text())


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
