"""Detector throughput: score an hour of N rows × D features through every layer.

Prints rows/s per stage (best of ``repeat`` runs), the stage's peak RSS above
the RSS it started with (sampled every 5 ms) and the process peak RSS, then
times a few autoencoder training epochs on the same rows to extrapolate a
full early-stopped training run.

    python fraud_assets_tests/benchmarks/bench_detectors.py                # 1M × 50
    python fraud_assets_tests/benchmarks/bench_detectors.py --rows 200000 --ae-epochs 0
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from support import peak_rss_mib

from fraud_assets.detectors import (
    AutoencoderDetector,
    EnsembleCombiner,
    IsolationForestDetector,
    StatisticalRules,
)

# TensorFlow loads only when an autoencoder is fitted: quiet its logs before that.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    """Highest RSS seen while a stage runs (the process peak only ever grows)."""

    def __enter__(self) -> RssSampler:
        self.start = self.peak = current_rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, current_rss_mib())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_mib())


def stage(name: str, rows: int, fn: Callable[[], Any], repeat: int = 1) -> Any:
    best = float("inf")
    with RssSampler() as rss:
        for _ in range(repeat):
            start = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - start)
    print(
        f"{name:<44} {best:8.2f} s {rows / best:>12,.0f} rows/s"
        f"   stage +{rss.peak - rss.start:6.0f} MiB   process RSS peak {peak_rss_mib():7.0f} MiB",
        flush=True,
    )
    return result


def feature_frame(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """The columns the statistical rules read, with realistic rates of rule hits."""
    tx_type = rng.integers(0, 4, n)
    return pd.DataFrame(
        {
            "amount": rng.lognormal(5, 1.5, n),
            "amount_to_user_avg": rng.lognormal(0, 0.8, n),
            "tx_count_5m": rng.poisson(0.5, n) + 1,
            "tx_count_1h": rng.poisson(2, n) + 1,
            "tx_count_24h": rng.poisson(10, n) + 1,
            "wallet_age_days": rng.exponential(200, n),
            "is_new_wallet_for_user": rng.random(n) < 0.05,
            "country_changed": rng.random(n) < 0.02,
            "is_new_country_for_user": rng.random(n) < 0.01,
            "is_new_device_for_user": rng.random(n) < 0.03,
            "geo_velocity_kmh": rng.exponential(100, n),
            "minutes_since_last_tx": rng.exponential(300, n),
            "is_recent_device_for_user": rng.random(n) < 0.03,
            "is_recent_country_for_user": rng.random(n) < 0.02,
            "is_recent_wallet_for_user": rng.random(n) < 0.05,
            "log_user_tx_count_before_24h": np.log1p(rng.poisson(50, n)),
            "log_user_account_age_days": np.log1p(rng.exponential(400, n)),
            "near_limit_withdrawals_24h": rng.poisson(0.01, n),
            "type_withdraw": tx_type == 0,
            "type_sell": tx_type == 1,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--iso-train-rows", type=int, default=200_000)
    parser.add_argument("--ae-epochs", type=int, default=2, help="epochs timed on all rows")
    parser.add_argument("--ae-batch-sizes", default="32,256")
    parser.add_argument("--keras-predict", action="store_true", help="also time Keras predict")
    args = parser.parse_args()
    n, d = args.rows, args.features
    rng = np.random.default_rng(0)
    print(f"{n:,} rows × {d} features, {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    X = rng.normal(size=(n, d)).astype(np.float32)
    features = feature_frame(n, rng)

    iso = IsolationForestDetector()
    stage(
        f"IF fit ({args.iso_train_rows:,} rows)",
        args.iso_train_rows,
        lambda: iso.fit(X[: args.iso_train_rows]),
    )
    iso.set_params(n_jobs=1)
    stage("IF score, 1 thread", n, lambda: iso.anomaly_score(X), repeat=2)
    iso.set_params(n_jobs=-1)
    iso_out = stage(
        "IF evaluate (score+risk+pred), all threads", n, lambda: iso.evaluate(X), repeat=2
    )

    ae = AutoencoderDetector(epochs=1, random_state=0)
    ae.fit(X[:20_000])  # scoring speed does not depend on how well the weights fit
    ae_out = stage("AE evaluate, NumPy forward pass", n, lambda: ae.evaluate(X), repeat=3)
    if args.keras_predict:
        model, Z = ae.keras_model(), ae.standardized(X)
        stage(
            "AE Keras predict (batch 8192)", n, lambda: model.predict(Z, batch_size=8192, verbose=0)
        )

    rules = StatisticalRules()
    matrix = stage("rules evaluate_matrix (vectorised)", n, lambda: rules.evaluate_matrix(features))
    stat_risk, flags = stage(
        "rules evaluate (risk + flag lists)", n, lambda: rules.evaluate(features)
    )
    combiner = EnsembleCombiner()
    layers = (stat_risk, iso_out.risk, ae_out.risk, iso_out.prediction, ae_out.prediction)
    stage("ensemble combine, flag lists", n, lambda: combiner.combine(*layers, flags))
    result = stage("ensemble combine, RuleMatrix", n, lambda: combiner.combine(*layers, matrix))
    print("decisions:", result.counts())

    def end_to_end():
        i, a = iso.evaluate(X), ae.evaluate(X)
        m = rules.evaluate_matrix(features)
        result = combiner.combine(m.risk, i.risk, a.risk, i.prediction, a.prediction, m)
        return result, m.flags()  # the flag lists too, as stored per row

    stage("END TO END (IF + AE + rules + combine)", n, end_to_end)

    for batch_size in [int(b) for b in args.ae_batch_sizes.split(",") if args.ae_epochs]:
        trainer = AutoencoderDetector(
            epochs=args.ae_epochs, batch_size=batch_size, patience=10**6, random_state=0
        )
        start = time.perf_counter()
        trainer.fit(X)
        elapsed = time.perf_counter() - start
        per_epoch = elapsed / args.ae_epochs
        print(
            f"AE training batch {batch_size}: {per_epoch:.1f} s/epoch on {n:,} rows "
            f"(val_loss {trainer.history_['val_loss'][-1]:.4f}); 50 epochs ≈ {50 * per_epoch / 60:.0f} min,"
            f" early stop at ~15 ≈ {15 * per_epoch / 60:.0f} min; RSS peak {peak_rss_mib():.0f} MiB",
            flush=True,
        )


if __name__ == "__main__":
    main()
