"""Scoring throughput: an hour of 100k and of 1M transactions, through ClickHouse and in memory.

    python fraud_assets_tests/benchmarks/bench_scoring.py                      # 300k users, 30 days
    python fraud_assets_tests/benchmarks/bench_scoring.py --users 30000 --history-days 7 \\
        --hours 100000 --workdir /tmp/bench_scoring_small                      # a quick look

Data (built once per ``--workdir``, then reused; not timed): ``--users``
customers × ``--history-days`` days from the transaction generator in an
embedded ClickHouse, then the generator's following days of the same
customers squeezed into consecutive hours of ``--hours`` rows each (the 1M-row
hour is ~3 days of traffic, from the ~128k most active of 300k customers:
every transaction has its customer's and wallet's real 30-day history, in a
very busy hour). A bundle is trained
once by the weekly training job on the last day before the hours (3
autoencoder epochs, batch 256; quality-gate floors at 0, this is about speed)
and promoted.

Paths, each hour in a fresh process (its own peak RSS, its own imports):

* ``job``: the ``ensemble_anomaly_detection`` job for the hour, in process:
  ClickHouse in, Parquet intermediates, ``detected_anomalies_ensemble`` and
  ``daily_model_performance`` out. Seconds per step from the run's events.
* ``steps``: the scoring steps' functions with their ClickHouse reads and the
  IO manager's write of the results, each stage timed.
* ``memory``: the same functions on frames already in memory (the hour, its
  feature inputs, the loaded models): no ClickHouse, no intermediates.

Each prints wall seconds and rows/s per stage, CPU seconds (the work itself:
on a shared machine wall time includes waiting for a core), the process's
peak RSS and whether TensorFlow was imported (scoring must not import it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

from support import QUIET, Timer, fast_training_ops, peak_rss_mib, run_training, use_workdir

HISTORY_END = dt.datetime(2026, 3, 29, 2, tzinfo=dt.UTC)  # a Sunday 02:00: a weekly partition end
TRAINING_WEEK = "2026-03-22"
DEFAULT_WORKDIR = "/tmp/bench_scoring"


class Stages:
    """Wall and CPU seconds per named stage, printed as they finish.

    On a busy machine wall time includes waiting for a core; CPU time is the
    work itself (above wall time when a stage runs on several threads).
    """

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        with Timer() as timer:
            result = fn(*args, **kwargs)
        self.add(name, timer.wall, timer.cpu)
        return result

    def add(self, name: str, seconds: float, cpu: float | None = None) -> None:
        self.seconds[name] = seconds
        if cpu is not None:
            self.cpu[name] = cpu
        print(
            f"  {name:<36} {seconds:8.2f} s {self.rows / max(seconds, 1e-9):>12,.0f} rows/s"
            + (f"   cpu {cpu:7.2f} s" if cpu is not None else ""),
            flush=True,
        )

    def total(self, label: str, seconds: float | None = None, cpu: float | None = None) -> float:
        seconds = sum(self.seconds.values()) if seconds is None else seconds
        if cpu is None and self.cpu:
            cpu = sum(self.cpu.values())
        print(
            f"  {label:<36} {seconds:8.2f} s {self.rows / seconds:>12,.0f} rows/s"
            + (f"   cpu {cpu:7.2f} s" if cpu is not None else "   (cpu: in step processes)")
            + "\n"
            f"  peak RSS {peak_rss_mib():,.0f} MiB, "
            f"tensorflow imported: {'tensorflow' in sys.modules}",
            flush=True,
        )
        return seconds


def _hour_window(index: int) -> tuple[dt.datetime, dt.datetime]:
    start = HISTORY_END + dt.timedelta(hours=index)
    return start, start + dt.timedelta(hours=1)


# ---------------------------------------------------------------- data


def prepare(args: argparse.Namespace) -> None:
    """History, the squeezed hours and a promoted bundle, once per work folder."""
    workdir = Path(args.workdir)
    marker = workdir / "prepared.json"
    wanted = {"users": args.users, "history_days": args.history_days, "hours": args.hours}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        print(f"data: reusing {workdir} ({wanted})")
        _in_subprocess(args, "settle")
        return
    if marker.exists():
        raise SystemExit(
            f"{workdir} holds other data ({marker.read_text()}); pick another --workdir"
        )
    _in_subprocess(args, "generate")
    _in_subprocess(args, "train")
    marker.write_text(json.dumps(wanted))


def generate_data(args: argparse.Namespace) -> None:
    import polars as pl

    from fraud_assets.clickhouse import ClickHouseResource
    from fraud_assets.generator import GeneratorConfig, generate, generate_into_clickhouse
    from fraud_assets.generator.history import read_prior_history
    from fraud_assets.generator.store import insert_frame

    clickhouse = ClickHouseResource()
    start = HISTORY_END - dt.timedelta(days=args.history_days)
    began = time.perf_counter()
    rows = 0
    chunk = dt.timedelta(days=3)
    moment = start
    while moment < HISTORY_END:
        until = min(moment + chunk, HISTORY_END)
        summary = generate_into_clickhouse(
            clickhouse, GeneratorConfig(start=moment, end=until, users=args.users)
        )
        rows += summary.rows
        print(f"  history {moment:%Y-%m-%d} → {until:%Y-%m-%d}: {summary.rows:,} rows", flush=True)
        moment = until

    # The customers' next days, squeezed into consecutive hours of the requested sizes.
    needed = sum(args.hours)
    days = max(1, -(-needed // max(int(rows / args.history_days), 1)) + 1)
    with clickhouse.get_client() as client:
        prior = read_prior_history(client, int(HISTORY_END.timestamp()))
    later = generate(
        GeneratorConfig(
            start=HISTORY_END, end=HISTORY_END + dt.timedelta(days=days), users=args.users
        ),
        prior,
    )
    traffic = later.transactions.sort("timestamp", "transaction_id")
    if traffic.height < needed:
        raise SystemExit(f"generated {traffic.height:,} rows, need {needed:,}: add --users")
    parts, first = [], 0
    for index, size in enumerate(args.hours):
        hour_start, _ = _hour_window(index)
        part = traffic.slice(first, size)
        first += size
        span = part["timestamp"].max() - part["timestamp"].min()
        squeeze = dt.timedelta(hours=1) / max(span, dt.timedelta(seconds=1)) * 0.999
        parts.append(
            part.with_columns(
                (
                    pl.lit(hour_start) + (pl.col("timestamp") - pl.col("timestamp").min()) * squeeze
                ).alias("timestamp")
            )
        )
    hours = pl.concat(parts).with_columns(
        pl.col("timestamp").dt.hour().cast(pl.Int8).alias("hour_of_day"),
        pl.col("timestamp").dt.weekday().cast(pl.Int8).alias("day_of_week"),
    )
    moved = hours.select("transaction_id", pl.col("timestamp").alias("_at"))
    labels = (
        later.labels.join(moved, on="transaction_id", how="inner")
        .with_columns(pl.col("_at").alias("transaction_timestamp"))
        .drop("_at")
    )
    with clickhouse.get_client() as client:
        insert_frame(client, "crypto_transactions", hours)
        insert_frame(client, "transaction_labels", labels)
    print(
        f"data: {rows:,} history rows for {args.users:,} users, hours of "
        f"{', '.join(f'{n:,}' for n in args.hours)} rows, "
        f"{time.perf_counter() - began:.0f} s, peak RSS {peak_rss_mib():,.0f} MiB",
        flush=True,
    )


def _mutations_running(client) -> int:
    return client.query("SELECT count() FROM system.mutations WHERE NOT is_done").result_rows[0][0]


def settle(args: argparse.Namespace) -> None:
    """Reused data brought up to the code: pending migrations applied and their mutations
    (a projection built for the rows already there) finished, so that no measured path pays
    for them or runs without them; a bundle trained on other feature columns retrained."""
    from fraud_assets import registry
    from fraud_assets.bundle_loader import load_component
    from fraud_assets.clickhouse import ClickHouseResource
    from fraud_assets.features import FEATURE_COLUMNS

    began = time.perf_counter()
    with ClickHouseResource().get_client() as client:
        while _mutations_running(client):
            time.sleep(1)
        scaler = load_component(client, registry.active_version(client), "scaler")
    print(f"data: migrations applied and settled in {time.perf_counter() - began:.1f} s")
    if list(scaler.columns) != list(FEATURE_COLUMNS):
        print("bundle: trained on other feature columns, retraining", flush=True)
        train_bundle(args)


def train_bundle(args: argparse.Namespace) -> None:
    ops = fast_training_ops(lookback_days=1, epochs=3)
    # The replay gate compares against the bundle being replaced: open wide.
    ops["replay_backtest"] = {
        "config": {
            "max_caught_drop": 1.0,
            "max_caught_amount_drop": 1.0,
            "max_fp_rate_increase": 1.0,
            "max_review_increase": 1e9,
            "max_block_precision_drop": 1.0,
        }
    }
    result, timer = run_training(TRAINING_WEEK, ops)
    from fraud_assets import registry
    from fraud_assets.clickhouse import ClickHouseResource

    with ClickHouseResource().get_client() as client:
        active = registry.active_version(client)
    print(f"bundle: trained in {timer.wall:.0f} s ({result.run_id}); active version now {active}")


# ---------------------------------------------------------------- paths


def run_job(args: argparse.Namespace, index: int) -> None:
    """The deployed job definition, its executor included, for the hour."""
    import dagster as dg

    from fraud_assets.definitions import defs

    start, _ = _hour_window(index)
    key = start.strftime("%Y-%m-%d-%H:%M")
    with Timer() as timer:
        result = defs.resolve_job_def("ensemble_anomaly_detection").execute_in_process(
            partition_key=key,
            instance=dg.DagsterInstance.get(),
            run_config=QUIET,
            raise_on_error=True,
        )
    stages = Stages(args.hours[index])
    for event in result.all_events:
        if event.event_type_value == "STEP_SUCCESS":
            stages.add(event.step_key, event.event_specific_data.duration_ms / 1000)
    stages.total("job, all steps", timer.wall, timer.cpu)


def _load_models(clickhouse, version: str):
    from fraud_assets.bundle_loader import load_component

    with clickhouse.get_client() as client:
        return {
            c: load_component(client, version, c)
            for c in ("scaler", "isolation_forest", "autoencoder", "thresholds")
        }


def _table_slice(table: str, start: dt.datetime, end: dt.datetime):
    from dagster._core.definitions.partitions.utils import TimeWindow
    from dagster._core.storage.db_io_manager import TablePartitionDimension, TableSlice

    from fraud_assets import settings

    return TableSlice(
        table=table,
        schema=settings.clickhouse_database(),
        partition_dimensions=[
            TablePartitionDimension(partition_expr="timestamp", partitions=TimeWindow(start, end))
        ],
    )


def run_steps(args: argparse.Namespace, index: int, in_memory: bool) -> None:
    import polars as pl

    from fraud_assets import registry
    from fraud_assets.assets import scoring_steps as steps
    from fraud_assets.clickhouse import ClickHouseResource
    from fraud_assets.features import extract_features, load_feature_inputs
    from fraud_assets.io import arrow_tables
    from fraud_assets.io.polars_frames import ClickHousePolarsTypeHandler

    start, end = _hour_window(index)
    clickhouse = ClickHouseResource()
    with clickhouse.get_client() as client:
        version = registry.active_version(client)
    _load_models(clickhouse, version)  # the artifact cache: a run loads each model once
    stages = Stages(args.hours[index])
    if in_memory:
        with clickhouse.get_client() as client:
            raw = steps.read_transactions(client, start, end)
            inputs = load_feature_inputs(client, start, end)
    else:
        with clickhouse.get_client() as client:
            raw = stages.run(
                "read hour (read_transactions)", steps.read_transactions, client, start, end
            )
    valid, quarantined = stages.run("validate", steps.validate, raw, start, end, "bench")
    if in_memory:
        features = stages.run(
            "extract_features", extract_features, valid, inputs.history, inputs.labels
        )
    else:
        with clickhouse.get_client() as client:
            inputs = stages.run(
                "history + labels from ClickHouse",
                load_feature_inputs,
                client,
                start,
                end,
                with_transactions=False,
            )
        features = stages.run(
            "extract_features", extract_features, valid, inputs.history, inputs.labels
        )
    features = features.with_columns(pl.lit(version).alias("model_version"))
    stat = stages.run("statistical", steps.statistical, features)
    iso = stages.run("isolation_forest", steps.isolation, clickhouse, features)
    ae = stages.run("autoencoder", steps.autoencoder, clickhouse, features)
    decided = stages.run("ensemble", steps.ensemble, clickhouse, features, stat, iso, ae)
    rows = stages.run("result rows", steps.result_rows, decided, "bench")
    if not in_memory:
        handler = ClickHousePolarsTypeHandler()
        table_slice = _table_slice("detected_anomalies_ensemble", start, end)
        arrow = stages.run("results to Arrow", handler.to_arrow, rows)
        with clickhouse.get_client() as client:
            stages.run(
                "write detected_anomalies_ensemble",
                arrow_tables.write_slice,
                client,
                table_slice,
                arrow,
                "bench",
            )
    label = "in memory, total" if in_memory else "steps through ClickHouse, total"
    stages.total(label)
    print(f"  ({quarantined.height} quarantined; decisions {steps.decision_counts(decided)})")


# ---------------------------------------------------------------- driver


def _in_subprocess(args: argparse.Namespace, phase: str, index: int | None = None) -> None:
    command = [sys.executable, __file__, "--phase", phase, "--workdir", args.workdir]
    command += ["--users", str(args.users), "--history-days", str(args.history_days)]
    command += ["--hours", ",".join(map(str, args.hours))]
    if index is not None:
        command += ["--index", str(index)]
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR)
    parser.add_argument("--users", type=int, default=300_000)
    parser.add_argument("--history-days", type=int, default=30)
    parser.add_argument(
        "--hours", type=lambda s: [int(n) for n in s.split(",")], default=[100_000, 1_000_000]
    )
    parser.add_argument("--paths", default="memory,steps,job")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    use_workdir(Path(args.workdir))

    phases = {
        "generate": lambda: generate_data(args),
        "settle": lambda: settle(args),
        "train": lambda: train_bundle(args),
        "job": lambda: run_job(args, args.index),
        "steps": lambda: run_steps(args, args.index, in_memory=False),
        "memory": lambda: run_steps(args, args.index, in_memory=True),
    }
    if args.phase:
        phases[args.phase]()
        return
    prepare(args)
    for index, size in enumerate(args.hours):
        for path in args.paths.split(","):
            print(f"\n{path}: one hour of {size:,} transactions", flush=True)
            _in_subprocess(args, path, index)


if __name__ == "__main__":
    main()
