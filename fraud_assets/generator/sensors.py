"""Synthetic IoT sensor readings with labelled faults, so anomaly detection can be measured.

A fleet of sensors at one site reports temperature (°C), relative humidity
(%) and barometric pressure (hPa, ~1013: not Pa) every few minutes. Every
sensor follows the site's weather: a daily temperature cycle peaking in the
afternoon, humidity moving against temperature, pressure following slow
synoptic waves plus the semi-diurnal atmospheric tide. Each sensor adds its
own placement (offsets, sun exposure, a slight phase lag) and noise, and
readings are quantised like real hardware (0.01 °C, 0.1 %, 0.01 hPa).

Faults are injected per sensor and day and labelled row by row:

* ``spike``: one or two readings of one metric jump far off and come back;
* ``stuck``: the sensor repeats its last reading for 1–3 hours;
* ``drift``: one metric's calibration drifts linearly for 3–8 hours, then resets;
* ``dropout``: the sensor goes silent for 30 minutes to 3 hours (rows missing;
  the labels hold the missing timestamps).

Everything is a pure function of ``(seed, day)``: a day generated alone equals
the same day generated inside a longer range, so partitions are reproducible
and reruns idempotent. Faults never cross midnight.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FAULT_TYPES: tuple[str, ...] = ("spike", "stuck", "drift", "dropout")
METRICS: tuple[str, ...] = ("temperature", "humidity", "pressure")

# The seed's physical ranges (validate_sensor_data); generated values stay inside them.
PHYSICAL_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (-40.0, 85.0),
    "humidity": (0.0, 100.0),
    "pressure": (870.0, 1085.0),
}
QUANTUM: dict[str, float] = {"temperature": 0.01, "humidity": 0.1, "pressure": 0.01}
NOISE: dict[str, float] = {"temperature": 0.12, "humidity": 0.5, "pressure": 0.08}

READING_COLUMNS: tuple[str, ...] = ("timestamp", "sensor_id", *METRICS)
LABEL_COLUMNS: tuple[str, ...] = (
    "fault_id",
    "sensor_id",
    "timestamp",
    "fault_type",
    "metric",
    "injected_offset",
)

# Fault sizes: (low, high) of the absolute offset, per metric.
_SPIKE_SIZE = {"temperature": (8.0, 20.0), "humidity": (15.0, 35.0), "pressure": (8.0, 25.0)}
_DRIFT_SIZE = {"temperature": (3.0, 8.0), "humidity": (8.0, 20.0), "pressure": (4.0, 10.0)}
_HOURS = {"stuck": (1.0, 3.0), "drift": (3.0, 8.0), "dropout": (0.5, 3.0)}


@dataclass(frozen=True)
class FaultRates:
    """Expected number of injected faults per sensor and day, by type (Poisson)."""

    spike: float = 2.0
    stuck: float = 0.4
    drift: float = 0.3
    dropout: float = 0.4

    def rate(self, fault_type: str) -> float:
        return float(getattr(self, fault_type))


@dataclass(frozen=True)
class SensorFleet:
    """Which sensors report how often; ``seed`` fixes the site, the sensors and every fault."""

    n_sensors: int = 8
    interval_minutes: int = 5
    seed: int = 7
    faults: FaultRates = field(default_factory=FaultRates)
    # A sensor faulty for most of its day is broken, not anomalous: faults that
    # would push a sensor-day past this share are not injected.
    max_fault_share: float = 0.35

    def __post_init__(self) -> None:
        if self.n_sensors < 1:
            raise ValueError("n_sensors must be at least 1")
        if self.interval_minutes < 1 or (24 * 60) % self.interval_minutes:
            raise ValueError("interval_minutes must divide a day (1, 2, 5, 10, 15, 30, 60, ...)")

    @property
    def sensor_ids(self) -> list[str]:
        return [f"sensor_{i + 1:03d}" for i in range(self.n_sensors)]

    @property
    def readings_per_day(self) -> int:
        return 24 * 60 // self.interval_minutes


@dataclass(frozen=True)
class SensorBatch:
    """Readings (rows present in ``sensor_data``) and the labels of the injected faults."""

    readings: pd.DataFrame
    labels: pd.DataFrame


@dataclass(frozen=True)
class _SensorProfile:
    temperature_offset: float
    sun_exposure: float
    phase_lag_h: float
    humidity_offset: float
    pressure_offset: float


def _rng(*key: int | str) -> np.random.Generator:
    """An independent, reproducible stream per key (strings hashed stably)."""
    words = [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in key]
    return np.random.default_rng(words)


def _as_day(day: dt.date | str | pd.Timestamp) -> dt.date:
    if isinstance(day, str):
        return dt.date.fromisoformat(day[:10])
    if isinstance(day, pd.Timestamp | dt.datetime):
        return day.date()
    return day


def _waves(rng: np.random.Generator, periods_h: tuple[float, float], count: int, amp: float):
    periods = rng.uniform(*periods_h, size=count)
    phases = rng.uniform(0, 2 * np.pi, size=count)
    amps = amp * rng.uniform(0.5, 1.0, size=count) / np.sqrt(count)
    return periods, phases, amps


def _wave_sum(hours: np.ndarray, waves) -> np.ndarray:
    periods, phases, amps = waves
    return np.sum(
        amps[:, None] * np.sin(2 * np.pi * hours[None, :] / periods[:, None] + phases[:, None]),
        axis=0,
    )


class _Site:
    """The weather every sensor sees, as smooth functions of absolute time (no state)."""

    def __init__(self, seed: int) -> None:
        rng = _rng(seed, "site")
        self.temperature_waves = _waves(rng, (40.0, 170.0), 3, 3.0)
        self.humidity_waves = _waves(rng, (30.0, 120.0), 3, 8.0)
        self.pressure_waves = _waves(rng, (70.0, 220.0), 3, 9.0)
        self.base_temperature = rng.uniform(14.0, 22.0)
        self.daily_amplitude = rng.uniform(3.0, 5.0)
        self.base_humidity = rng.uniform(50.0, 62.0)

    def signals(self, hours: np.ndarray, profile: _SensorProfile) -> dict[str, np.ndarray]:
        hour_of_day = np.mod(hours, 24.0)
        day_of_year = np.mod(hours / 24.0, 365.25)
        season = 6.0 * np.cos(2 * np.pi * (day_of_year - 200.0) / 365.25)
        daily = np.cos(2 * np.pi * (hour_of_day - 15.0 - profile.phase_lag_h) / 24.0)
        daily_temperature = self.daily_amplitude * profile.sun_exposure * daily
        temperature = (
            self.base_temperature
            + season
            + daily_temperature
            + _wave_sum(hours, self.temperature_waves)
            + profile.temperature_offset
        )
        humidity = (
            self.base_humidity
            - 2.2 * daily_temperature
            + _wave_sum(hours, self.humidity_waves)
            + profile.humidity_offset
        )
        tide = 0.8 * np.cos(2 * np.pi * (hour_of_day - 10.0) / 12.0)
        pressure = 1013.25 + _wave_sum(hours, self.pressure_waves) + tide + profile.pressure_offset
        return {
            "temperature": temperature,
            "humidity": np.clip(humidity, 5.0, 98.0),
            "pressure": pressure,
        }


def _profiles(fleet: SensorFleet) -> list[_SensorProfile]:
    rng = _rng(fleet.seed, "sensors")
    return [
        _SensorProfile(
            temperature_offset=rng.uniform(-2.0, 2.0),
            sun_exposure=rng.uniform(0.8, 1.25),
            phase_lag_h=rng.uniform(-0.3, 0.3),
            humidity_offset=rng.uniform(-5.0, 5.0),
            pressure_offset=rng.uniform(-5.0, 2.0),  # elevation
        )
        for _ in range(fleet.n_sensors)
    ]


@dataclass
class _Fault:
    fault_type: str
    start: int
    length: int
    metric: str
    size: float = 0.0


def _plan_faults(fleet: SensorFleet, rng: np.random.Generator) -> list[_Fault]:
    """Non-overlapping fault windows inside one sensor-day (indices into the day's slots)."""
    n = fleet.readings_per_day
    per_hour = 60 / fleet.interval_minutes
    taken = np.zeros(n, dtype=bool)
    faults: list[_Fault] = []
    for fault_type in FAULT_TYPES:
        for _ in range(rng.poisson(fleet.faults.rate(fault_type))):
            if fault_type == "spike":
                length = int(rng.integers(1, 3))
            else:
                low, high = _HOURS[fault_type]
                length = max(2, round(rng.uniform(low, high) * per_hour))
            metric = "all" if fault_type in ("stuck", "dropout") else str(rng.choice(METRICS))
            sizes = _SPIKE_SIZE if fault_type == "spike" else _DRIFT_SIZE
            size = (
                float(rng.uniform(*sizes[metric]) * rng.choice([-1.0, 1.0]))
                if metric != "all"
                else 0.0
            )
            # A one-slot margin keeps events apart, and the first slot of a stuck run
            # has a real predecessor to repeat.
            if taken.sum() + length > fleet.max_fault_share * n:
                continue
            for _attempt in range(20):
                start = int(rng.integers(1, n - length))
                if not taken[max(0, start - 1) : start + length + 1].any():
                    taken[start : start + length] = True
                    faults.append(_Fault(fault_type, start, length, metric, size))
                    break
    return faults


def _quantise(metric: str, values: np.ndarray) -> np.ndarray:
    low, high = PHYSICAL_RANGES[metric]
    quantum = QUANTUM[metric]
    return np.round(np.clip(values, low, high) / quantum) * quantum


def _sensor_day(
    fleet: SensorFleet,
    site: _Site,
    profile: _SensorProfile,
    index: int,
    sensor_id: str,
    day: dt.date,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = fleet.readings_per_day
    start = pd.Timestamp(day, tz="UTC")
    timestamps = start + pd.to_timedelta(np.arange(n) * fleet.interval_minutes, unit="min")
    hours = (timestamps - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(hours=1)
    hours = np.asarray(hours, dtype=np.float64)
    ordinal = day.toordinal()
    noise_rng = _rng(fleet.seed, "noise", index, ordinal)
    true = site.signals(hours, profile)
    values = {m: true[m] + noise_rng.normal(0.0, NOISE[m], size=n) for m in METRICS}

    label_rows: list[tuple] = []
    keep = np.ones(n, dtype=bool)
    faults = _plan_faults(fleet, _rng(fleet.seed, "faults", index, ordinal))
    for number, fault in enumerate(sorted(faults, key=lambda f: f.start)):
        window = slice(fault.start, fault.start + fault.length)
        offsets = np.zeros(fault.length)
        if fault.fault_type == "spike":
            offsets[:] = fault.size
            values[fault.metric][window] += offsets
        elif fault.fault_type == "drift":
            offsets = fault.size * np.arange(1, fault.length + 1) / fault.length
            values[fault.metric][window] += offsets
        elif fault.fault_type == "stuck":
            for metric in METRICS:
                values[metric][window] = values[metric][fault.start - 1]
        else:  # dropout
            keep[window] = False
        fault_id = f"{sensor_id}/{day.isoformat()}/{fault.fault_type}/{number}"
        for position, offset in zip(
            range(fault.start, fault.start + fault.length), offsets, strict=True
        ):
            label_rows.append(
                (
                    fault_id,
                    sensor_id,
                    timestamps[position],
                    fault.fault_type,
                    fault.metric,
                    float(offset),
                )
            )

    readings = pd.DataFrame(
        {
            "timestamp": timestamps[keep],
            "sensor_id": sensor_id,
            **{m: _quantise(m, values[m])[keep].astype(np.float32) for m in METRICS},
        }
    )
    labels = pd.DataFrame(label_rows, columns=list(LABEL_COLUMNS))
    return readings, labels


def generate_sensor_day(
    day: dt.date | str | pd.Timestamp, fleet: SensorFleet | None = None
) -> SensorBatch:
    """One UTC day of readings for the whole fleet, sorted by (timestamp, sensor_id)."""
    fleet = fleet or SensorFleet()
    day = _as_day(day)
    site = _Site(fleet.seed)
    parts = [
        _sensor_day(fleet, site, profile, index, sensor_id, day)
        for index, (sensor_id, profile) in enumerate(
            zip(fleet.sensor_ids, _profiles(fleet), strict=True)
        )
    ]
    readings = pd.concat([p[0] for p in parts], ignore_index=True)
    labels = pd.concat([p[1] for p in parts], ignore_index=True)
    return SensorBatch(_tidy_readings(readings), _tidy_labels(labels))


def generate_sensor_range(
    start: dt.date | str, end: dt.date | str, fleet: SensorFleet | None = None
) -> SensorBatch:
    """Every day in ``[start, end)``; identical to concatenating ``generate_sensor_day``."""
    first, stop = _as_day(start), _as_day(end)
    days = [first + dt.timedelta(days=k) for k in range((stop - first).days)]
    batches = [generate_sensor_day(day, fleet) for day in days]
    if not batches:
        return SensorBatch(_tidy_readings(_empty_readings()), _tidy_labels(_empty_labels()))
    return SensorBatch(
        _tidy_readings(pd.concat([b.readings for b in batches], ignore_index=True)),
        _tidy_labels(pd.concat([b.labels for b in batches], ignore_index=True)),
    )


def _empty_readings() -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in READING_COLUMNS})


def _empty_labels() -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in LABEL_COLUMNS})


def _tidy_readings(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype({"sensor_id": str, **{m: np.float32 for m in METRICS}})
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[us, UTC]")
    frame = frame.sort_values(["timestamp", "sensor_id"], kind="stable").reset_index(drop=True)
    return frame[list(READING_COLUMNS)]


def _tidy_labels(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype(
        {
            "fault_id": str,
            "sensor_id": str,
            "fault_type": str,
            "metric": str,
            "injected_offset": np.float32,
        }
    )
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[us, UTC]")
    frame = frame.sort_values(["timestamp", "sensor_id"], kind="stable").reset_index(drop=True)
    return frame[list(LABEL_COLUMNS)]
