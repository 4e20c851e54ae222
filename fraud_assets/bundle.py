"""A model bundle: everything one version needs to score transactions.

Training produces the pieces (scaler, Isolation Forest, autoencoder,
thresholds with calibration); scoring, validation and the A/B test use the
same ``ScoringBundle`` methods, so a transaction gets the same risk wherever
it is scored. No I/O here: loading a bundle from the registry lives in
``fraud_assets.bundle_loader``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from fraud_assets.detectors.calibration import ScoreCalibrator
from fraud_assets.detectors.ensemble import EnsembleCombiner, EnsembleConfig, EnsembleResult
from fraud_assets.detectors.reasons import HourReasons, ReasonConfig, reasons_for_rows
from fraud_assets.detectors.rules import RuleConfig, RuleMatrix, StatisticalRules
from fraud_assets.detectors.score_mapping import ScoreMapping
from fraud_assets.detectors.stacking import StackedCombiner


@dataclass
class ModelThresholds:
    """Per-model alert thresholds, the calibrators that put scores on a 0–100 risk scale,
    the ensemble combiner fitted on labelled training rows (None: the configured strategy)
    and the map of the ensemble's risk onto the active version's scale and the capacity
    cuts (None: the combiner's risk as is; see ``score_mapping.py``).
    """

    isolation_forest: float
    autoencoder: float
    isolation_calibrator: ScoreCalibrator
    autoencoder_calibrator: ScoreCalibrator
    strategy: dict[str, Any] = field(default_factory=dict)
    combiner: StackedCombiner | None = None
    score_mapping: ScoreMapping | None = None

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        (directory / "thresholds.json").write_text(
            json.dumps(
                {
                    "isolation_forest": self.isolation_forest,
                    "autoencoder": self.autoencoder,
                    "strategy": self.strategy,
                    "isolation_calibrator": self.isolation_calibrator.to_dict(),
                    "autoencoder_calibrator": self.autoencoder_calibrator.to_dict(),
                    "combiner": self.combiner.to_dict() if self.combiner else None,
                    "score_mapping": self.score_mapping.to_dict() if self.score_mapping else None,
                },
                indent=1,
            )
        )

    @classmethod
    def load(cls, directory: Path) -> ModelThresholds:
        data = json.loads((Path(directory) / "thresholds.json").read_text())
        return cls(
            isolation_forest=float(data["isolation_forest"]),
            autoencoder=float(data["autoencoder"]),
            strategy=data["strategy"],
            isolation_calibrator=ScoreCalibrator.from_dict(data["isolation_calibrator"]),
            autoencoder_calibrator=ScoreCalibrator.from_dict(data["autoencoder_calibrator"]),
            combiner=StackedCombiner.from_dict(data["combiner"]) if data.get("combiner") else None,
            score_mapping=(
                ScoreMapping.from_dict(data["score_mapping"]) if data.get("score_mapping") else None
            ),
        )


@dataclass
class JsonReport:
    """A JSON document stored in the model volume (validation metrics, A/B verdicts)."""

    data: dict[str, Any]

    def save(self, directory: Path) -> None:
        (Path(directory) / "report.json").write_text(json.dumps(self.data, indent=1, default=float))

    @classmethod
    def load(cls, directory: Path) -> JsonReport:
        return cls(json.loads((Path(directory) / "report.json").read_text()))


@dataclass
class LayerScores:
    raw: np.ndarray
    prediction: np.ndarray  # 1 normal, -1 anomaly
    risk: np.ndarray  # 0–100


@dataclass
class ScoringBundle:
    version: str
    scaler: Any
    isolation_forest: Any
    autoencoder: Any
    thresholds: ModelThresholds
    rules: RuleConfig = field(default_factory=RuleConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)

    def matrix(self, features: pl.DataFrame) -> np.ndarray:
        """The scaled model input: the columns this bundle was trained on (``scaler.columns``,
        in its order), which an older bundle may have fewer of than ``FEATURE_COLUMNS``.

        The scaler reads them from the frame as the hourly graph's layers do, so a row
        gets the same input here as there.
        """
        return np.asarray(self.scaler.transform(features), dtype=np.float32)

    def statistical(self, features: pl.DataFrame) -> tuple[np.ndarray, RuleMatrix]:
        """Statistical risk and the fired-rule matrix (``RuleMatrix.flags()`` lists them per row)."""
        rules = StatisticalRules(self.rules).evaluate_matrix(features)
        return rules.risk, rules

    def isolation(self, x: np.ndarray) -> LayerScores:
        score = np.asarray(self.isolation_forest.anomaly_score(x), dtype=np.float64)
        return self._layer(
            score, self.thresholds.isolation_forest, self.thresholds.isolation_calibrator
        )

    def autoencoder_scores(self, x: np.ndarray) -> tuple[LayerScores, np.ndarray]:
        error, latent = self.autoencoder.error_and_latent(x)
        layer = self._layer(
            error, self.thresholds.autoencoder, self.thresholds.autoencoder_calibrator
        )
        return layer, latent

    @staticmethod
    def _layer(score: np.ndarray, threshold: float, calibrator: ScoreCalibrator) -> LayerScores:
        prediction = np.where(score > threshold, -1, 1).astype(np.int8)
        risk = (100.0 * calibrator.transform(score)).astype(np.float32)
        return LayerScores(score, prediction, risk)

    def combine(
        self,
        stat_risk: np.ndarray,
        flags: RuleMatrix | list[list[str]],
        iso: LayerScores,
        ae: LayerScores,
    ) -> EnsembleResult:
        thresholds = self.thresholds
        return EnsembleCombiner(
            self.ensemble, thresholds.combiner, thresholds.score_mapping
        ).combine(stat_risk, iso.risk, ae.risk, iso.prediction, ae.prediction, flags)

    def score(self, features: pl.DataFrame) -> dict[str, Any]:
        """Every layer and the decision for a feature frame, in memory (validation, A/B, replay)."""
        x = self.matrix(features)
        stat_risk, flags = self.statistical(features)
        iso = self.isolation(x)
        ae, latent = self.autoencoder_scores(x)
        result = self.combine(stat_risk, flags, iso, ae)
        return {
            "statistical_risk": stat_risk,
            "flags": flags,
            "isolation": iso,
            "autoencoder": ae,
            "latent": latent,
            "ensemble": result,
        }

    def reasons(
        self, features: pl.DataFrame, scored: dict[str, Any], config: ReasonConfig | None = None
    ) -> HourReasons:
        """Reason codes for ``score(features)``'s rows, as the scoring graph computes them."""
        result, flags = scored["ensemble"], scored["flags"]
        return reasons_for_rows(
            features,
            flags.fired,
            flags.names,
            self.rules.points,
            result.decision,
            result.total_risk,
            scored["isolation"].risk,
            scored["autoencoder"].risk,
            self.scaler,
            self.isolation_forest,
            self.autoencoder,
            config,
        )
