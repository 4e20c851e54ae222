"""IoT detection quality and speed: generate N days, detect day by day, measure per fault type.

Prints recall/precision per fault type (all detectors together), event recall
of each detector alone, readings/s of detection and the process peak RSS.

    python fraud_assets_tests/benchmarks/bench_iot_detection.py               # 30 days × 8 sensors
    python fraud_assets_tests/benchmarks/bench_iot_detection.py --days 7 --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
from support import peak_rss_mib

from fraud_assets.generator.sensors import SensorFleet, generate_sensor_range
from fraud_assets.iot import detection, evaluation


def run(days: int, sensors: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, float, int]:
    fleet = SensorFleet(n_sensors=sensors, seed=seed)
    start = pd.Timestamp("2025-01-06", tz="UTC")
    batch = generate_sensor_range(start.date(), (start + pd.Timedelta(days=days)).date(), fleet)
    started = time.perf_counter()
    found = []
    for day in pd.date_range(start, periods=days, freq="D"):
        end = day + pd.Timedelta(days=1)
        readings = batch.readings[
            (batch.readings["timestamp"] >= day) & (batch.readings["timestamp"] < end)
        ]
        found.append(detection.detect_anomalies(readings, window=(day, end)))
    elapsed = time.perf_counter() - started
    detections = pd.concat(found, ignore_index=True)
    return (
        evaluation.detection_quality(detections, batch.labels),
        evaluation.detector_recall(detections, batch.labels),
        elapsed,
        len(batch.readings),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--sensors", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7])
    args = parser.parse_args()
    qualities = []
    for seed in args.seeds:
        quality, by_detector, elapsed, rows = run(args.days, args.sensors, seed)
        qualities.append(quality)
        print(f"seed {seed}: {rows} readings, detection {rows / elapsed:,.0f} readings/s")
        print(quality.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(by_detector.to_string(float_format=lambda v: f"{v:.3f}"))
        print()
    if len(qualities) > 1:
        total = pd.concat(qualities).groupby("fault_type", sort=False).sum(numeric_only=True)
        total["event_recall"] = total["events_found"] / total["events"]
        total["precision"] = total["true_detections"] / total["detections"]
        print("all seeds:")
        print(
            total[["events", "event_recall", "precision"]].to_string(float_format="{:.3f}".format)
        )
    print(f"peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
