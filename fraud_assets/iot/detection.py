"""Anomaly detectors for sensor readings: per-sensor statistics plus an Isolation Forest.

Each fault has a signature that a simple statistic matches exactly, so the
statistics do the labelling and the Isolation Forest (the seed's model) adds
what is multivariate and unnamed:

* ``stuck``: a sensor repeating *all three* quantised values reading after
  reading. Real noise almost never repeats one value, let alone three; no
  distance-based model can see it (the values are ordinary).
* ``dropout``: missing reporting slots, i.e. a gap in a sensor's timestamps.
  Missing rows have no feature vector to score.
* ``spike``: the residual from a centred rolling median, in units of the
  sensor's noise σ (estimated from first differences, so the daily cycle does
  not inflate it). The median ignores the daily cycle and steps,
  so a one- or two-reading excursion stands out even when its value is
  ordinary for the day (10 °C above the night minimum is still an afternoon value).
* ``drift``: a sensor leaving the fleet consensus. Co-located sensors see the
  same weather, so each sensor is regressed on the fleet median at the same
  instant; a drifting calibration shows as a growing residual, smoothed so
  spikes do not count. A single sensor cannot tell its drift from a weather
  change, so this needs at least ``drift_min_sensors`` reporting together.
* ``isolation_forest``: the per-partition normalised values and their
  first differences scored by the shared Isolation Forest detector; its
  threshold is a cap on the share of readings it may flag.

Every detector returns rows of one frame shape: the reading (or, for a
dropout, the last reading before the gap), ``anomaly_score``, the
``threshold`` it exceeded, and ``anomaly_type``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraud_assets.generator.sensors import METRICS, QUANTUM

DETECTION_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "sensor_id",
    *METRICS,
    "anomaly_score",
    "threshold",
    "anomaly_type",
)
ANOMALY_TYPES: tuple[str, ...] = ("spike", "stuck", "drift", "dropout", "isolation_forest")
NORM_COLUMNS: tuple[str, ...] = tuple(f"{m}_norm" for m in METRICS)


@dataclass(frozen=True)
class DetectionParams:
    """Thresholds of the per-sensor statistics and the Isolation Forest."""

    stuck_min_repeats: int = 3
    spike_window: int = 7
    spike_z: float = 10.0
    drift_window: int = 9
    drift_z: float = 6.0
    drift_min_sensors: int = 4
    dropout_min_missing: int = 2
    iforest_max_alert_rate: float = 0.005
    iforest_n_estimators: int = 100
    seed: int = 0

    @property
    def version(self) -> str:
        """Recorded as ``model_version``: which detectors and thresholds produced a row."""
        return (
            f"stats-v1(stuck>={self.stuck_min_repeats},spike_z>{self.spike_z:g},"
            f"drift_z>{self.drift_z:g},gap>={self.dropout_min_missing})"
            f"+iforest-v1(n={self.iforest_n_estimators},rate={self.iforest_max_alert_rate:g})"
        )


def _sorted(readings: pd.DataFrame) -> pd.DataFrame:
    return readings.sort_values(["sensor_id", "timestamp"], kind="stable").reset_index(drop=True)


def _key(frame: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_frame(frame[["timestamp", "sensor_id"]])


def _rows(
    frame: pd.DataFrame, score: np.ndarray | pd.Series, threshold: float, anomaly_type: str
) -> pd.DataFrame:
    out = frame[["timestamp", "sensor_id", *METRICS]].copy()
    out["anomaly_score"] = np.asarray(score, dtype=np.float64)
    out["threshold"] = float(threshold)
    out["anomaly_type"] = anomaly_type
    return out.reset_index(drop=True)


def empty_detections() -> pd.DataFrame:
    frame = pd.DataFrame({c: [] for c in DETECTION_COLUMNS})
    return tidy_detections(frame)


def tidy_detections(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype(
        {
            "sensor_id": str,
            "anomaly_type": str,
            **{m: np.float32 for m in METRICS},
            "anomaly_score": np.float32,
            "threshold": np.float32,
        }
    )
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[us, UTC]")
    return frame.sort_values(["timestamp", "sensor_id", "anomaly_type"], kind="stable").reset_index(
        drop=True
    )[list(DETECTION_COLUMNS)]


def infer_interval(readings: pd.DataFrame) -> pd.Timedelta:
    """The reporting interval: the most common step between a sensor's consecutive readings."""
    steps = (
        readings.sort_values(["sensor_id", "timestamp"]).groupby("sensor_id")["timestamp"].diff()
    )
    steps = steps.dropna()
    steps = steps[steps > pd.Timedelta(0)]
    if steps.empty:
        return pd.Timedelta(minutes=5)
    return steps.mode().iloc[0]


