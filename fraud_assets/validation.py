"""Input validation for scoring: which transactions are fit to score, and why not.

Invalid rows are never dropped silently: ``split_valid`` returns them with a
reason so the graph can quarantine them, and ``valid + quarantined == input``
always holds. The seed's validate_data ideas (empty, nulls, ranges) applied to
transactions.

Duplicate transaction ids: the first occurrence of an id (earliest timestamp,
then the smallest contents, column by column) claims it and is the one
scored; every later row with the same id is quarantined as
``duplicate_transaction_id`` — within a window, and across windows through
``claimed_ids``, which finds the ids of a window that already occurred in
the ``DUPLICATE_LOOKBACK`` before it. The rule depends only on the source
table, so it gives the same answer whichever order hours are scored or
re-scored in. (A copy with an earlier timestamp that arrives
after the later hour was scored is quarantined there only once that later
hour is re-scored.) Ties go by contents, not by arrival, because ClickHouse
returns rows with equal sort keys in no fixed order: every read of a window,
by the scoring graph or by training, scores the same copy.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
from clickhouse_connect.driver.client import Client

from fraud_assets.reference import CURRENCIES, MAX_AMOUNT_USD, TRANSACTION_TYPES

REQUIRED_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "timestamp",
    "user_id",
    "amount",
    "currency",
    "transaction_type",
    "wallet_address",
)

# Numeric columns of the source system's profile (features fill them when absent);
# NaN or infinity there is corruption, not absence.
NUMERIC_PROFILE_COLUMNS: tuple[str, ...] = (
    "user_avg_amount",
    "wallet_total_volume",
    "time_since_last_transaction",
)

DUPLICATE_LOOKBACK = timedelta(days=7)

REASONS: tuple[str, ...] = (
    "null_required_column",
    "empty_identifier",
    "non_finite_amount",
    "non_positive_amount",
    "implausible_amount",
    "non_finite_value",
    "unknown_transaction_type",
    "unknown_currency",
    "timestamp_outside_partition",
    "duplicate_transaction_id",
)


def _non_finite(columns: list[str]) -> pl.Expr:
    if not columns:
        return pl.lit(False)
    return pl.any_horizontal(
        [~pl.col(c).cast(pl.Float64, strict=False).is_finite().fill_null(True) for c in columns]
    )


def _reason_expr(start: datetime, end: datetime, profile: list[str]) -> pl.Expr:
    """The first reason that applies to a row, or null for a valid row (order = priority)."""
    amount = pl.col("amount").cast(pl.Float64, strict=False)
    checks: list[tuple[str, pl.Expr]] = [
        (
            "null_required_column",
            pl.any_horizontal([pl.col(c).is_null() for c in REQUIRED_COLUMNS]),
        ),
        (
            "empty_identifier",
            pl.any_horizontal(
                [
                    pl.col(c).cast(pl.Utf8).str.strip_chars() == ""
                    for c in ("transaction_id", "user_id")
                ]
            ),
        ),
        ("non_finite_amount", ~amount.is_finite()),
        ("non_positive_amount", amount <= 0),
        ("implausible_amount", amount > MAX_AMOUNT_USD),
        ("non_finite_value", _non_finite(profile)),
        ("unknown_transaction_type", ~pl.col("transaction_type").is_in(list(TRANSACTION_TYPES))),
        ("unknown_currency", ~pl.col("currency").is_in(list(CURRENCIES))),
        (
            "timestamp_outside_partition",
            (pl.col("timestamp") < start) | (pl.col("timestamp") >= end),
        ),
        (
            "duplicate_transaction_id",
            # A row that is not its id's first is a later copy: no separate duplicate pass.
            ~pl.col("_first") | pl.col("_claimed"),
        ),
    ]
    expr = pl.lit(None, dtype=pl.Utf8)
    for reason, condition in reversed(checks):
        expr = pl.when(condition.fill_null(False)).then(pl.lit(reason)).otherwise(expr)
    return expr


def split_valid(
    transactions: pl.DataFrame,
    start: datetime,
    end: datetime,
    claimed: pl.Series | list[str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid rows, invalid rows with a ``reason`` column) for the window [start, end).

    For duplicate transaction ids the earliest row (by timestamp, then by its
    contents) is scored and the others are quarantined; ids in ``claimed``
    (already seen before the window, see ``claimed_ids``) are quarantined too.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in transactions.columns]
    if missing:
        raise ValueError(f"transactions lack required columns {missing}")
    profile = [c for c in NUMERIC_PROFILE_COLUMNS if c in transactions.columns]
    claimed_ids = pl.Series("claimed", list(claimed) if claimed is not None else [], pl.Utf8)
    marked = (
        transactions.with_row_index("_arrival")
        .sort(["timestamp", "_arrival"], nulls_last=True)
        .with_columns(
            # In this order the first row of each id is the one scored (a hash pass, where
            # a window over the ids costs several times as much); copies that share a
            # time are then put in order by their contents.
            pl.col("transaction_id").is_first_distinct().alias("_first"),
            pl.col("transaction_id").cast(pl.Utf8).is_in(claimed_ids.implode()).alias("_claimed"),
        )
    )
    if not marked.get_column("_first").all():  # copies: their first by contents
        marked = _first_by_contents(marked)
    marked = marked.with_columns(_reason_expr(start, end, profile).alias("reason")).sort("_arrival")
    helpers = ("_arrival", "_first", "_claimed")
    valid = marked.filter(pl.col("reason").is_null()).drop(*helpers, "reason")
    invalid = marked.filter(pl.col("reason").is_not_null()).drop(*helpers)
    return valid, invalid


def _first_by_contents(marked: pl.DataFrame) -> pl.DataFrame:
    """``_first`` for the ids with several rows: the earliest, ties by contents.

    Only those ids' rows are sorted (all of their columns), so an hour without
    copies pays nothing, and copies at one time get the same order however
    they were read.
    """
    repeated = pl.col("transaction_id").is_in(
        marked.filter(~pl.col("_first")).get_column("transaction_id").unique().implode()
    )
    contents = [c for c in marked.columns if not c.startswith("_") and c != "timestamp"]
    chosen = (
        marked.filter(repeated)
        .sort(["timestamp", *contents], nulls_last=True)
        .filter(pl.col("transaction_id").is_first_distinct())
        .get_column("_arrival")
    )
    return marked.with_columns(
        pl.when(repeated)
        .then(pl.col("_arrival").is_in(chosen.implode()))
        .otherwise(pl.col("_first"))
        .alias("_first")
    )


def quarantine_rows(
    invalid: pl.DataFrame, start: datetime, end: datetime, run_id: str
) -> pl.DataFrame:
    """``quarantined_transactions`` rows: keys, reason and the original row as JSON.

    A missing or out-of-window timestamp is filed under the window's start (the
    original stays in ``row_json``), so the quarantine of a window is always
    written to that window.
    """
    inside = pl.col("timestamp").is_between(start, end, closed="left").fill_null(False)
    return invalid.select(
        pl.col("transaction_id").fill_null("").cast(pl.Utf8),
        pl.when(inside).then(pl.col("timestamp")).otherwise(pl.lit(start)).alias("timestamp"),
        pl.col("user_id").fill_null("").cast(pl.Utf8),
        pl.col("reason"),
        pl.struct(pl.all().exclude("reason")).struct.json_encode().alias("row_json"),
        pl.lit(run_id).alias("run_id"),
    )


_CLAIMED_SQL = """
SELECT DISTINCT transaction_id FROM crypto_transactions
WHERE timestamp >= {since:DateTime('UTC')} AND timestamp < {start:DateTime('UTC')}
  AND transaction_id IN (
    SELECT transaction_id FROM crypto_transactions
    WHERE timestamp >= {start:DateTime('UTC')} AND timestamp < {end:DateTime('UTC')}
  )
"""


def claimed_ids(
    client: Client, start: datetime, end: datetime, lookback: timedelta = DUPLICATE_LOOKBACK
) -> pl.Series:
    """Ids of transactions in [start, end) that already occurred in the lookback before start."""
    rows = client.query(
        _CLAIMED_SQL, parameters={"since": start - lookback, "start": start, "end": end}
    ).result_rows
    return pl.Series("transaction_id", [r[0] for r in rows], pl.Utf8)
