"""The transaction generator against the embedded ClickHouse: continuity, idempotency, CLI, asset."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from fraud_assets.assets.demo_data import GeneratedTransactionsConfig, generated_transactions
from fraud_assets.clickhouse import ClickHouseResource, connect
from fraud_assets.generator import (
    TRANSACTION_COLUMNS,
    GeneratorConfig,
    generate,
    generate_into_clickhouse,
)
from fraud_assets.generator.labels import LABEL_COLUMNS
from fraud_assets.generator.store import insert_frame
from fraud_assets.reference import FRAUD_SCENARIOS

START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
MIDDLE = START + dt.timedelta(hours=40, minutes=30)
END = START + dt.timedelta(days=3)
SETTINGS = {"users": 250, "seed": 5, "fraud_rate": 0.05}


def _read(client, table: str, columns: tuple[str, ...], times: tuple[str, ...]) -> pl.DataFrame:
    final = " FINAL" if table == "transaction_labels" else ""
    frame = pl.from_arrow(client.query_arrow(f"SELECT {', '.join(columns)} FROM {table}{final}"))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(
        pl.from_epoch(pl.col(c).cast(pl.Int64), time_unit="s")
        .dt.cast_time_unit("us")
        .dt.replace_time_zone("UTC")
        for c in times
    )


def _stored(clickhouse: ClickHouseResource) -> tuple[pl.DataFrame, pl.DataFrame]:
    with clickhouse.get_client() as client:
        transactions = _read(client, "crypto_transactions", TRANSACTION_COLUMNS, ("timestamp",))
        labels = _read(
            client, "transaction_labels", LABEL_COLUMNS, ("labeled_at", "transaction_timestamp")
        )
    return (
        transactions.sort("timestamp", "transaction_id"),
        labels.sort("transaction_timestamp", "transaction_id"),
    )


def _same(stored: pl.DataFrame, generated: pl.DataFrame, key: tuple[str, ...]) -> None:
    expected = generated.sort(*key).select(stored.columns)
    assert stored.cast(expected.schema).equals(expected)


def test_ranges_written_in_turn_continue_the_recorded_history(clickhouse) -> None:
    """Two consecutive ranges through ClickHouse equal one run over both, every column."""
    first = GeneratorConfig(start=START, end=MIDDLE, **SETTINGS)
    second = GeneratorConfig(start=MIDDLE, end=END, **SETTINGS)
    generate_into_clickhouse(clickhouse, first)
    summary = generate_into_clickhouse(clickhouse, second)
    assert summary.rows > 0
    whole = generate(GeneratorConfig(start=START, end=END, **SETTINGS))
    transactions, labels = _stored(clickhouse)
    _same(transactions, whole.transactions, ("timestamp", "transaction_id"))
    _same(labels, whole.labels, ("transaction_timestamp", "transaction_id"))


def test_a_range_continues_past_rows_with_absurd_amounts(clickhouse) -> None:
    """Rows scoring would quarantine stay in the table; the next range still continues it."""
    generate_into_clickhouse(clickhouse, GeneratorConfig(start=START, end=MIDDLE, **SETTINGS))
    with clickhouse.get_client() as client:
        stored = _read(client, "crypto_transactions", TRANSACTION_COLUMNS, ("timestamp",)).head(3)
        bad = stored.with_columns(
            pl.Series("amount", [float("inf"), float("nan"), 4.4e245]),
            pl.col("transaction_id") + "-bad",
        )
        insert_frame(client, "crypto_transactions", bad)
    summary = generate_into_clickhouse(
        clickhouse, GeneratorConfig(start=MIDDLE, end=END, **SETTINGS)
    )
    assert summary.rows > 0


def test_regenerating_a_range_replaces_it(clickhouse) -> None:
    config = GeneratorConfig(start=START, end=MIDDLE, **SETTINGS)
    later = GeneratorConfig(start=MIDDLE, end=END, **SETTINGS)
    generate_into_clickhouse(clickhouse, config)
    generate_into_clickhouse(clickhouse, later)
    before = _stored(clickhouse)
    again = generate_into_clickhouse(clickhouse, config)
    assert again.rows_after_end == before[0].filter(pl.col("timestamp") >= MIDDLE).height
    after = _stored(clickhouse)
    assert after[0].equals(before[0])
    assert after[1].equals(before[1])


def test_cli_generate_writes_into_the_embedded_database(tmp_path: Path) -> None:
    env = os.environ | {"FRAUD_DATA_DIR": str(tmp_path)}
    env.pop("CLICKHOUSE_URL", None)
    command = [
        sys.executable, "-m", "fraud_assets.cli", "generate",
        "--start", "2026-03-02", "--end", "2026-03-03T12:00:00",
        "--users", "120", "--seed", "3", "--fraud-rate", "0.05",
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "transactions for 120 users" in result.stdout
    expected = generate(
        GeneratorConfig(
            start=START, end=START + dt.timedelta(hours=36), users=120, seed=3, fraud_rate=0.05
        )
    )
    with connect(f"chdb://{tmp_path / 'clickhouse'}", "analytics") as client:
        count = client.query("SELECT count() FROM crypto_transactions").result_rows[0][0]
        frauds = client.query(
            "SELECT count() FROM transaction_labels FINAL WHERE is_fraud = 1"
        ).result_rows[0][0]
    assert count == expected.transactions.height
    assert frauds == expected.incidents.height


def test_cli_rejects_an_empty_range(tmp_path: Path) -> None:
    env = os.environ | {"FRAUD_DATA_DIR": str(tmp_path)}
    command = [
        sys.executable, "-m", "fraud_assets.cli", "generate",
        "--start", "2026-03-03", "--end", "2026-03-02",
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "must be after start" in result.stderr


def test_asset_materialises_with_fraud_metadata(clickhouse) -> None:
    config = GeneratedTransactionsConfig(
        start="2026-03-02", end="2026-03-03", users=150, seed=9, fraud_rate=0.05
    )
    result = dg.materialize(
        [generated_transactions],
        resources={"clickhouse": clickhouse},
        run_config=dg.RunConfig({"generated_transactions": config}),
    )
    assert result.success
    [event] = result.asset_materializations_for_node("generated_transactions")
    metadata = event.metadata
    expected = generate(config.generator_config())
    assert metadata["dagster/row_count"].value == expected.transactions.height
    assert metadata["fraud_transactions_by_scenario"].value == expected.fraud_counts()
    assert set(metadata["fraud_incidents_by_scenario"].value) == set(FRAUD_SCENARIOS)


def test_asset_default_range_ends_at_the_current_hour() -> None:
    now = dt.datetime(2026, 5, 1, 13, 47, tzinfo=dt.UTC)
    config = GeneratedTransactionsConfig(days=2).generator_config(now)
    assert config.end == dt.datetime(2026, 5, 1, 13, tzinfo=dt.UTC)
    assert config.start == config.end - dt.timedelta(days=2)


@pytest.mark.parametrize("text", ["account_takeover=2,structuring=1", " structuring = 1 "])
def test_fraud_mix_text(text: str) -> None:
    from fraud_assets.generator import parse_mix

    mix = GeneratorConfig(start=START, end=END, fraud_mix=parse_mix(text)).fraud_mix
    assert mix["structuring"] > 0 and mix["velocity_burst"] == 0
