"""Input validation for scoring: which transactions are fit to score, and why not.

Invalid rows are never dropped silently: ``split_valid`` returns them with a
reason so the graph can quarantine them, and ``valid + quarantined == input``
always holds. The seed's validate_data ideas (empty, nulls, ranges) applied to
transactions.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from fraud_assets.reference import CURRENCIES, TRANSACTION_TYPES

REQUIRED_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "timestamp",
    "user_id",
    "amount",
    "currency",
    "transaction_type",
    "wallet_address",
)

MAX_AMOUNT_USD = 1e10  # larger than any real transaction: a unit or parsing error upstream

REASONS: tuple[str, ...] = (
    "null_required_column",
    "empty_identifier",
    "non_finite_amount",
    "non_positive_amount",
    "implausible_amount",
    "unknown_transaction_type",
    "unknown_currency",
    "timestamp_outside_partition",
    "duplicate_transaction_id",
)


def _reason_expr(start: datetime, end: datetime) -> pl.Expr:
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
        ("unknown_transaction_type", ~pl.col("transaction_type").is_in(list(TRANSACTION_TYPES))),
        ("unknown_currency", ~pl.col("currency").is_in(list(CURRENCIES))),
        (
            "timestamp_outside_partition",
            (pl.col("timestamp") < start) | (pl.col("timestamp") >= end),
        ),
        ("duplicate_transaction_id", pl.col("transaction_id").is_duplicated() & ~pl.col("_first")),
    ]
    expr = pl.lit(None, dtype=pl.Utf8)
    for reason, condition in reversed(checks):
        expr = pl.when(condition.fill_null(False)).then(pl.lit(reason)).otherwise(expr)
    return expr


def split_valid(
    transactions: pl.DataFrame, start: datetime, end: datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid rows, invalid rows with a ``reason`` column) for the window [start, end).

    For duplicate transaction ids the earliest row (by timestamp, then arrival
    order) is scored and the others are quarantined.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in transactions.columns]
    if missing:
        raise ValueError(f"transactions lack required columns {missing}")
    marked = (
        transactions.with_row_index("_arrival")
        .sort(["timestamp", "_arrival"], nulls_last=True)
        .with_columns(pl.int_range(pl.len()).over("transaction_id").eq(0).alias("_first"))
        .with_columns(_reason_expr(start, end).alias("reason"))
        .sort("_arrival")
    )
    valid = marked.filter(pl.col("reason").is_null()).drop("_arrival", "_first", "reason")
    invalid = marked.filter(pl.col("reason").is_not_null()).drop("_arrival", "_first")
    return valid, invalid
