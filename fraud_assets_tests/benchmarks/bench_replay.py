"""Replay gate timing and memory: two weeks of traffic replayed by two bundles, a chunk at a time.

    python fraud_assets_tests/benchmarks/bench_replay.py                 # 5 000 users
    python fraud_assets_tests/benchmarks/bench_replay.py --users 20000 --chunk-hours 24 336
    python fraud_assets_tests/benchmarks/bench_replay.py --replay-only --chunk-hours 1 6 24

Data (not timed): ``--users`` customers for the 30 days before the first
training week's end and the week after it, in an embedded ClickHouse under
``--workdir``. The weekly job trains and promotes the first week's bundle,
then trains the second week, whose ``replay_backtest`` replays the 14 days
before its end with the candidate and the active bundle (default chunks of
24 hours). Both runs use 3 autoencoder epochs at batch 256 and open quality
gates: this measures time, not detection. Prints the replay's rows, seconds
(features, scoring, whole), rows/s, its verdict, the whole job's wall time.

Then, for each ``--chunk-hours``, a fresh process replays the same window
with the same two bundles (``replay_outcomes``) and prints its time and its
memory: resident set before the replay (interpreter, engine, bundles) and
the peak during it (the kernel's high-water mark, reset after the bundles
are loaded). Each step runs in its own process because the embedded engine
is opened once per process. ``--replay-only`` skips the data and training
(a ``--workdir`` trained before). Last, the load average.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from support import OPEN_GATES, QUIET, use_workdir

FIRST_WEEK, SECOND_WEEK = "2026-03-15", "2026-03-22"
SECOND_END = dt.datetime(2026, 3, 29, 2, tzinfo=dt.UTC)
LABEL_DELAY_DAYS = 5
CONFIG = {
    "ops": {
        "train_autoencoder": {"config": {"epochs": 3, "batch_size": 256}},
        "validate_models_validation_quality_gates": {
            "config": {**OPEN_GATES, "max_block_rate": 1.0}
        },
    },
    **QUIET,
}


def train(users: int) -> None:
    import dagster as dg

    from fraud_assets.assets import training
    from fraud_assets.clickhouse import ClickHouseResource
    from fraud_assets.generator import GeneratorConfig, generate_into_clickhouse
    from fraud_assets.resources import default_resources

    clickhouse = ClickHouseResource()
    with clickhouse.get_client() as client:
        existing = client.query("SELECT count() FROM crypto_transactions").result_rows[0][0]
    if not existing:
        began = time.perf_counter()
        summary = generate_into_clickhouse(
            clickhouse,
            GeneratorConfig(start=SECOND_END - dt.timedelta(days=37), end=SECOND_END, users=users),
        )
        print(f"data: {summary.rows:,} transactions ({time.perf_counter() - began:.0f} s)")
    defs = dg.Definitions.merge(training.defs, dg.Definitions(resources=default_resources()))
    job = defs.resolve_job_def("train_ensemble_models")
    instance = dg.DagsterInstance.ephemeral()
    for week in (FIRST_WEEK, SECOND_WEEK):
        began = time.perf_counter()
        result = job.execute_in_process(partition_key=week, instance=instance, run_config=CONFIG)
        print(f"training {week}: {time.perf_counter() - began:.0f} s wall")
    (event,) = [
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey("replay_backtest")
    ]
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    print(
        f"job's replay {meta['window']} in {meta.get('replay_chunks')} chunks: "
        f"{meta.get('replay_rows', 0):,} rows, features {meta.get('replay_features_seconds')} s, "
        f"scoring (two bundles) {meta.get('replay_scoring_seconds')} s, whole "
        f"{meta.get('replay_wall_seconds')} s, {meta.get('replay_rows_per_second')} rows/s; "
        f"passed={meta['passed']}: {meta['reason']}"
    )


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def replay(chunk_hours: int) -> None:
    from fraud_assets.assets import training
    from fraud_assets.assets.replay_steps import replay_outcomes
    from fraud_assets.bundle_loader import load_bundle
    from fraud_assets.clickhouse import ClickHouseResource

    start = SECOND_END - dt.timedelta(weeks=2)
    with ClickHouseResource().get_client() as client:
        candidate = load_bundle(client, training.model_version(SECOND_WEEK))
        active = load_bundle(client, training.model_version(FIRST_WEEK))
        Path("/proc/self/clear_refs").write_text("5")  # the peak RSS restarts from here
        before = _status_kib("VmRSS")
        result = replay_outcomes(
            client,
            candidate,
            active,
            start,
            SECOND_END,
            SECOND_END - dt.timedelta(days=LABEL_DELAY_DAYS),
            chunk_hours=chunk_hours,
        )
    timing = result["timing"]
    print(
        json.dumps(
            timing
            | {
                "rss_before_mib": round(before / 1024),
                "peak_rss_mib": round(_status_kib("VmHWM") / 1024),
                "candidate_caught": result["candidate"].caught,
                "active_caught": result["active"].caught,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_replay"))
    parser.add_argument("--chunk-hours", type=int, nargs="*", default=[24, 336])
    parser.add_argument(
        "--replay-only", action="store_true", help="reuse a --workdir this script has trained"
    )
    parser.add_argument("--step", choices=["train", "replay"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    use_workdir(args.workdir)
    if args.step == "train":
        return train(args.users)
    if args.step == "replay":
        return replay(args.chunk_hours[0])
    me = [sys.executable, __file__, "--workdir", str(args.workdir)]
    if not args.replay_only:
        subprocess.run([*me, "--step", "train", "--users", str(args.users)], check=True)
    for hours in args.chunk_hours:
        out = subprocess.run(
            [*me, "--step", "replay", "--chunk-hours", str(hours)],
            check=True,
            capture_output=True,
            text=True,
        )
        report = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"replay in {hours}-hour chunks ({report['chunks']}): {report['rows']:,} rows, "
            f"largest chunk {report['largest_chunk_rows']:,}, {report['wall_seconds']} s "
            f"(features {report['features_seconds']} s, scoring {report['scoring_seconds']} s); "
            f"RSS before {report['rss_before_mib']} MiB, peak {report['peak_rss_mib']} MiB; "
            f"caught {report['candidate_caught']} / {report['active_caught']}"
        )
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
