"""The sensor generator: deterministic days, realistic signals, faults labelled as injected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_assets.generator.sensors import (
    FAULT_TYPES,
    LABEL_COLUMNS,
    METRICS,
    PHYSICAL_RANGES,
    READING_COLUMNS,
    FaultRates,
    SensorFleet,
    generate_sensor_day,
    generate_sensor_range,
)

CLEAN = SensorFleet(n_sensors=4, interval_minutes=10, seed=3, faults=FaultRates(0, 0, 0, 0))
BUSY = SensorFleet(n_sensors=6, interval_minutes=5, seed=11, faults=FaultRates(3, 1, 1, 1))


def test_a_day_is_a_pure_function_of_seed_and_date() -> None:
    first = generate_sensor_day("2025-03-02", BUSY)
    again = generate_sensor_day("2025-03-02", BUSY)
    pd.testing.assert_frame_equal(first.readings, again.readings)
    pd.testing.assert_frame_equal(first.labels, again.labels)

    in_range = generate_sensor_range("2025-03-01", "2025-03-04", BUSY)
    day = in_range.readings[in_range.readings["timestamp"].dt.day == 2].reset_index(drop=True)
    pd.testing.assert_frame_equal(day, first.readings)

    other_seed = SensorFleet(BUSY.n_sensors, BUSY.interval_minutes, 12, BUSY.faults)
    assert not generate_sensor_day("2025-03-02", other_seed).readings.equals(first.readings)


def test_readings_have_the_seed_schema_units_and_a_full_grid() -> None:
    batch = generate_sensor_day("2025-07-01", CLEAN)
    readings = batch.readings
    assert list(readings.columns) == list(READING_COLUMNS)
    assert str(readings["timestamp"].dtype) == "datetime64[us, UTC]"
    assert len(readings) == CLEAN.n_sensors * CLEAN.readings_per_day
    assert batch.labels.empty and list(batch.labels.columns) == list(LABEL_COLUMNS)
    assert not readings.isna().any().any()
    for metric in METRICS:
        low, high = PHYSICAL_RANGES[metric]
        assert readings[metric].between(low, high).all()
    # hPa, not Pa.
    assert 990 < readings["pressure"].median() < 1035


def test_temperature_follows_a_daily_cycle_and_humidity_moves_against_it() -> None:
    readings = generate_sensor_day("2025-07-01", CLEAN).readings
    hour = readings["timestamp"].dt.hour
    afternoon = readings[hour.between(13, 16)].groupby("sensor_id")
    night = readings[hour.between(2, 5)].groupby("sensor_id")
    assert (afternoon["temperature"].mean() > night["temperature"].mean() + 2.0).all()
    assert (afternoon["humidity"].mean() < night["humidity"].mean()).all()


def test_every_fault_type_is_injected_and_labelled_as_it_was_made() -> None:
    batch = generate_sensor_range("2025-03-01", "2025-03-03", BUSY)
    readings, labels = batch.readings, batch.labels
    assert set(labels["fault_type"]) == set(FAULT_TYPES)
    assert not labels.duplicated(["sensor_id", "timestamp"]).any(), "faults never overlap"
    events = labels.groupby("fault_id")
    assert (events["timestamp"].min().dt.date == events["timestamp"].max().dt.date).all()

    indexed = readings.set_index(["sensor_id", "timestamp"]).sort_index()
    present = indexed.index

    dropouts = labels[labels["fault_type"] == "dropout"]
    assert not pd.MultiIndex.from_frame(dropouts[["sensor_id", "timestamp"]]).isin(present).any()

    step = pd.Timedelta(minutes=BUSY.interval_minutes)
    for _fault_id, stuck in labels[labels["fault_type"] == "stuck"].groupby("fault_id"):
        sensor = stuck["sensor_id"].iloc[0]
        before = indexed.loc[(sensor, stuck["timestamp"].min() - step), list(METRICS)]
        frozen = indexed.loc[[(sensor, t) for t in stuck["timestamp"]], list(METRICS)]
        assert (frozen == before).all().all()

    for _fault_id, drift in labels[labels["fault_type"] == "drift"].groupby("fault_id"):
        offsets = drift.sort_values("timestamp")["injected_offset"].abs().to_numpy()
        assert np.all(np.diff(offsets) > 0) and offsets[-1] >= 3.0

    spikes = labels[labels["fault_type"] == "spike"]
    assert (spikes["injected_offset"].abs() >= 8.0).all()
    assert set(spikes["metric"]) <= set(METRICS)


@pytest.mark.parametrize("interval", [0, 7])
def test_fleet_rejects_intervals_that_do_not_divide_a_day(interval: int) -> None:
    with pytest.raises(ValueError):
        SensorFleet(interval_minutes=interval)
