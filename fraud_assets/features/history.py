"""Read what ``extract_features`` needs from ClickHouse: the only module with I/O.

One call returns the window's transactions, the earlier rows of only the users
and wallets that appear in the window (the filter runs in ClickHouse, so a
1-hour partition reads its users' history, not the whole table), and the
fraud labels known before the window ends. History reaches back from the
start of the window's first hour by the look-back, so features near the start
of a partition see the same rows as anywhere else.

History that every transaction of the window sees whole (see
``compaction.py``) is summed in ClickHouse per (user, country, device, wallet)
instead of being transferred row by row: for an hourly partition that is
everything older than 24 hours except each user's latest transaction, which
cuts the transfer and the feature work by an order of magnitude while giving
the same features as the raw rows.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import polars as pl
from clickhouse_connect.driver.client import Client

from fraud_assets.features.catalog import LOOKBACK_DAYS
from fraud_assets.features.compaction import AGGREGATE_SQL, ROW_AGGREGATE_SQL, SUMMARY_KEYS
from fraud_assets.features.frames import AGGREGATE_COLUMNS, HISTORY_COLUMNS, PROFILE_COLUMNS

log = logging.getLogger(__name__)

TRANSACTION_COLUMNS: tuple[str, ...] = HISTORY_COLUMNS + tuple(PROFILE_COLUMNS)
VELOCITY_REACH = timedelta(hours=24)


class FeatureInputs(NamedTuple):
    transactions: pl.DataFrame | None  # None when the caller already has them
    history: pl.DataFrame
    labels: pl.DataFrame


def _select_list(columns: tuple[str, ...]) -> str:
    # DateTime leaves ClickHouse's Arrow output as a plain uint32; DateTime64 keeps the zone.
    return ", ".join(
        "toDateTime64(timestamp, 6, 'UTC') AS timestamp" if c == "timestamp" else c for c in columns
    )


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} must be timezone-aware (UTC)")
    return int(moment.timestamp() * 1_000_000)


def _at(name: str) -> str:
    return f"fromUnixTimestamp64Micro({{{name}:Int64}}, 'UTC')"


_WINDOW = f"timestamp >= {_at('start')} AND timestamp < {_at('end')}"
_WINDOW_USERS = f"SELECT DISTINCT user_id FROM crypto_transactions WHERE {_WINDOW}"  # noqa: S608
_WINDOW_WALLETS = (
    f"SELECT DISTINCT wallet_address FROM crypto_transactions WHERE {_WINDOW} "  # noqa: S608
    "AND wallet_address != ''"
)
_RELATED = f"(user_id IN ({_WINDOW_USERS}) OR wallet_address IN ({_WINDOW_WALLETS}))"
_SUMMARISED = f"timestamp >= {_at('summary_start')} AND timestamp <= {_at('summary_end')}"
_KEPT_AS_ROWS = (
    f"((timestamp >= {_at('history_start')} AND timestamp < {_at('summary_start')}) "
    f"OR (timestamp > {_at('summary_end')} AND timestamp < {_at('start')}))"
)

TRANSACTIONS_SQL = (
    f"SELECT {_select_list(TRANSACTION_COLUMNS)} FROM crypto_transactions "  # noqa: S608
    # The table's sort key starts (timestamp, user_id): this order is read, not sorted.
    f"WHERE {_WINDOW} ORDER BY timestamp, user_id, transaction_id"
)

HISTORY_SQL = (
    f"SELECT {_select_list(HISTORY_COLUMNS)} FROM crypto_transactions "  # noqa: S608
    f"WHERE {_KEPT_AS_ROWS} AND {_RELATED}"
)

# Each window user's latest summarisable transactions (all those at the user's
# latest time; the one with the greatest id is kept), with their own aggregate
# values: it stays a row (it may be a transaction's previous one) and is taken
# out of the summary. Matching on (user, time) keeps the scan numeric.
LATEST_SQL = (
    f"SELECT {_select_list(HISTORY_COLUMNS).replace(' AS timestamp', ' AS time64')}, "  # noqa: S608
    + ", ".join(f"{expr} AS {name}" for name, expr in ROW_AGGREGATE_SQL.items())
    + f" FROM crypto_transactions WHERE {_SUMMARISED} AND (user_id, timestamp) IN "  # noqa: S608
    "(SELECT user_id, max(timestamp) FROM crypto_transactions "
    f"WHERE {_SUMMARISED} AND user_id IN ({_WINDOW_USERS}) GROUP BY user_id)"
)

SUMMARY_SQL = (
    f"SELECT {', '.join(SUMMARY_KEYS)}, "  # noqa: S608
    + ", ".join(f"{expr} AS {name}" for name, expr in AGGREGATE_SQL.items())
    + f" FROM crypto_transactions WHERE {_SUMMARISED} AND {_RELATED} "
    f"GROUP BY {', '.join(SUMMARY_KEYS)}"
)

# FINAL: the latest label per transaction, as the features read it.
LABELS_SQL = (
    "SELECT transaction_id, is_fraud, toDateTime64(labeled_at, 6, 'UTC') AS labeled_at, "  # noqa: S608
    "user_id, wallet_address FROM transaction_labels FINAL "
    f"WHERE labeled_at >= {_at('history_start')} AND labeled_at < {_at('end')} AND {_RELATED}"
)


def _frame(client: Client, sql: str, parameters: dict[str, int]) -> pl.DataFrame:
    table = client.query_arrow(sql, parameters=parameters, use_strings=True)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.col(pl.Categorical).cast(pl.String))


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def load_feature_inputs(
    client: Client,
    start: datetime,
    end: datetime,
    lookback: timedelta = timedelta(days=LOOKBACK_DAYS),
    *,
    with_transactions: bool = True,
) -> FeatureInputs:
    """The transactions in [start, end), their users' and wallets' history, and known labels.

    ``with_transactions=False`` skips reading the window's transactions (the
    scoring graph has them already: reading a 1M-row hour twice costs seconds)
    and leaves ``transactions`` None.

    History covers [hour(start) − lookback, start): the features' look-back is
    anchored at each transaction's hour, so this is exactly what the earliest
    transaction of the window can see. Its part that every transaction sees
    whole arrives as summary rows. Labels are those with ``labeled_at < end``
    (``extract_features`` further keeps, per transaction, only labels known
    strictly before it).
    """
    if end <= start:
        raise ValueError(f"empty window: start {start} is not before end {end}")
    if lookback < timedelta(days=LOOKBACK_DAYS):
        log.warning(
            "look-back %s is shorter than the features' %d days: history features will "
            "differ from a training run over the same transactions",
            lookback,
            LOOKBACK_DAYS,
        )
    history_start = _hour(start) - lookback
    # Inside the look-back of the window's last hour, and out of every velocity window.
    summary_start = max(
        _hour(end - timedelta(microseconds=1)) - timedelta(days=LOOKBACK_DAYS), history_start
    )
    summary_end = start - VELOCITY_REACH
    if summary_end < summary_start:  # a long window: nothing is seen whole, all rows stay rows
        summary_start, summary_end = start, start - timedelta(microseconds=1)
    parameters = {
        "start": _micros(start),
        "end": _micros(end),
        "history_start": _micros(history_start),
        "summary_start": _micros(summary_start),
        "summary_end": _micros(summary_end),
    }
    rows = _frame(client, HISTORY_SQL, parameters)
    latest = (
        _frame(client, LATEST_SQL, parameters)
        .rename({"time64": "timestamp"})
        .filter(pl.col("transaction_id") == pl.col("transaction_id").max().over("user_id"))
    )
    summary = _without(_frame(client, SUMMARY_SQL, parameters), latest)
    if summary.height:
        summary = summary.with_columns(
            transaction_id=pl.lit(""),
            timestamp=pl.lit(summary_start).cast(pl.Datetime("us", "UTC")),
            amount=pl.lit(0.0),
            transaction_type=pl.lit(""),
        )
    history = pl.concat([rows, latest.select(HISTORY_COLUMNS), summary], how="diagonal_relaxed")
    return FeatureInputs(
        transactions=_frame(client, TRANSACTIONS_SQL, parameters) if with_transactions else None,
        history=history,
        labels=_frame(client, LABELS_SQL, parameters),
    )


def load_transactions(client: Client, start: datetime, end: datetime) -> pl.DataFrame:
    """The transactions in [start, end), exactly as ``load_feature_inputs`` reads them."""
    if end <= start:
        raise ValueError(f"empty window: start {start} is not before end {end}")
    return _frame(client, TRANSACTIONS_SQL, {"start": _micros(start), "end": _micros(end)})


def _without(summary: pl.DataFrame, latest: pl.DataFrame) -> pl.DataFrame:
    """Summaries minus the latest rows' own aggregates (exact: all integers)."""
    if latest.height == 0:
        return summary
    taken = latest.group_by(SUMMARY_KEYS).agg(pl.col(c).sum() for c in AGGREGATE_COLUMNS)
    return (
        summary.join(taken, on=SUMMARY_KEYS, how="left", suffix="_taken")
        .with_columns(
            (pl.col(c) - pl.col(f"{c}_taken").fill_null(0)).alias(c) for c in AGGREGATE_COLUMNS
        )
        .filter(pl.col("agg_rows") > 0)
        .select(*SUMMARY_KEYS, *AGGREGATE_COLUMNS)
    )
