"""Anomaly detectors and the pure scoring logic around them (no I/O, no Dagster).

Names are imported lazily on first access, so ``from fraud_assets.detectors
import RuleConfig`` stays NumPy-only and cheap for code-location loading;
scikit-learn loads with the detector classes. TensorFlow never loads here:
the autoencoder imports Keras inside ``fit`` and ``keras_model`` only and
scores with NumPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AnomalyDetector": "base",
    "DetectorOutput": "base",
    "AutoencoderDetector": "autoencoder",
    "IsolationForestDetector": "isolation_forest",
    "ScoreCalibrator": "calibration",
    "StandardizedScoreFusion": "fusion",
    "EnsembleCombiner": "ensemble",
    "EnsembleConfig": "ensemble",
    "EnsembleResult": "ensemble",
    "RULE_NAMES": "rules",
    "RuleConfig": "rules",
    "RuleMatrix": "rules",
    "StatisticalRules": "rules",
    "ThresholdStrategy": "thresholds",
    "fit_threshold": "thresholds",
}

__all__ = [
    "RULE_NAMES",
    "AnomalyDetector",
    "AutoencoderDetector",
    "DetectorOutput",
    "EnsembleCombiner",
    "EnsembleConfig",
    "EnsembleResult",
    "IsolationForestDetector",
    "RuleConfig",
    "RuleMatrix",
    "ScoreCalibrator",
    "StandardizedScoreFusion",
    "StatisticalRules",
    "ThresholdStrategy",
    "fit_threshold",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from fraud_assets.detectors.autoencoder import AutoencoderDetector
    from fraud_assets.detectors.base import AnomalyDetector, DetectorOutput
    from fraud_assets.detectors.calibration import ScoreCalibrator
    from fraud_assets.detectors.ensemble import EnsembleCombiner, EnsembleConfig, EnsembleResult
    from fraud_assets.detectors.fusion import StandardizedScoreFusion
    from fraud_assets.detectors.isolation_forest import IsolationForestDetector
    from fraud_assets.detectors.rules import RULE_NAMES, RuleConfig, RuleMatrix, StatisticalRules
    from fraud_assets.detectors.thresholds import ThresholdStrategy, fit_threshold
