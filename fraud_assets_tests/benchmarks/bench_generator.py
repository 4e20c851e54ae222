"""Transaction generator throughput: ~1M transactions generated and written to embedded ClickHouse.

    python fraud_assets_tests/benchmarks/bench_generator.py [--users 30000] [--days 30]

Prints rows/s for generation and for the write separately, the fraud mix of
the run and the peak RSS of the process (the embedded engine included). With
``--then-days N`` it also generates the following N days, which reads the
recorded history back first (the continuation path).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from support import peak_rss_mib

from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets.generator import GeneratorConfig, generate_into_clickhouse


def _report(label: str, summary, total_s: float) -> None:
    print(
        f"{label}: {summary.rows:,} transactions | generate {summary.generate_s:.2f}s "
        f"({summary.rows / summary.generate_s:,.0f} rows/s) | write {summary.write_s:.2f}s "
        f"({summary.rows / summary.write_s:,.0f} rows/s) | end to end {total_s:.2f}s "
        f"({summary.rows / total_s:,.0f} rows/s) | peak RSS {peak_rss_mib():,.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--then-days", type=int, default=0)
    args = parser.parse_args()

    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=args.days)
    with tempfile.TemporaryDirectory(prefix="bench_generator_") as folder:
        clickhouse = ClickHouseResource(dsn=f"chdb://{Path(folder, 'clickhouse')}")
        with clickhouse.get_client():
            pass  # create the database and apply migrations outside the timings
        config = GeneratorConfig(start=start, end=end, users=args.users, seed=args.seed)
        began = time.perf_counter()
        summary = generate_into_clickhouse(clickhouse, config)
        _report(f"{args.users:,} users x {args.days} days", summary, time.perf_counter() - began)
        share = summary.fraud_total / summary.rows
        print(
            f"fraud: {summary.fraud_total:,} transactions ({share:.3%}), {summary.labels:,} labels"
        )
        for scenario, rows in summary.fraud_rows.items():
            print(
                f"  {scenario:<22} {rows:>6} transactions {summary.incidents[scenario]:>5} incidents"
            )
        if args.then_days:
            later = GeneratorConfig(
                start=end,
                end=end + dt.timedelta(days=args.then_days),
                users=args.users,
                seed=args.seed,
            )
            began = time.perf_counter()
            summary = generate_into_clickhouse(clickhouse, later)
            _report(
                f"then {args.then_days} days on the recorded history",
                summary,
                time.perf_counter() - began,
            )


if __name__ == "__main__":
    main()