def detect_stuck(readings: pd.DataFrame, params: DetectionParams) -> pd.DataFrame:
    """Readings identical in every metric to their predecessor, in runs of ``stuck_min_repeats``+."""
    frame = _sorted(readings)
    values = frame[list(METRICS)].to_numpy()
    same_sensor = frame["sensor_id"].to_numpy()[1:] == frame["sensor_id"].to_numpy()[:-1]
    repeat = np.r_[False, same_sensor & np.all(values[1:] == values[:-1], axis=1)]
    run_id = np.cumsum(~repeat)
    run_length = pd.Series(repeat.astype(int)).groupby(run_id).transform("sum").to_numpy()
    flagged = repeat & (run_length >= params.stuck_min_repeats)
    return _rows(frame[flagged], run_length[flagged], params.stuck_min_repeats - 1, "stuck")


def detect_dropouts(
    readings: pd.DataFrame,
    params: DetectionParams,
    window: tuple[pd.Timestamp, pd.Timestamp] | None = None,
    interval: pd.Timedelta | None = None,
) -> pd.DataFrame:
    """Gaps of ``dropout_min_missing``+ reporting slots; one row per gap at its first missing slot.

    With ``window`` (the partition's [start, end)), silence at the start or end
    of the day counts too. The row carries the last reading before the gap (the
    first after it for a gap at the start of the window).
    """
    if readings.empty:
        return empty_detections()
    interval = interval or infer_interval(readings)
    rows = []
    for _sensor, group in _sorted(readings).groupby("sensor_id", sort=False):
        times = group["timestamp"].tolist()
        # (previous reading's position, its time) → (next time); position -1 = before the first.
        bounds = [(k, times[k], times[k + 1]) for k in range(len(times) - 1)]
        if window is not None:
            bounds = [(-1, window[0] - interval, times[0]), *bounds]
            bounds.append((len(times) - 1, times[-1], window[1]))
        for position, before, after in bounds:
            missing = round((after - before) / interval) - 1
            if missing >= params.dropout_min_missing:
                anchor = group.iloc[[max(position, 0)]].copy()
                anchor["timestamp"] = before + interval
                rows.append(_rows(anchor, [missing], params.dropout_min_missing - 1, "dropout"))
    return pd.concat(rows, ignore_index=True) if rows else empty_detections()


def _robust_scale(values: np.ndarray, floor: float) -> float:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return floor
    mad = np.median(np.abs(values - np.median(values)))
    return max(1.4826 * float(mad), floor)


def _centred_median(values: np.ndarray, window: int) -> np.ndarray:
    """Rolling median centred on each point; the ends are mirrored so every window is full."""
    half = window // 2
    if values.size <= half:
        return np.full_like(values, np.median(values))
    padded = np.pad(values, half, mode="reflect")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, window), axis=1)


def _noise_scale(values: np.ndarray, floor: float) -> float:
    """The reading noise σ from first differences (robust to spikes, blind to slow cycles)."""
    steps = np.diff(values)
    steps = steps[np.isfinite(steps)]
    return _robust_scale(steps, floor * np.sqrt(2.0)) / np.sqrt(2.0) if steps.size else floor


