"""Replay gate timing: two weeks of traffic replayed by two bundles in one run.

    python fraud_assets_tests/benchmarks/bench_replay.py                 # 5 000 users
    python fraud_assets_tests/benchmarks/bench_replay.py --users 20000

Data (not timed): ``--users`` customers for the 30 days before the first
training week's end and the week after it, in an embedded ClickHouse under
``--workdir``. The weekly job trains and promotes the first week's bundle,
then trains the second week, whose ``replay_backtest`` replays the 14 days
before its end with the candidate and the active bundle. Both runs use 3
autoencoder epochs at batch 256 and open quality gates: this measures time,
not detection. Prints the replay's rows, seconds (features, scoring, whole),
rows/s, its verdict, the whole job's wall time and the load average.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

FIRST_WEEK, SECOND_WEEK = "2026-03-15", "2026-03-22"
SECOND_END = dt.datetime(2026, 3, 29, 2, tzinfo=dt.UTC)
CONFIG = {
    "ops": {
        "train_autoencoder": {"config": {"epochs": 3, "batch_size": 256}},
        "validate_models_validation_quality_gates": {
            "config": {"min_roc_auc": 0.0, "min_recall_at_2pct": 0.0, "min_block_precision": 0.0,
                       "max_block_rate": 1.0}
        },
    },
    "loggers": {"console": {"config": {"log_level": "WARNING"}}},
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_replay"))
    args = parser.parse_args()
    os.environ["FRAUD_DATA_DIR"] = str(args.workdir / "data")
    os.environ["FRAUD_MODEL_DIR"] = str(args.workdir / "models")
    os.environ.pop("CLICKHOUSE_URL", None)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
            GeneratorConfig(
                start=SECOND_END - dt.timedelta(days=37), end=SECOND_END, users=args.users
            ),
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
        f"replay {meta['window']}: {meta.get('replay_rows', 0):,} rows, features "
        f"{meta.get('replay_features_seconds')} s, scoring (two bundles) "
        f"{meta.get('replay_scoring_seconds')} s, whole {meta.get('replay_wall_seconds')} s, "
        f"{meta.get('replay_rows_per_second')} rows/s; passed={meta['passed']}: {meta['reason']}"
    )
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
