"""Drift check on one big hour: PSI and KS of every monitored feature and of the scores in SQL.

Fills one hour of ``feature_snapshots`` (every monitored feature, Float32) and
``detected_anomalies_ensemble`` (the four scores) with N rows generated inside
ClickHouse (flags, counts and continuous features), builds the references from
another hour of the same distributions, then times what the hourly checks run:
``drift.evaluate_hours`` for the feature series and for the score series. Also
times writing the hour's snapshot from Arrow (what feature_snapshots costs the
scoring run) and reports its size on disk. Prints seconds, rows/s and the
process peak RSS (the embedded engine runs in-process, so that includes it).

    python fraud_assets_tests/benchmarks/bench_drift.py                 # 1M rows, best of 3
    python fraud_assets_tests/benchmarks/bench_drift.py --rows 200000 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from support import Timer, peak_rss_mib

from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets.clickhouse.client import quote_identifier
from fraud_assets.monitoring import drift, drift_sql, histograms, snapshots

HOUR = datetime(2026, 3, 2, 12, tzinfo=UTC)
REFERENCE_HOUR = HOUR - timedelta(days=3)
VERSION = "v-bench"


def _distribution(name: str, index: int) -> str:
    """SQL for a plausible value of feature ``name``: a flag, a count or a continuous value."""
    seed = f"rand({index})"
    if name.startswith(("is_", "type_", "currency_", "device_")) or name.endswith(
        ("_changed", "has_history", "round_100", "below_10k", "is_unknown")
    ):
        return f"toFloat32({seed} % 1000 < {50 + 10 * (index % 30)})"
    if "count" in name or name.endswith(("_7d", "_30d", "_24h", "_1h", "_5m")):
        return f"toFloat32(randPoisson({1 + index % 7}))"
    return f"toFloat32(randNormal({index % 5}, {1 + index % 3}))"


def _fill(client, start: datetime, rows: int, features: list[str]) -> None:
    columns = ", ".join(
        f"{_distribution(n, i)} AS {quote_identifier(n)}" for i, n in enumerate(features)
    )
    start_s = int(start.timestamp())
    client.command(
        f"INSERT INTO feature_snapshots (transaction_id, timestamp, model_version, "
        f"{', '.join(quote_identifier(n) for n in features)}) "
        f"SELECT concat('t', toString(number)), toDateTime({start_s} + number % 3600, 'UTC'), "
        f"'{VERSION}', {columns} FROM numbers({rows})"
    )
    client.command(
        "INSERT INTO detected_anomalies_ensemble (transaction_id, timestamp, user_id, "
        "statistical_risk, isolation_score, reconstruction_error, total_risk_score, "
        "final_decision, model_version) "
        f"SELECT concat('t', toString(number)), toDateTime({start_s} + number % 3600, 'UTC'), "
        "concat('u', toString(number % 50000)), toFloat32(20 * (rand(1) % 100 < 15)), "
        "toFloat32(randNormal(0.45, 0.05)), toFloat32(randLogNormal(-2.0, 1.0)), "
        f"toFloat32(randExponential(0.1)), 'approved', '{VERSION}' FROM numbers({rows})"
    )


def _reference(client, series: str, columns: list[str], start: datetime) -> None:
    table = drift_sql.TABLES[series]
    frame = pl.from_arrow(
        client.query_arrow(
            f"SELECT {', '.join(quote_identifier(c) for c in columns)} FROM {table} "  # noqa: S608
            "WHERE timestamp >= {s:DateTime('UTC')} AND timestamp < {e:DateTime('UTC')}",
            parameters={"s": start, "e": start + timedelta(hours=1)},
        )
    )
    references = {c: histograms.reference_histogram(frame[c].to_numpy()) for c in columns}
    drift_sql.write_reference(client, VERSION, series, references, "benchmark")


def _time(fn, rounds: int) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds (every thread of the process, the engine's included)."""
    wall, cpu = [], []
    for _ in range(rounds):
        with Timer() as timer:
            fn()
        wall.append(timer.wall)
        cpu.append(timer.cpu)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dsn", help="ClickHouse DSN (default: a fresh embedded database)")
    args = parser.parse_args()

    folder = None if args.dsn else tempfile.mkdtemp(prefix="bench_drift_")
    dsn = args.dsn or f"chdb://{folder}/clickhouse"
    clickhouse = ClickHouseResource(dsn=dsn)
    features = snapshots.monitored_features()
    try:
        with clickhouse.get_client() as client:
            snapshots.ensure_feature_columns(client, features)
            started = time.perf_counter()
            _fill(client, HOUR, args.rows, features)
            _fill(client, REFERENCE_HOUR, args.reference_rows, features)
            print(f"generated {args.rows:,} + {args.reference_rows:,} rows in ClickHouse: "
                  f"{time.perf_counter() - started:.1f}s")  # fmt: skip
            _reference(client, drift_sql.FEATURE, features, REFERENCE_HOUR)
            _reference(client, drift_sql.SCORE, list(drift_sql.SCORE_COLUMNS), REFERENCE_HOUR)

            for series, width in ((drift_sql.FEATURE, len(features)), (drift_sql.SCORE, 4)):
                verdicts: list = []

                def check(series=series, verdicts=verdicts):
                    verdicts[:] = drift.evaluate_hours(
                        client, series, [HOUR], drift.DriftLevels(), 1000, 1
                    )

                seconds, cpu = _time(check, args.rounds)
                (verdict,) = verdicts
                best, median = min(seconds), statistics.median(seconds)
                print(
                    f"{series} drift, {width} columns × {verdict.rows:,} rows: best {best:.2f}s, "
                    f"median {median:.2f}s, CPU {min(cpu):.2f}s ({verdict.rows / best:,.0f} rows/s, "
                    f"{verdict.rows * width / best / 1e6:,.0f}M values/s); "
                    f"max PSI {max(s.psi for s in verdict.series):.4f} (undrifted)"
                )

            rng = np.random.default_rng(0)
            frame = pl.DataFrame(
                {
                    "transaction_id": [f"x{i}" for i in range(args.rows)],
                    "timestamp": pl.datetime_range(
                        HOUR + timedelta(days=1),
                        HOUR + timedelta(days=1, hours=1),
                        interval=f"{max(3_600_000_000 // args.rows, 1)}us",
                        time_unit="us",
                        eager=True,
                    )[: args.rows],
                    "model_version": [VERSION] * args.rows,
                    **{n: rng.normal(size=args.rows).astype(np.float32) for n in features},
                }
            )
            table = frame.to_arrow()
            seconds, cpu = _time(lambda: client.insert_arrow("feature_snapshots", table), 1)
            (bytes_on_disk,) = client.query(
                "SELECT sum(bytes_on_disk) FROM system.parts WHERE active "
                "AND database = currentDatabase() AND table = 'feature_snapshots'"
            ).result_rows[0]
            total = client.query("SELECT count() FROM feature_snapshots").result_rows[0][0]
            print(
                f"snapshot write, {len(features)} features × {args.rows:,} rows from Arrow: "
                f"{seconds[0]:.2f}s, CPU {cpu[0]:.2f}s ({args.rows / seconds[0]:,.0f} rows/s); on "
                f"disk {bytes_on_disk / total * args.rows / 1e6:,.0f} MB per {args.rows:,} rows"
            )
        peak_mb = peak_rss_mib()
        print(f"peak RSS {peak_mb:,.0f} MB; load average {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} CPUs")  # fmt: skip
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