def detect_spikes(
    readings: pd.DataFrame, params: DetectionParams, exclude: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Readings far from the centred rolling median of their sensor, in units of its noise σ.

    ``exclude`` (stuck readings) is left out of the noise estimate and the
    result: a frozen stretch has no noise and would make ordinary noise look wild.
    """
    frame = _sorted(readings)
    key = _key(frame)
    excluded = np.zeros(len(frame), dtype=bool)
    if exclude is not None and not exclude.empty:
        excluded = key.isin(_key(exclude))
    best = np.zeros(len(frame))
    groups = frame.groupby("sensor_id", sort=False).indices
    for metric in METRICS:
        values = frame[metric].to_numpy(dtype=np.float64)
        for index in groups.values():
            series = values[index]
            residual = series - _centred_median(series, params.spike_window)
            scale = _noise_scale(series[~excluded[index]], QUANTUM[metric])
            best[index] = np.maximum(best[index], np.abs(residual) / scale)
    flagged = (best > params.spike_z) & ~excluded
    return _rows(frame[flagged], best[flagged], params.spike_z, "spike")


@dataclass(frozen=True)
class _Line:
    """``y ≈ a + b·(x - x0)``, centred at ``x0`` so pressures near 1013 fit stably."""

    a: float
    b: float
    x0: float
    scale: float

    def predict(self, x: np.ndarray | pd.Series) -> np.ndarray:
        return self.a + self.b * (np.asarray(x, dtype=np.float64) - self.x0)


def _robust_line(y: np.ndarray, x: np.ndarray, floor: float, share: float = 0.6) -> _Line | None:
    """A line through the bulk of the points (trimmed least squares), starting from ``b = 1``.

    Each pass refits on the ``share`` of points closest to the current line, so
    faults covering up to ~40 % of a sensor's day (two long drifts) cannot drag
    the fit onto themselves.
    """
    keep = np.flatnonzero(np.isfinite(y) & np.isfinite(x))
    if keep.size < 10:
        return None
    x0 = float(np.median(x[keep]))
    xc, yk = x[keep] - x0, y[keep]
    a, b = float(np.median(yk - xc)), 1.0
    size = max(10, int(share * keep.size))
    for _ in range(8):
        residual = yk - (a + b * xc)
        bulk = np.argsort(np.abs(residual - np.median(residual)))[:size]
        design = np.column_stack([np.ones(size), xc[bulk]])
        (a, b), *_ = np.linalg.lstsq(design, yk[bulk], rcond=None)
    return _Line(float(a), float(b), x0, _robust_scale(yk - (a + b * xc), floor))


def _consensus(wide: pd.DataFrame, min_sensors: int, floor: float) -> pd.Series:
    """The fleet's value at each instant, each sensor first mapped onto the fleet's scale.

    A plain median of raw values jumps whenever a sensor with a large offset
    (elevation, placement) stops reporting; mapping every sensor through its own
    fit against a first median makes the consensus independent of who reports.
    """
    counts = wide.notna().sum(axis=1)
    first = wide.median(axis=1, skipna=True).where(counts >= min_sensors).to_numpy(np.float64)
    aligned = pd.DataFrame(np.nan, index=wide.index, columns=wide.columns)
    for sensor in wide.columns:
        line = _robust_line(wide[sensor].to_numpy(np.float64), first, floor)
        if line is not None and abs(line.b) > 0.2:
            aligned[sensor] = (wide[sensor] - line.a) / line.b + line.x0
    return aligned.median(axis=1, skipna=True).where(aligned.notna().sum(axis=1) >= min_sensors)


def detect_drift(
    readings: pd.DataFrame, params: DetectionParams, exclude: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Readings whose smoothed residual from the fleet consensus exceeds ``drift_z``.

    ``exclude`` (e.g. stuck readings) is left out of the consensus and of the
    result: a frozen sensor leaves the consensus too, but it is already explained.
    """
    frame = _sorted(readings)
    if frame["sensor_id"].nunique() < params.drift_min_sensors:
        return empty_detections()
    key = _key(frame)
    excluded = key.isin(_key(exclude)) if exclude is not None and not exclude.empty else None
    best = np.zeros(len(frame))
    for metric in METRICS:
        values = frame[metric].astype(np.float64)
        if excluded is not None:
            values = values.mask(excluded)
        wide = (
            frame.assign(value=values)
            .pivot_table(index="timestamp", columns="sensor_id", values="value", aggfunc="first")
            .reindex(columns=sorted(frame["sensor_id"].unique()))
        )
        consensus = _consensus(wide, params.drift_min_sensors, QUANTUM[metric])
        x = consensus.to_numpy(np.float64)
        z_wide = pd.DataFrame(np.nan, index=wide.index, columns=wide.columns)
        for sensor in wide.columns:
            y = wide[sensor].to_numpy(np.float64)
            line = _robust_line(y, x, QUANTUM[metric])
            if line is None:
                continue
            residual = pd.Series(y - line.predict(x), index=wide.index).dropna()
            smooth = residual.rolling(params.drift_window, center=True, min_periods=1).median()
            z_wide.loc[smooth.index, sensor] = np.abs(smooth.to_numpy()) / line.scale
        z = z_wide.stack().reindex(key).to_numpy(dtype=np.float64)
        best = np.maximum(best, np.nan_to_num(z, nan=0.0))
    flagged = best > params.drift_z
    if excluded is not None:
        flagged &= ~excluded
    return _rows(frame[flagged], best[flagged], params.drift_z, "drift")


def normalise(readings: pd.DataFrame) -> pd.DataFrame:
    """Per-sensor robust scaling of each metric over the partition: (x - median) / IQR.

    Per sensor, so sensors with different placements compare; median/IQR, so one
    spike does not squash every other reading of the day.
    """
    frame = readings[["timestamp", "sensor_id", *METRICS]].copy()
    grouped = frame.groupby("sensor_id", sort=False)
    for metric in METRICS:
        median = grouped[metric].transform("median")
        iqr = grouped[metric].transform(lambda s: s.quantile(0.75) - s.quantile(0.25))
        iqr = iqr.where(iqr > QUANTUM[metric], QUANTUM[metric])
        frame[f"{metric}_norm"] = ((frame[metric] - median) / iqr).astype(np.float32)
    return frame[["timestamp", "sensor_id", *NORM_COLUMNS]]


def iforest_features(staging: pd.DataFrame) -> pd.DataFrame:
    """Normalised values and their per-sensor first differences (a jump is a feature too)."""
    frame = _sorted(staging)
    features = frame[["timestamp", "sensor_id", *NORM_COLUMNS]].copy()
    for column in NORM_COLUMNS:
        features[f"{column}_step"] = (
            frame.groupby("sensor_id", sort=False)[column].diff().fillna(0.0).astype(np.float64)
        )
    return features


def detect_isolation_forest(
    readings: pd.DataFrame, staging: pd.DataFrame, params: DetectionParams
) -> pd.DataFrame:
    """The shared Isolation Forest fitted on the partition; flags at most the configured share."""
    from fraud_assets.detectors import IsolationForestDetector
    from fraud_assets.detectors.thresholds import ThresholdStrategy

    features = iforest_features(staging)
    columns = [c for c in features.columns if c not in ("timestamp", "sensor_id")]
    if len(features) < 10:
        return empty_detections()
    detector = IsolationForestDetector(
        n_estimators=params.iforest_n_estimators,
        random_state=params.seed,
        threshold_strategy=ThresholdStrategy(
            "max_alert_rate", {"rate": params.iforest_max_alert_rate}
        ),
    )
    detector.fit(features[columns])
    scores = detector.anomaly_score(features[columns])
    flagged = scores > detector.threshold_
    merged = features.loc[flagged, ["timestamp", "sensor_id"]].merge(
        readings, on=["timestamp", "sensor_id"], how="left"
    )
    return _rows(merged, scores[flagged], detector.threshold_, "isolation_forest")


def detect_anomalies(
    readings: pd.DataFrame,
    staging: pd.DataFrame | None = None,
    params: DetectionParams | None = None,
    window: tuple[pd.Timestamp, pd.Timestamp] | None = None,
    use_isolation_forest: bool = True,
) -> pd.DataFrame:
    """Every detector over one partition; one row per (reading, detector) that flagged it."""
    params = params or DetectionParams()
    if readings.empty:
        return empty_detections()
    stuck = detect_stuck(readings, params)
    parts = [
        stuck,
        detect_dropouts(readings, params, window=window),
        detect_spikes(readings, params, exclude=stuck),
        detect_drift(readings, params, exclude=stuck),
    ]
    if use_isolation_forest:
        staging = normalise(readings) if staging is None else staging
        parts.append(detect_isolation_forest(readings, staging, params))
    parts = [p for p in parts if not p.empty]
    return tidy_detections(pd.concat(parts, ignore_index=True)) if parts else empty_detections()
