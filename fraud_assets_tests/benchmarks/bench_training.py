"""Training time: the weekly graph on 30 days holding ~1M transactions (Isolation Forest + autoencoder).

    python fraud_assets_tests/benchmarks/bench_training.py                   # seed defaults
    python fraud_assets_tests/benchmarks/bench_training.py --batch-size 256  # the larger batch
    python fraud_assets_tests/benchmarks/bench_training.py --epochs 3        # a quick look

Data (built once per ``--workdir``, reused; not timed): ``--users`` customers
(30 000 ≈ 1M transactions in 30 days) × ``--warmup-days`` + 30 days from the
transaction generator in an embedded ClickHouse, so the training window's
history features see a realistic past. Then ``train_ensemble_models`` runs for
the week that closes at the end of the data, in a fresh process, with the
autoencoder's ``--epochs`` / ``--batch-size`` / ``--patience`` (seed: 50, 32,
5). The quality-gate floors are set to 0 so that registration and promotion
run whatever the models' quality (this measures time, not detection).

Prints seconds per step, the autoencoder's epochs run (early stopping) and
seconds per epoch, the rows each model was fitted on, the whole run's wall
time against the 10-minute target, and the peak RSS of the process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

from support import OPEN_GATES, peak_rss_mib, run_training, use_workdir

DATA_END = dt.datetime(2026, 3, 29, 2, tzinfo=dt.UTC)  # a Sunday 02:00: a weekly partition end
WEEK = "2026-03-22"
TARGET_S = 600.0


def generate_data(args: argparse.Namespace) -> None:
    from fraud_assets.clickhouse import ClickHouseResource
    from fraud_assets.generator import GeneratorConfig, generate_into_clickhouse

    clickhouse = ClickHouseResource()
    start = DATA_END - dt.timedelta(days=args.warmup_days + 30)
    began, rows, moment = time.perf_counter(), 0, start
    while moment < DATA_END:
        until = min(moment + dt.timedelta(days=10), DATA_END)
        summary = generate_into_clickhouse(
            clickhouse, GeneratorConfig(start=moment, end=until, users=args.users)
        )
        rows += summary.rows
        moment = until
    with clickhouse.get_client() as client:
        window = client.query(
            "SELECT count() FROM crypto_transactions WHERE timestamp >= {s:DateTime('UTC')}",
            parameters={"s": DATA_END - dt.timedelta(days=30)},
        ).result_rows[0][0]
    print(
        f"data: {rows:,} transactions for {args.users:,} users, {window:,} in the 30-day "
        f"training window ({time.perf_counter() - began:.0f} s)",
        flush=True,
    )


def train(args: argparse.Namespace) -> None:
    autoencoder = {"epochs": args.epochs, "batch_size": args.batch_size, "patience": args.patience}
    ops = {
        "train_autoencoder": {"config": autoencoder},
        "validate_models_validation_quality_gates": {"config": OPEN_GATES},
    }
    result, timer = run_training(WEEK, ops)
    wall, cpu = timer.wall, timer.cpu
    print(f"train_ensemble_models, autoencoder {autoencoder}:")
    for event in result.all_events:
        if event.event_type_value == "STEP_SUCCESS":
            seconds = event.event_specific_data.duration_ms / 1000
            print(f"  {event.step_key:<48} {seconds:8.1f} s")
    metadata = {
        m.asset_key.to_user_string(): {k: v.value for k, v in m.materialization.metadata.items()}
        for m in result.get_asset_materialization_events()
    }
    forest, ae = metadata["train_isolation_forest"], metadata["train_autoencoder"]
    quality = metadata["validate_models"]
    epochs = int(ae["epochs_run"])
    print(
        f"  isolation forest: {forest['training_samples']:,} rows, fit {forest['fit_seconds']} s\n"
        f"  autoencoder: {ae['training_samples']:,} rows, {epochs} epoch(s) of {args.epochs} "
        f"(early stopping, patience {args.patience}), fit {ae['fit_seconds']} s = "
        f"{float(ae['fit_seconds']) / max(epochs, 1):.1f} s/epoch, final val_loss "
        f"{float(ae['final_val_loss']):.5f}\n"
        f"  validation PR-AUC (to compare batch sizes on the same code, not a quality verdict): "
        f"{_layer_pr_auc(str(quality['path']))}\n"
        f"  whole run {wall:.0f} s ({wall / 60:.1f} min; target {TARGET_S / 60:.0f} min: "
        f"{'met' if wall <= TARGET_S else 'NOT met'}), CPU {cpu:.0f} s, "
        f"peak RSS {peak_rss_mib():,.0f} MiB",
        flush=True,
    )


def _layer_pr_auc(artifact_path: str) -> str:
    """Each layer's PR-AUC from the validation report that validate_models stored."""
    from fraud_assets import settings

    report = json.loads((settings.model_dir() / artifact_path / "report.json").read_text())
    layers = ("isolation_forest", "autoencoder", "ensemble")
    return ", ".join(f"{layer} {float(report[layer]['pr_auc']):.3f}" for layer in layers)


def _in_subprocess(args: argparse.Namespace, phase: str) -> None:
    command = [sys.executable, __file__, "--phase", phase, *sys.argv[1:]]
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/bench_training")
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--warmup-days", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = Path(args.workdir)
    use_workdir(workdir)
    if args.phase == "generate":
        generate_data(args)
        return
    if args.phase == "train":
        train(args)
        return

    marker = workdir / "prepared.json"
    wanted = {"users": args.users, "warmup_days": args.warmup_days}
    if not marker.exists():
        _in_subprocess(args, "generate")
        marker.write_text(json.dumps(wanted))
    elif json.loads(marker.read_text()) != wanted:
        raise SystemExit(
            f"{workdir} holds other data ({marker.read_text()}); pick another --workdir"
        )
    else:
        print(f"data: reusing {workdir} ({wanted})")
    _in_subprocess(args, "train")


if __name__ == "__main__":
    main()
