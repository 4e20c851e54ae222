"""The detectors find the generator's injected faults: recall and precision per fault type."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_assets.generator.sensors import (
    FaultRates,
    SensorFleet,
    generate_sensor_day,
    generate_sensor_range,
)
from fraud_assets.iot import detection, evaluation, validation

FLEET = SensorFleet(n_sensors=8, interval_minutes=5, seed=21, faults=FaultRates(2, 0.6, 0.5, 0.6))
DAYS = pd.date_range("2025-04-01", periods=3, freq="D", tz="UTC")


def _detect_days(batch, params: detection.DetectionParams | None = None) -> pd.DataFrame:
    found = []
    for day in DAYS:
        end = day + pd.Timedelta(days=1)
        readings = batch.readings[
            (batch.readings["timestamp"] >= day) & (batch.readings["timestamp"] < end)
        ]
        found.append(detection.detect_anomalies(readings, params=params, window=(day, end)))
    return pd.concat(found, ignore_index=True)


@pytest.fixture(scope="module")
def batch():
    return generate_sensor_range(DAYS[0].date(), (DAYS[-1] + pd.Timedelta(days=1)).date(), FLEET)


@pytest.fixture(scope="module")
def found(batch) -> pd.DataFrame:
    return _detect_days(batch)


def test_every_fault_type_is_found_with_high_precision(batch, found) -> None:
    quality = evaluation.detection_quality(found, batch.labels).set_index("fault_type")
    print("\n" + quality.to_string())
    assert (quality["events"] >= 3).all(), "the fleet must inject every fault type"
    assert (quality["event_recall"] >= 0.9).all()
    assert (quality["precision"] >= 0.9).all()
    assert quality.loc["spike", "row_recall"] >= 0.95
    assert quality.loc["stuck", "row_recall"] >= 0.95
    # The first minutes of a drift are within the noise: only the grown part is findable.
    assert quality.loc["drift", "row_recall"] >= 0.5


def test_isolation_forest_flags_few_readings_mostly_faulty(batch, found) -> None:
    by_detector = evaluation.detector_recall(found, batch.labels)
    print("\n" + by_detector.to_string())
    forest = by_detector.loc["isolation_forest"]
    assert forest["detections"] <= 0.006 * len(batch.readings)
    assert forest["precision_any_fault"] >= 0.6
    # What the statistics are for: a stuck sensor's values are ordinary to a forest.
    assert forest["stuck"] <= 0.2


def test_clean_readings_raise_no_statistical_alarm() -> None:
    clean = SensorFleet(n_sensors=8, seed=5, faults=FaultRates(0, 0, 0, 0))
    readings = generate_sensor_day("2025-04-02", clean).readings
    day = pd.Timestamp("2025-04-02", tz="UTC")
    found = detection.detect_anomalies(readings, window=(day, day + pd.Timedelta(days=1)))
    assert set(found["anomaly_type"]) <= {"isolation_forest"}
    assert len(found) <= 0.006 * len(readings)


def test_broken_thresholds_would_fail_the_recall_bar(batch) -> None:
    deaf = detection.DetectionParams(spike_z=1e9, drift_z=1e9, stuck_min_repeats=10_000)
    found = _detect_days(batch, deaf)
    quality = evaluation.detection_quality(found, batch.labels).set_index("fault_type")
    assert quality.loc["stuck", "event_recall"] == 0
    assert quality.loc["drift", "event_recall"] < 0.9


def test_drift_needs_a_fleet_to_compare_with() -> None:
    small = SensorFleet(n_sensors=3, seed=21, faults=FaultRates(0, 0, 3, 0))
    readings = generate_sensor_day("2025-04-01", small).readings
    assert detection.detect_drift(readings, detection.DetectionParams()).empty


def test_dropout_at_the_edges_of_the_day_is_found() -> None:
    clean = SensorFleet(n_sensors=4, interval_minutes=10, seed=5, faults=FaultRates(0, 0, 0, 0))
    readings = generate_sensor_day("2025-04-02", clean).readings
    day = pd.Timestamp("2025-04-02", tz="UTC")
    hour = readings["timestamp"].dt.hour
    silent = (readings["sensor_id"] == "sensor_002") & ((hour < 1) | (hour >= 23))
    gaps = detection.detect_dropouts(
        readings[~silent], detection.DetectionParams(), window=(day, day + pd.Timedelta(days=1))
    )
    assert gaps["sensor_id"].tolist() == ["sensor_002", "sensor_002"]
    assert gaps["timestamp"].tolist() == [day, day + pd.Timedelta(hours=23)]
    assert gaps["anomaly_score"].tolist() == [6.0, 6.0]


def test_normalise_is_per_sensor_and_robust_to_a_spike() -> None:
    readings = generate_sensor_day("2025-04-02", SensorFleet(n_sensors=2, seed=5)).readings
    spiked = readings.copy()
    spiked.loc[spiked.index[10], "temperature"] += 40.0
    plain, with_spike = detection.normalise(readings), detection.normalise(spiked)
    untouched = with_spike.index != spiked.index[10]
    assert np.allclose(
        plain.loc[untouched, "temperature_norm"],
        with_spike.loc[untouched, "temperature_norm"],
        atol=0.05,
    )
    medians = plain.groupby("sensor_id")[list(detection.NORM_COLUMNS)].median()
    assert np.allclose(medians.to_numpy(), 0.0, atol=1e-6)


def test_validation_rules_catch_empty_nulls_and_pascal_pressure() -> None:
    readings = generate_sensor_day("2025-04-02", SensorFleet(n_sensors=2, seed=5)).readings
    assert all(r.passed for r in validation.validate_sensor_data(readings).values())

    assert not validation.check_not_empty(readings.iloc[:0]).passed
    holed = readings.copy()
    holed.loc[holed.index[3], "humidity"] = np.nan
    result = validation.check_no_nulls(holed)
    assert not result.passed and result.details["nulls/humidity"] == 1

    pascal = readings.assign(pressure=readings["pressure"] * 100)
    result = validation.check_physical_ranges(pascal)
    assert not result.passed and "looks like Pa" in result.description
    assert result.details["outside/pressure"] == len(readings)
