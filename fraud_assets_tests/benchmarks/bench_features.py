"""Feature pipeline throughput: a 1M-transaction hour and 30 days of training data.

    python fraud_assets_tests/benchmarks/bench_features.py [--users 100000] [--per-day 2]

Scenarios (each in its own process, so each peak RSS is its own):

* ``hourly-clickhouse``: the scoring path. The hour and ``users`` × 30 days of
  history are written to a temporary embedded ClickHouse (not timed); then
  ``load_feature_inputs`` (history older than a day arrives summarised) and
  ``extract_features`` are timed.
* ``hourly-raw``: the same hour with the whole history as raw rows in memory
  (``extract_features`` summarises the old part itself).
* ``training``: ``--training-users`` × 30 days as the transactions to
  featurise, with the 30 days before as raw history.

Prints rows/s (transactions featurised per second) and the peak RSS of the
process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
from support import Timer, peak_rss_mib

from fraud_assets.features import extract_features, load_feature_inputs
from fraud_assets.reference import COUNTRY_LOCATIONS, CURRENCIES, DEVICE_TYPES, TRANSACTION_TYPES

HOUR = dt.datetime(2026, 3, 31, 14, tzinfo=dt.UTC)
DAY_S = 86_400


def transactions(
    n: int, users: int, start: dt.datetime, span_s: int, seed: int, prefix: str
) -> pl.DataFrame:
    """Users keep a home country and device, mostly pay their own three wallets, roam 5%."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, users, n)
    roaming = rng.random(n) < 0.05
    shared_wallet = rng.random(n) < 0.05
    countries = np.array(list(COUNTRY_LOCATIONS))
    scale = 3.0 + (user % 7) * 0.5  # users differ in typical amounts
    seconds = int(start.timestamp()) + rng.integers(0, span_s, n)
    frame = pl.DataFrame(
        {
            "u": user,
            "i": np.arange(n),
            "timestamp": pl.Series(seconds * 1_000_000).cast(pl.Datetime("us", "UTC")),
            "amount": np.round(rng.lognormal(scale, 1.2), 2),
            "currency": np.array(CURRENCIES)[rng.integers(0, len(CURRENCIES), n)],
            "transaction_type": np.array(TRANSACTION_TYPES)[rng.integers(0, 4, n)],
            "user_avg_amount": np.exp(scale + 0.72),
            "user_total_transactions": (user % 500).astype(np.int32),
            "user_account_age_days": (user % 1500).astype(np.int32),
            "w": np.where(shared_wallet, rng.integers(0, 500, n), user * 3 + rng.integers(0, 3, n)),
            "shared": shared_wallet,
            "wallet_age_days": rng.integers(0, 700, n).astype(np.int32),
            "wallet_total_volume": rng.lognormal(9.0, 2.0, n),
            "ip_country": np.where(
                roaming,
                countries[rng.integers(0, len(countries), n)],
                countries[user % len(countries)],
            ),
            "device_type": np.where(
                rng.random(n) < 0.05,
                np.array(DEVICE_TYPES)[rng.integers(0, 4, n)],
                np.array(DEVICE_TYPES)[user % 4],
            ),
        }
    )
    return frame.select(
        pl.format("{}-{}", pl.lit(prefix), pl.col("i")).alias("transaction_id"),
        "timestamp",
        pl.format("user{}", pl.col("u")).alias("user_id"),
        "amount",
        "currency",
        "transaction_type",
        "user_avg_amount",
        "user_total_transactions",
        "user_account_age_days",
        pl.when(pl.col("shared"))
        .then(pl.format("0xexchange{}", pl.col("w")))
        .otherwise(pl.format("0x{}", pl.col("w")))
        .alias("wallet_address"),
        "wallet_age_days",
        "wallet_total_volume",
        "ip_country",
        "device_type",
    )


def _hour_and_history(args: argparse.Namespace) -> tuple[pl.DataFrame, pl.DataFrame]:
    hour = transactions(args.hour_rows, args.users, HOUR, 3600, seed=1, prefix="h")
    days = 30
    history = transactions(
        args.users * args.per_day * days,
        args.users,
        HOUR - dt.timedelta(days=days),
        days * DAY_S,
        seed=2,
        prefix="p",
    )
    return hour, history


def _report(label: str, rows: int, wall: float, cpu: float) -> None:
    print(
        f"{label}: {rows:,} transactions in {wall:.2f}s = {rows / wall:,.0f} rows/s "
        f"(CPU {cpu:.2f}s) | peak RSS {peak_rss_mib():,.0f} MiB",
        flush=True,
    )


def hourly_raw(args: argparse.Namespace) -> None:
    hour, history = _hour_and_history(args)
    with Timer() as timer:
        features = extract_features(hour, history, pl.DataFrame())
    label = f"hourly, raw history ({history.height:,} rows)"
    _report(label, features.height, timer.wall, timer.cpu)


def hourly_clickhouse(args: argparse.Namespace) -> None:
    from fraud_assets.clickhouse import ClickHouseResource

    hour, history = _hour_and_history(args)
    with tempfile.TemporaryDirectory(prefix="bench_features_") as folder:
        clickhouse = ClickHouseResource(dsn=f"chdb://{Path(folder, 'clickhouse')}")
        with clickhouse.get_client() as client:
            for frame in (history, hour):
                for chunk in frame.iter_slices(2_000_000):
                    client.insert_arrow("crypto_transactions", chunk.to_arrow())
            del history
            with Timer() as load:
                inputs = load_feature_inputs(client, HOUR, HOUR + dt.timedelta(hours=1))
        with Timer() as compute:
            features = extract_features(*inputs)
    summaries = inputs.history.get_column("agg_rows").is_not_null().sum()
    raw = inputs.history.height - summaries
    print(
        f"  load_feature_inputs {load.wall:.2f}s (CPU {load.cpu:.2f}s): "
        f"{inputs.transactions.height:,} transactions, history {raw:,} rows + "
        f"{summaries:,} summary rows"
    )
    print(
        f"  extract_features {compute.wall:.2f}s (CPU {compute.cpu:.2f}s) = "
        f"{features.height / compute.wall:,.0f} rows/s"
    )
    _report(
        "hourly from ClickHouse, load + features",
        features.height,
        load.wall + compute.wall,
        load.cpu + compute.cpu,
    )


def training(args: argparse.Namespace) -> None:
    days = 30
    rows = args.training_users * args.per_day * days
    start = HOUR - dt.timedelta(days=days)
    window = transactions(rows, args.training_users, start, days * DAY_S, seed=3, prefix="t")
    before = transactions(
        rows, args.training_users, start - dt.timedelta(days=days), days * DAY_S, 4, "b"
    )
    with Timer() as timer:
        features = extract_features(window, before, pl.DataFrame())
    label = f"training, {args.training_users:,} users x {days} days"
    _report(label, features.height, timer.wall, timer.cpu)


SCENARIOS = {"hourly-clickhouse": hourly_clickhouse, "hourly-raw": hourly_raw, "training": training}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--per-day", type=int, default=2, help="history transactions per user-day")
    parser.add_argument("--hour-rows", type=int, default=1_000_000)
    parser.add_argument("--training-users", type=int, default=30_000)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS))
    args = parser.parse_args()
    if args.scenario:
        SCENARIOS[args.scenario](args)
        return
    print(
        f"{args.hour_rows:,}-row hour, {args.users:,} users x 30 days x {args.per_day}/day history;"
        f" training {args.training_users:,} users"
    )
    for name in SCENARIOS:
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--scenario", name], check=True)


if __name__ == "__main__":
    main()
