"""Old history collapsed into summary rows, exactly.

Most of a 30-day history only ever enters a transaction's features through
sums over the 30-day look-back: counts, amount sums, hour-of-day vectors,
per-type counts, and counts per (user, country), (user, device), (user,
wallet) and wallet. For a window of transactions, every history row that is

* at or after the latest look-back start of the window's transactions (so it
  is inside every transaction's 30-day look-back), and
* at least 24 hours before the window's first transaction (so it is outside
  every velocity window and before every transaction),

contributes the same amounts to every transaction, whatever its exact time.
Such rows are therefore summed per (user, country, device, wallet) into
*summary rows* carrying the integer sums in ``AGGREGATE_COLUMNS``. The one
exception is each user's latest such row, kept as a transaction because it
may be a transaction's *previous* transaction.

Sums are integers (cents, log amounts in units of 1e-4, hour vectors in units
of 1e-6) so that a summary is exact and ClickHouse computes the same numbers
(``AGGREGATE_SQL``) as polars (``row_aggregates``).

History is every row of ``crypto_transactions``, including rows that scoring
quarantined (except copies of a stored transaction, see ``history.py``): a
row's amount enters the sums capped to [0, ``MAX_AMOUNT_USD``] and as 0 when
it is not finite, so one absurd amount upstream can neither overflow the
integer sums nor stop its user's scoring for 30 days.
"""

from __future__ import annotations

import math

import polars as pl

from fraud_assets.features.frames import AGGREGATE_COLUMNS, REQUIRED_COLUMNS
from fraud_assets.reference import MAX_AMOUNT_USD

LOG_AMOUNT_QUANTUM = 10_000
HOUR_VECTOR_QUANTUM = 1_000_000
SUMMARY_KEYS: tuple[str, ...] = ("user_id", "ip_country", "device_type", "wallet_address")
TYPE_AGGREGATES: dict[str, str] = {
    "buy": "agg_type_buy",
    "sell": "agg_type_sell",
    "withdraw": "agg_type_withdraw",
    "deposit": "agg_type_deposit",
}

HOUR_COS: tuple[int, ...] = tuple(
    round(math.cos(2 * math.pi * h / 24) * HOUR_VECTOR_QUANTUM) for h in range(24)
)
HOUR_SIN: tuple[int, ...] = tuple(
    round(math.sin(2 * math.pi * h / 24) * HOUR_VECTOR_QUANTUM) for h in range(24)
)


def row_aggregates() -> list[pl.Expr]:
    """The aggregate columns of single transactions (polars side of ``AGGREGATE_SQL``)."""
    raw = pl.col("amount")
    amount = pl.when(raw.is_finite()).then(raw.clip(0, MAX_AMOUNT_USD)).otherwise(0.0)
    log_q = (amount.log1p() * LOG_AMOUNT_QUANTUM).round().cast(pl.Int64)
    hour = pl.col("timestamp").dt.hour()
    return [
        pl.lit(1, pl.Int64).alias("agg_rows"),
        (amount * 100).round().cast(pl.Int64).alias("agg_cents"),
        log_q.alias("agg_log_q"),
        (log_q * log_q).alias("agg_log_q2"),
        hour.replace_strict(list(range(24)), list(HOUR_COS), return_dtype=pl.Int64).alias(
            "agg_hour_cos"
        ),
        hour.replace_strict(list(range(24)), list(HOUR_SIN), return_dtype=pl.Int64).alias(
            "agg_hour_sin"
        ),
        *[
            (pl.col("transaction_type") == kind).cast(pl.Int64).alias(column)
            for kind, column in TYPE_AGGREGATES.items()
        ],
    ]


