"""``FeatureScaler``: the feature matrix on one robust scale for the detectors.

Transaction features are heavy-tailed (amounts, counts, distances) and many
are rare binary flags. Plain standardisation lets one whale set the scale for
everyone, so each column is

1. compressed with a signed ``log1p`` when it is a count, amount, ratio or
   duration (``LOG_COMPRESSED``; the others are already logs, encodings or
   bounded),
2. centred on its median and divided by its IQR / 1.349 (the standard deviation
   for normal data), falling back to the standard deviation when the IQR is 0
   (rare flags) and to 1 when the column is constant,
3. clipped to ±``clip`` (default 10), so a single extreme value cannot dominate
   a distance or a reconstruction error.

The fitted parameters are saved as plain JSON (no pickle) in a directory the
model store checksums.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from fraud_assets.features.catalog import FEATURE_COLUMNS

SCALER_FILE = "feature_scaler.json"
FORMAT_VERSION = 1
NORMAL_IQR = 1.3489795003921634  # IQR of the standard normal distribution

LOG_COMPRESSED: frozenset[str] = frozenset(
    {
        "amount",
        "amount_to_user_avg",
        "amount_to_profile_avg",
        "user_tx_count_30d",
        "tx_count_5m",
        "tx_count_1h",
        "tx_count_24h",
        "withdraw_count_24h",
        "velocity_1h_vs_30d",
        "minutes_since_last_tx",
        "country_changes_24h",
        "device_changes_24h",
        "geo_distance_km",
        "geo_velocity_kmh",
        "wallet_age_days",
        "wallet_tx_count_24h",
        "wallet_tx_count_30d",
        "wallet_other_users_tx_30d",
        "user_fraud_labels_7d",
        "user_fraud_labels_30d",
        "wallet_fraud_labels_7d",
        "wallet_fraud_labels_30d",
    }
)


def _matrix(features: pl.DataFrame | np.ndarray, columns: Sequence[str]) -> np.ndarray:
    if isinstance(features, pl.DataFrame):
        missing = [c for c in columns if c not in features.columns]
        if missing:
            raise ValueError(f"feature frame lacks columns {missing}")
        matrix = features.select(columns).to_numpy().astype(np.float64, copy=False)
    else:
        matrix = np.asarray(features, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(columns):
            raise ValueError(f"expected a (rows, {len(columns)}) matrix, got {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("feature matrix holds NaN or infinite values")
    return matrix


class FeatureScaler:
    """Robust per-column scaling of the feature matrix (scikit-learn style fit/transform)."""

    def __init__(self, columns: Sequence[str] = FEATURE_COLUMNS, clip: float = 10.0) -> None:
        self.columns: tuple[str, ...] = tuple(columns)
        self.clip = float(clip)
        self.log_mask = np.array([c in LOG_COMPRESSED for c in self.columns])
        self.center_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def _compress(self, matrix: np.ndarray) -> np.ndarray:
        out = matrix.copy()
        logged = out[:, self.log_mask]
        out[:, self.log_mask] = np.sign(logged) * np.log1p(np.abs(logged))
        return out

    def fit(self, features: pl.DataFrame | np.ndarray) -> FeatureScaler:
        matrix = self._compress(_matrix(features, self.columns))
        if matrix.shape[0] == 0:
            raise ValueError("cannot fit a scaler on zero rows")
        q25, median, q75 = np.percentile(matrix, [25, 50, 75], axis=0)
        scale = (q75 - q25) / NORMAL_IQR
        std = matrix.std(axis=0)
        scale = np.where(scale > 1e-12, scale, std)
        self.center_ = median
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        return self

    def transform(self, features: pl.DataFrame | np.ndarray) -> np.ndarray:
        """The scaled matrix (float32, columns in ``self.columns`` order)."""
        if self.center_ is None or self.scale_ is None:
            raise RuntimeError("FeatureScaler is not fitted")
        matrix = self._compress(_matrix(features, self.columns))
        scaled = (matrix - self.center_) / self.scale_
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def fit_transform(self, features: pl.DataFrame | np.ndarray) -> np.ndarray:
        return self.fit(features).transform(features)

    def save(self, directory: Path) -> Path:
        if self.center_ is None or self.scale_ is None:
            raise RuntimeError("FeatureScaler is not fitted")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / SCALER_FILE
        state = {
            "format_version": FORMAT_VERSION,
            "columns": list(self.columns),
            "log_compressed": [c for c, m in zip(self.columns, self.log_mask, strict=True) if m],
            "clip": self.clip,
            "center": self.center_.tolist(),
            "scale": self.scale_.tolist(),
        }
        path.write_text(json.dumps(state, indent=1))
        return path

    @classmethod
    def load(cls, directory: Path) -> FeatureScaler:
        state = json.loads((Path(directory) / SCALER_FILE).read_text())
        if state.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported scaler format {state.get('format_version')!r}")
        scaler = cls(columns=state["columns"], clip=state["clip"])
        scaler.log_mask = np.array([c in set(state["log_compressed"]) for c in scaler.columns])
        scaler.center_ = np.array(state["center"], dtype=np.float64)
        scaler.scale_ = np.array(state["scale"], dtype=np.float64)
        if scaler.center_.shape != (len(scaler.columns),) or scaler.scale_.shape != (
            len(scaler.columns),
        ):
            raise ValueError("scaler file is inconsistent: parameters do not match its columns")
        return scaler
