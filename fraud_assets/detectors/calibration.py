"""Score calibration: every model's raw anomaly score on one 0–1 risk scale.

Raw scores are not comparable (Isolation Forest path lengths vs autoencoder
reconstruction errors), so each model maps its score through the empirical
distribution of its own *normal* training scores:

1. ``u = cdf(score)``: the share of training scores at or below ``score``
   (quantile mapping, piecewise linear between up to ``n_quantiles`` knots).
   The training maximum maps to ``n / (n + 1)``, not 1, and above it the
   survival ``1 - u`` keeps decaying exponentially with the spread of the top
   of the training tail, so an extreme outlier still ranks above an ordinary
   tail point instead of tying at 1.
2. ``risk = 1 - (1 - u) ** gamma``: a soft saturation of the "surprise"
   ``-log(1 - u)``, chosen so that a score exceeded by ``half_risk_tail``
   (default 1 %) of normal training rows maps to 0.5. A median training row
   gets about 0.1, the 95th percentile about 0.36, 1-in-10,000 about 0.75.

Both steps are strictly increasing, so ranking by risk equals ranking by raw
score, and adding the risks of several models is meaningful (the ensemble).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1


class ScoreCalibrator:
    """Maps raw anomaly scores to a 0–1 risk fitted on training scores."""

    def __init__(self, n_quantiles: int = 1000, half_risk_tail: float = 0.01) -> None:
        if n_quantiles < 2:
            raise ValueError("n_quantiles must be at least 2")
        if not 0.0 < half_risk_tail < 0.5:
            raise ValueError("half_risk_tail must be within (0, 0.5)")
        self.n_quantiles = n_quantiles
        self.half_risk_tail = half_risk_tail

    @property
    def gamma(self) -> float:
        return float(np.log(2.0) / np.log(1.0 / self.half_risk_tail))

    def fit(self, scores: np.ndarray) -> ScoreCalibrator:
        scores = np.asarray(scores, dtype=np.float64).ravel()
        if scores.size == 0:
            raise ValueError("cannot calibrate on zero scores")
        if not np.all(np.isfinite(scores)):
            raise ValueError("scores must be finite")
        n = scores.size
        probs = np.linspace(0.0, 1.0, min(self.n_quantiles, n) + 1)
        knots = np.quantile(scores, probs)
        # The knot at probability p sits at rank p * (n - 1) + 1 of n; plotting position
        # rank / (n + 1) keeps u strictly increasing and below 1 at the training maximum.
        cdf = (probs * (n - 1) + 1.0) / (n + 1.0)
        sorted_scores = np.sort(scores)
        # np.interp needs strictly increasing x: keep the highest u of each tied knot.
        knots, last = np.unique(knots[::-1], return_index=True)
        cdf = cdf[::-1][last]
        self.knots_ = knots
        self.cdf_ = cdf
        self.n_samples_ = n
        self.tail_scale_ = self._tail_scale(sorted_scores)
        return self

    @staticmethod
    def _tail_scale(sorted_scores: np.ndarray) -> float:
        """Exponential-tail scale: mean excess over the 99th percentile (robust spread fallback)."""
        n = sorted_scores.size
        start = sorted_scores[min(int(0.99 * n), n - 1)]
        excess = sorted_scores[sorted_scores > start] - start
        scale = float(excess.mean()) if excess.size else 0.0
        if scale <= 0.0:
            scale = float(np.subtract(*np.percentile(sorted_scores, [75, 25])))
        if scale <= 0.0:
            scale = max(abs(float(sorted_scores[-1])), 1.0) * 1e-3
        return scale

    def cdf(self, scores: np.ndarray) -> np.ndarray:
        """Empirical CDF of the training scores with the exponential tail above the maximum."""
        self._check_fitted()
        scores = np.asarray(scores, dtype=np.float64)
        u = np.interp(scores, self.knots_, self.cdf_, left=0.0)
        top = self.knots_[-1]
        above = scores > top
        if np.any(above):
            survival_at_top = 1.0 - self.cdf_[-1]
            decay = np.exp(-(scores[above] - top) / self.tail_scale_)
            u[above] = 1.0 - survival_at_top * decay
        return u

    def transform(self, scores: np.ndarray) -> np.ndarray:
        """Risk in [0, 1): 0.5 where a score is exceeded by ``half_risk_tail`` of training rows."""
        survival = 1.0 - self.cdf(scores)
        return 1.0 - np.power(survival, self.gamma)

    __call__ = transform

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "format_version": FORMAT_VERSION,
            "n_quantiles": self.n_quantiles,
            "half_risk_tail": self.half_risk_tail,
            "n_samples": self.n_samples_,
            "tail_scale": self.tail_scale_,
            "knots": self.knots_.tolist(),
            "cdf": self.cdf_.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreCalibrator:
        calibrator = cls(int(data["n_quantiles"]), float(data["half_risk_tail"]))
        calibrator.knots_ = np.asarray(data["knots"], dtype=np.float64)
        calibrator.cdf_ = np.asarray(data["cdf"], dtype=np.float64)
        calibrator.n_samples_ = int(data["n_samples"])
        calibrator.tail_scale_ = float(data["tail_scale"])
        return calibrator

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> ScoreCalibrator:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def _check_fitted(self) -> None:
        if not hasattr(self, "knots_"):
            raise RuntimeError("ScoreCalibrator is not fitted; call fit(scores) first")
