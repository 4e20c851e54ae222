"""IO-manager throughput: a transactions-like frame (N rows × 20 columns) through ClickHouse.

Writes the frame into ``crypto_transactions`` (the typed schema from sql/) as
one daily partition through the IO manager's ``handle_output``, rewrites the
same partition (delete + insert), reads it back through ``load_input``, and
does the same for polars. Prints rows/s per step and the process peak RSS.
Runs on a fresh embedded database in a temporary folder unless --dsn is given.

    python fraud_assets_tests/benchmarks/bench_io.py              # 1M rows
    python fraud_assets_tests/benchmarks/bench_io.py --rows 200000
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
from dagster._core.storage.db_io_manager import TableSlice

from fraud_assets.clickhouse import connect
from fraud_assets.io import (
    ClickHouseDbClient,
    ClickHousePandasIOManager,
    ClickHousePolarsIOManager,
)
from fraud_assets.partitions import daily_partitions

DAY = "2025-03-01"


def transactions(rows: int, seed: int = 0) -> pd.DataFrame:
    """A frame shaped like crypto_transactions: 20 columns, times inside one day."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(DAY, tz="UTC")
    timestamp = (start + pd.to_timedelta(rng.integers(0, 86_400, rows), unit="s")).astype(
        "datetime64[us, UTC]"
    )
    users = np.array([f"user_{i:06d}" for i in range(50_000)])
    wallets = np.array([f"0x{i:040x}" for i in range(100_000)])

    def choice(values: list[str]) -> pd.Series:
        return pd.Series(rng.choice(values, rows), dtype="str")

    return pd.DataFrame(
        {
            "transaction_id": pd.Series([f"tx_{i:012d}" for i in range(rows)], dtype="str"),
            "timestamp": timestamp,
            "user_id": pd.Series(users[rng.integers(0, len(users), rows)], dtype="str"),
            "amount": rng.lognormal(5, 1.5, rows),
            "currency": choice(["BTC", "ETH", "USDT", "SOL", "XRP"]),
            "transaction_type": choice(["buy", "sell", "withdraw", "deposit"]),
            "user_avg_amount": rng.lognormal(5, 1, rows),
            "user_total_transactions": rng.integers(0, 5_000, rows, dtype=np.int32),
            "user_account_age_days": rng.integers(0, 3_000, rows, dtype=np.int32),
            "wallet_address": pd.Series(wallets[rng.integers(0, len(wallets), rows)], dtype="str"),
            "wallet_age_days": rng.integers(0, 3_000, rows, dtype=np.int32),
            "wallet_total_volume": rng.lognormal(8, 2, rows),
            "hour_of_day": timestamp.hour.astype(np.int8),
            "day_of_week": timestamp.day_of_week.astype(np.int8),
            "ip_country": choice(["US", "DE", "IR", "TR", "AE", "GB", "FR", "NG"]),
            "device_type": choice(["mobile", "desktop", "api"]),
            "time_since_last_transaction": rng.exponential(300, rows),
            "transactions_last_hour": rng.integers(0, 20, rows, dtype=np.int32),
            "transactions_last_24h": rng.integers(0, 200, rows, dtype=np.int32),
            "created_at": timestamp,
        }
    )


def _analytics() -> TableSlice:
    return TableSlice(table="crypto_transactions", schema="analytics")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(
    label: str, rows: int, fn: Callable[[Any], Any], setup: Callable[[], Any], repeat: int
) -> Any:
    """Best of ``repeat`` runs of ``fn(setup())``; only ``fn`` is timed."""
    best, result = float("inf"), None
    for _ in range(repeat):
        argument = setup()
        start = time.perf_counter()
        result = fn(argument)
        best = min(best, time.perf_counter() - start)
    print(
        f"{label:<34} {best:7.2f} s {rows / best:>12,.0f} rows/s   peak RSS {peak_rss_mib():6.0f} MiB",
        flush=True,
    )
    return result


def contexts(load_type: type) -> tuple[dg.OutputContext, dg.InputContext]:
    metadata = {"partition_expr": "timestamp"}
    output = dg.build_output_context(
        asset_key="crypto_transactions",
        partition_key=DAY,
        asset_partitions_def=daily_partitions,
        definition_metadata=metadata,
        run_id="bench",
    )
    upstream = dg.build_output_context(
        asset_key="crypto_transactions",
        partition_key=DAY,
        asset_partitions_def=daily_partitions,
        definition_metadata=metadata,
    )
    input_ = dg.build_input_context(
        asset_key="crypto_transactions",
        partition_key=DAY,
        asset_partitions_def=daily_partitions,
        upstream_output=upstream,
        dagster_type=dg.DagsterType(lambda _, __: True, name=load_type.__name__),
    )
    return output, input_


def run(io_factory: Any, frame: Any, rows: int, label: str, repeat: int) -> None:
    """Write a new partition, replace it, read it: through ``handle_output``/``load_input``.

    Building a Dagster context (an ephemeral instance) takes about half a
    second; it happens in ``setup``, outside the timings.
    """
    io_manager = io_factory.create_io_manager(None)

    def output_context() -> dg.OutputContext:
        return contexts(type(frame))[0]

    def input_context() -> dg.InputContext:
        return contexts(type(frame))[1]

    timed(
        f"{label} write (new partition)",
        rows,
        lambda c: io_manager.handle_output(c, frame),
        output_context,
        1,
    )
    timed(
        f"{label} rewrite (replace)",
        rows,
        lambda c: io_manager.handle_output(c, frame),
        output_context,
        repeat,
    )
    loaded = timed(f"{label} read", rows, io_manager.load_input, input_context, repeat)
    assert len(loaded) == rows, (len(loaded), rows)


def reference(dsn: str, frame: pd.DataFrame, rows: int, repeat: int) -> None:
    """clickhouse-connect's own Arrow calls on the same frame and table, for comparison."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with connect(dsn, "analytics") as client:
        client.command("CREATE TABLE IF NOT EXISTS reference AS crypto_transactions")

        def insert(_: None) -> None:
            client.command("TRUNCATE TABLE reference")
            client.insert_arrow("reference", table)

        timed("reference insert_arrow", rows, insert, lambda: None, repeat)
        timed(
            "reference query_arrow",
            rows,
            lambda _: client.query_arrow("SELECT * FROM reference"),
            lambda: None,
            repeat,
        )
        client.command("DROP TABLE reference")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N for rewrite and read")
    parser.add_argument("--dsn", help="ClickHouse DSN (default: a fresh embedded database)")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="bench_io_")
    dsn = args.dsn or f"chdb://{workdir}/clickhouse"
    try:
        with ClickHouseDbClient(dsn).connect(None, _analytics()):
            pass  # open the engine and apply migrations outside the timings
        frame = transactions(args.rows)
        print(f"{args.rows:,} rows × {frame.shape[1]} columns, {dsn.split('://')[0]} engine")
        reference(dsn, frame, args.rows, args.repeat)
        run(ClickHousePandasIOManager(dsn=dsn), frame, args.rows, "pandas", args.repeat)
        polars_frame = pl.from_pandas(frame)
        del frame
        run(ClickHousePolarsIOManager(dsn=dsn), polars_frame, args.rows, "polars", args.repeat)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
