"""Cost of the reason codes on an hour of N transactions (default 1M), in memory.

A small world is generated and a bundle trained exactly as the reason-code simulation test
does (1,500 customers, six weeks); its last two weeks of scored features are repeated to N rows
(so the hour has the simulation's mix of decisions), scored by the bundle, and then timed:

* ``reasons_for_rows`` as the ``ensemble_decision`` step calls it (default ``ReasonConfig``),
  split into the static wording of every row and the full explanations;
* reading the feature frame back from Parquet with every model input column (what the
  ensemble step now loads) against the five columns it loaded before.

    python fraud_assets_tests/benchmarks/bench_reasons.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
from support import Timer, peak_rss_mib

from fraud_assets.assets.scoring_steps import ENSEMBLE_INPUTS, ENSEMBLE_KEYS
from fraud_assets.detectors import reasons as r
from fraud_assets.evaluation.simulation import SimulationSettings, trained_and_scored_week

SETTINGS = SimulationSettings(users=1500, days=42, test_days=14, epochs=3, n_estimators=100)


def timed(label: str, fn, *args, **kwargs):
    with Timer() as timer:
        result = fn(*args, **kwargs)
    print(f"{label:48s} {timer.wall:7.2f} s wall {timer.cpu:7.2f} s CPU")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench_reasons_") as tmp:
        root = Path(tmp)
        bundle, base = trained_and_scored_week(SETTINGS, root)
        features = pl.concat([base] * (args.rows // base.height + 1)).head(args.rows)
        features = features.with_columns(
            pl.int_range(pl.len()).cast(pl.Utf8).alias("transaction_id"),
            pl.lit(bundle.version).alias("model_version"),
        )
        scored = timed("score (bundle.score, for reference)", bundle.score, features)
        result, flags = scored["ensemble"], scored["flags"]
        config = r.ReasonConfig()
        hour = timed("reason codes (reasons_for_rows)", bundle.reasons, features, scored, config)
        rows = hour.explained
        print(f"  rows {features.height:,}; explained in full {rows.size:,}; "
              f"decisions {result.counts()}")  # fmt: skip
        values = {c: features.get_column(c).to_numpy() for c in r.BASELINE_COLUMNS}
        timed("  of which: baseline signals on every row", r.baseline_bits, values, features.height)
        timed(
            "  of which: full explanations",
            r.explain_in_full,
            features, rows, flags.fired, flags.names, bundle.rules.points,
            scored["isolation"].risk, scored["autoencoder"].risk,
            bundle.scaler, bundle.isolation_forest, bundle.autoencoder, config,
        )  # fmt: skip
        x = np.asarray(bundle.scaler.transform(features[rows].select(bundle.scaler.columns)))
        timed("    isolation forest attribution", r.isolation_credit, bundle.isolation_forest, x)
        timed("    autoencoder attribution", r.autoencoder_excess_error, bundle.autoencoder, x)
        path = root / "features.parquet"
        features.write_parquet(path, compression="lz4", statistics=False)
        timed(
            "read features: ensemble's 5 columns (before)",
            pl.read_parquet,
            path,
            columns=ENSEMBLE_KEYS,
        )
        timed(
            "read features: every model input (now)", pl.read_parquet, path, columns=ENSEMBLE_INPUTS
        )
    print(f"peak RSS {peak_rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
