"""Load: peak memory of a 1M-transaction hour and of a 7-day single-run backfill.

    python fraud_assets_tests/benchmarks/bench_load.py                       # 30k users, 1M hour
    python fraud_assets_tests/benchmarks/bench_load.py --users 5000 --hour-rows 100000 \\
        --workdir /tmp/bench_load_small                                      # a quick look

Data (built once per ``--workdir``, then reused; not measured): ``--users``
customers' traffic from the transaction generator in an embedded ClickHouse,
``--history-days`` before the backfill week and the backfill week itself;
then ``--hour-rows`` transactions of the same customers' following days
squeezed into the hour after the week (every row has its customer's real
history, in a very busy hour). A bundle is trained by the weekly training job
on the last days before the week (few epochs, quality gates at 0: this is
about memory) and promoted.

Each measured run is the ``ensemble_anomaly_detection`` job executed in its
own process exactly as a run worker executes it (the code location's
resources, the embedded engine in the same process), so the process's peak
RSS (``ru_maxrss``) is the run's own high-water mark, ClickHouse included:

* ``backfill``: the 168 hours of the week as one single-run backfill.
* ``hour``: the 1M-transaction hour.

Prints, per run: rows scored, wall and CPU seconds, peak RSS, and whether
the run stayed within the machine's memory (MemTotal of /proc/meminfo).
Throughput is the scoring benchmark's subject (``bench_scoring.py``); here
it is only context.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from support import QUIET, Timer, fast_training_ops, peak_rss_mib, run_training, use_workdir

WEEK_START = dt.datetime(2026, 3, 29, 2, tzinfo=dt.UTC)  # Sunday 02:00: a weekly partition end
TRAINING_WEEK = "2026-03-22"


def machine_memory_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _hour_start(args: argparse.Namespace) -> dt.datetime:
    return WEEK_START + dt.timedelta(days=args.backfill_days, hours=1)


# ---------------------------------------------------------------- data


def generate_data(args: argparse.Namespace) -> None:
    import polars as pl

    from fraud_assets.clickhouse import ClickHouseResource
    from fraud_assets.generator import GeneratorConfig, generate, generate_into_clickhouse
    from fraud_assets.generator.history import read_prior_history
    from fraud_assets.generator.store import insert_frame

    clickhouse = ClickHouseResource()
    start = WEEK_START - dt.timedelta(days=args.history_days)
    end = WEEK_START + dt.timedelta(days=args.backfill_days)
    rows, moment = 0, start
    while moment < end:
        until = min(moment + dt.timedelta(days=3), end)
        summary = generate_into_clickhouse(
            clickhouse, GeneratorConfig(start=moment, end=until, users=args.users)
        )
        rows += summary.rows
        print(f"  traffic {moment:%Y-%m-%d} → {until:%Y-%m-%d}: {summary.rows:,} rows", flush=True)
        moment = until

    # The customers' following days, squeezed into one hour after the week.
    per_day = max(rows // (args.history_days + args.backfill_days), 1)
    days = -(-args.hour_rows // per_day) + 1
    with clickhouse.get_client() as client:
        prior = read_prior_history(client, int(end.timestamp()))
    later = generate(
        GeneratorConfig(start=end, end=end + dt.timedelta(days=days), users=args.users), prior
    )
    part = later.transactions.sort("timestamp", "transaction_id").head(args.hour_rows)
    if part.height < args.hour_rows:
        raise SystemExit(f"generated {part.height:,} rows, need {args.hour_rows:,}: add --users")
    span = max(part["timestamp"].max() - part["timestamp"].min(), dt.timedelta(seconds=1))
    squeeze = dt.timedelta(hours=1) / span * 0.999
    hour = part.with_columns(
        (
            pl.lit(_hour_start(args)) + (pl.col("timestamp") - pl.col("timestamp").min()) * squeeze
        ).alias("timestamp")
    ).with_columns(
        pl.col("timestamp").dt.hour().cast(pl.Int8).alias("hour_of_day"),
        pl.col("timestamp").dt.weekday().cast(pl.Int8).alias("day_of_week"),
    )
    with clickhouse.get_client() as client:
        insert_frame(client, "crypto_transactions", hour)
    print(
        f"data: {rows:,} rows for {args.users:,} users ({args.history_days} days + the "
        f"{args.backfill_days}-day week), then an hour of {hour.height:,} rows; "
        f"peak RSS {peak_rss_mib():,.0f} MiB",
        flush=True,
    )


def train_bundle(args: argparse.Namespace) -> None:
    result, timer = run_training(TRAINING_WEEK, fast_training_ops(lookback_days=2, epochs=2))
    print(f"bundle: trained and promoted in {timer.wall:.0f} s ({result.run_id})")


# ---------------------------------------------------------------- measured runs


def score(args: argparse.Namespace, what: str) -> None:
    import dagster as dg

    from fraud_assets.definitions import defs

    if what == "backfill":
        first = WEEK_START
        last = WEEK_START + dt.timedelta(days=args.backfill_days) - dt.timedelta(hours=1)
    else:
        first = last = _hour_start(args)
    tags = {
        "dagster/asset_partition_range_start": first.strftime("%Y-%m-%d-%H:00"),
        "dagster/asset_partition_range_end": last.strftime("%Y-%m-%d-%H:00"),
    }
    with Timer() as timer:
        result = defs.resolve_job_def("ensemble_anomaly_detection").execute_in_process(
            instance=dg.DagsterInstance.get(), tags=tags, run_config=QUIET, raise_on_error=True
        )
    wall, cpu = timer.wall, timer.cpu
    rows = next(
        int(m.materialization.metadata["rows_read"].value)
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey("extract_transactions")
    )
    peak, total = peak_rss_mib(), machine_memory_mib()
    hours = (last - first) // dt.timedelta(hours=1) + 1
    print(
        json.dumps(
            {
                "run": what,
                "hours": hours,
                "rows": rows,
                "wall_s": round(wall, 1),
                "cpu_s": round(cpu, 1),
                "peak_rss_mib": round(peak),
                "machine_mib": round(total),
                "within_memory": peak < total,
                "tensorflow_imported": "tensorflow" in sys.modules,
            }
        ),
        flush=True,
    )


def _in_subprocess(args: argparse.Namespace, phase: str) -> str:
    command = [sys.executable, __file__, "--phase", phase, *_forwarded(args)]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    sys.stdout.write(done.stdout)
    return done.stdout


def _forwarded(args: argparse.Namespace) -> list[str]:
    return [
        "--workdir", args.workdir, "--users", str(args.users),
        "--history-days", str(args.history_days), "--backfill-days", str(args.backfill_days),
        "--hour-rows", str(args.hour_rows),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/bench_load")
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--history-days", type=int, default=14)
    parser.add_argument("--backfill-days", type=int, default=7)
    parser.add_argument("--hour-rows", type=int, default=1_000_000)
    parser.add_argument("--phase", choices=["generate", "train", "backfill", "hour"])
    args = parser.parse_args()
    workdir = Path(args.workdir)
    use_workdir(workdir)

    if args.phase == "generate":
        return generate_data(args)
    if args.phase == "train":
        return train_bundle(args)
    if args.phase in ("backfill", "hour"):
        return score(args, args.phase)

    marker = workdir / "prepared.json"
    wanted = {k: v for k, v in vars(args).items() if k not in ("phase", "workdir")}
    if not (marker.exists() and json.loads(marker.read_text()) == wanted):
        if marker.exists():
            raise SystemExit(f"{workdir} holds other data ({marker.read_text()})")
        _in_subprocess(args, "generate")
        _in_subprocess(args, "train")
        marker.write_text(json.dumps(wanted))
    print(f"machine: {os.cpu_count()} cores, {machine_memory_mib():,.0f} MiB")
    for phase in ("backfill", "hour"):
        _in_subprocess(args, phase)


if __name__ == "__main__":
    main()