def _sql_array(values: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


# The summed amount, as row_aggregates caps it (the literal is MAX_AMOUNT_USD).
SUMMED_AMOUNT_SQL = "if(isFinite(amount), least(greatest(amount, 0), 10000000000.), 0.)"
_SQL_LOG_Q = f"toInt64(round(log1p({SUMMED_AMOUNT_SQL}) * 10000))"
# The same quantities in ClickHouse, per transaction; rounding is half-to-even on both sides.
ROW_AGGREGATE_SQL: dict[str, str] = {
    "agg_rows": "toInt64(1)",
    "agg_cents": f"toInt64(round({SUMMED_AMOUNT_SQL} * 100))",
    "agg_log_q": _SQL_LOG_Q,
    "agg_log_q2": f"{_SQL_LOG_Q} * {_SQL_LOG_Q}",
    "agg_hour_cos": f"toInt64(arrayElement({_sql_array(HOUR_COS)}, toHour(timestamp) + 1))",
    "agg_hour_sin": f"toInt64(arrayElement({_sql_array(HOUR_SIN)}, toHour(timestamp) + 1))",
    **{column: f"toInt64(transaction_type = '{kind}')" for kind, column in TYPE_AGGREGATES.items()},
}
# Sums over many rows; the row count is count(), the form the table's daily projection
# (sql/056) stores: ClickHouse answers from the projection only for identical aggregates.
AGGREGATE_SQL: dict[str, str] = {
    name: "count()" if name == "agg_rows" else f"sum({expr})"
    for name, expr in ROW_AGGREGATE_SQL.items()
}
assert tuple(AGGREGATE_SQL) == AGGREGATE_COLUMNS
assert LOG_AMOUNT_QUANTUM == 10_000  # literal in _SQL_LOG_Q
assert MAX_AMOUNT_USD == 1e10  # literal in SUMMED_AMOUNT_SQL


def with_row_aggregates(frame: pl.DataFrame) -> pl.DataFrame:
    """Fill the aggregate columns of transaction rows; summary rows keep theirs."""
    per_row = row_aggregates()
    if "agg_rows" not in frame.columns:
        return frame.with_columns(per_row)
    is_summary = pl.col("agg_rows").is_not_null()
    return frame.with_columns(
        pl.when(is_summary)
        .then(pl.col(expr.meta.output_name()))
        .otherwise(expr)
        .alias(expr.meta.output_name())
        for expr in per_row
    )


def summarise(transactions: pl.DataFrame, at: pl.Expr) -> pl.DataFrame:
    """Transactions (or summaries) summed per (user, country, device, wallet), stamped ``at``."""
    if transactions.height == 0:
        return transactions.select(*REQUIRED_COLUMNS, *AGGREGATE_COLUMNS).clear()
    return (
        with_row_aggregates(transactions)
        .group_by(SUMMARY_KEYS)
        .agg(pl.col(c).sum() for c in AGGREGATE_COLUMNS)
        .select(
            pl.lit("").alias("transaction_id"),
            at.alias("timestamp"),
            "user_id",
            pl.lit(0.0).alias("amount"),
            pl.lit("").alias("transaction_type"),
            "wallet_address",
            "ip_country",
            "device_type",
            *AGGREGATE_COLUMNS,
        )
    )


def latest_per_user(rows: pl.DataFrame) -> pl.Series:
    """True for each user's last row in (timestamp, transaction_id) order.

    Users with one row need no comparison. From ClickHouse that is every user
    (the summary query leaves one stand-in row per user), where the window
    expressions over 130k user ids cost 0.65 s of a 1M-row hour for nothing.
    """
    latest = rows.get_column("user_id").is_unique()
    if latest.all():
        return latest
    latest_time = pl.col("timestamp") == pl.col("timestamp").max().over("user_id")
    latest_id = pl.col("transaction_id") == pl.col("transaction_id").filter(latest_time).max().over(
        "user_id"
    )
    several = rows.with_row_index("_row").filter(~latest)
    return latest.scatter(several.filter(latest_time & latest_id).get_column("_row"), True)


def compact(history: pl.DataFrame, start: int, end: int) -> pl.DataFrame:
    """Transactions with ``start ≤ epoch ms ≤ end``, except each user's latest, become summaries.

    ``history`` has the aggregate columns (null on transactions). Summary rows
    already present are validated to lie in the same range.
    """
    millis = pl.col("timestamp").dt.epoch("ms")
    is_summary = pl.col("agg_rows").is_not_null()
    in_range = millis.is_between(start, end)
    summaries = history.filter(is_summary)
    if summaries.height and not summaries.select(in_range.all()).item():
        raise ValueError(
            "summary rows in history must lie where every transaction's look-back holds "
            "them and no velocity window reaches them (see compaction.py)"
        )
    if end < start:
        return history
    old = history.filter(~is_summary & in_range)
    if old.height == 0:
        return history
    old = old.with_columns(_latest=latest_per_user(old))
    at = pl.lit(start).cast(pl.Datetime("ms", "UTC")).dt.cast_time_unit("us")
    collapsed = summarise(old.filter(~pl.col("_latest")).drop("_latest"), at)
    kept = history.filter(is_summary | ~in_range)
    return pl.concat(
        [kept, old.filter(pl.col("_latest")).drop("_latest"), collapsed], how="vertical"
    )
