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

Medians and IQRs are fitted on at most ``FIT_SAMPLE_ROWS`` evenly spaced rows
(deterministic, and plenty for three quantiles). Work is column by column, so
transforming a million rows needs little more memory than the float32 result.

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


FIT_SAMPLE_ROWS = 500_000
TRANSFORM_BLOCK_ROWS = 16_384


def _columns(features: pl.DataFrame | np.ndarray, columns: Sequence[str]) -> list[np.ndarray]:
    """The feature columns as float vectors, each in its own dtype (no copies)."""
    if isinstance(features, pl.DataFrame):
        missing = [c for c in columns if c not in features.columns]
        if missing:
            raise ValueError(f"feature frame lacks columns {missing}")
        vectors = [features.get_column(c).to_numpy() for c in columns]
    else:
        matrix = np.asarray(features)
        if matrix.ndim != 2 or matrix.shape[1] != len(columns):
            raise ValueError(f"expected a (rows, {len(columns)}) matrix, got {matrix.shape}")
        vectors = [matrix[:, j] for j in range(len(columns))]
    vectors = [v if v.dtype.kind == "f" else v.astype(np.float64) for v in vectors]
    for name, vector in zip(columns, vectors, strict=True):
        if not np.isfinite(vector).all():
            raise ValueError(f"feature {name!r} holds NaN or infinite values")
    return vectors


def _compressed(vector: np.ndarray, log: bool) -> np.ndarray:
    return np.copysign(np.log1p(np.abs(vector)), vector) if log else vector


class FeatureScaler:
    """Robust per-column scaling of the feature matrix (scikit-learn style fit/transform)."""

    def __init__(self, columns: Sequence[str] = FEATURE_COLUMNS, clip: float = 10.0) -> None:
        self.columns: tuple[str, ...] = tuple(columns)
        self.clip = float(clip)
        self.log_mask = np.array([c in LOG_COMPRESSED for c in self.columns])
        self.center_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def fit(self, features: pl.DataFrame | np.ndarray) -> FeatureScaler:
        """Medians and IQRs from at most ``FIT_SAMPLE_ROWS`` evenly spaced rows."""
        vectors = _columns(features, self.columns)
        rows = vectors[0].shape[0] if vectors else 0
        if rows == 0:
            raise ValueError("cannot fit a scaler on zero rows")
        step = max(1, rows // FIT_SAMPLE_ROWS)
        center, scale = [], []
        for vector, log in zip(vectors, self.log_mask, strict=True):
            sample = _compressed(vector[::step].astype(np.float64), log)
            q25, median, q75 = np.percentile(sample, [25, 50, 75])
            spread = (q75 - q25) / NORMAL_IQR
            if spread <= 1e-12:
                spread = float(sample.std())
            center.append(median)
            scale.append(spread if spread > 1e-12 else 1.0)
        self.center_ = np.array(center)
        self.scale_ = np.array(scale)
        return self

    def transform(self, features: pl.DataFrame | np.ndarray) -> np.ndarray:
        """The scaled matrix (float32, columns in ``self.columns`` order)."""
        if self.center_ is None or self.scale_ is None:
            raise RuntimeError("FeatureScaler is not fitted")
        vectors = _columns(features, self.columns)
        rows = vectors[0].shape[0] if vectors else 0
        out = np.empty((rows, len(self.columns)), dtype=np.float32)
        centers, scales = self.center_.tolist(), self.scale_.tolist()
        # Blocks of rows keep the column-by-column writes inside the CPU cache.
        for begin in range(0, rows, TRANSFORM_BLOCK_ROWS):
            block = out[begin : begin + TRANSFORM_BLOCK_ROWS]
            for j, (vector, log) in enumerate(zip(vectors, self.log_mask, strict=True)):
                part = _compressed(vector[begin : begin + TRANSFORM_BLOCK_ROWS], log)
                scaled = (part - centers[j]) / scales[j]
                np.clip(scaled, -self.clip, self.clip, out=block[:, j], casting="same_kind")
        return out

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
