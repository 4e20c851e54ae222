"""Read what ``extract_features`` needs from ClickHouse: the only module with I/O.

One call returns the window's transactions, the earlier rows of only the users
and wallets that appear in the window (the filter runs in ClickHouse, so a
1-hour partition reads a few users' history, not the whole table), and the
fraud labels known before the window ends. History reaches back from the
start of the window's first hour by the look-back, so features near the start
of a partition see the same rows as anywhere else.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import polars as pl
from clickhouse_connect.driver.client import Client

from fraud_assets.features.catalog import LOOKBACK_DAYS
from fraud_assets.features.frames import HISTORY_COLUMNS, PROFILE_COLUMNS

log = logging.getLogger(__name__)

TRANSACTION_COLUMNS: tuple[str, ...] = HISTORY_COLUMNS + tuple(PROFILE_COLUMNS)


class FeatureInputs(NamedTuple):
    transactions: pl.DataFrame
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


_WINDOW = (
    "timestamp >= fromUnixTimestamp64Micro({start:Int64}, 'UTC') "
    "AND timestamp < fromUnixTimestamp64Micro({end:Int64}, 'UTC')"
)
_WINDOW_USERS = f"SELECT DISTINCT user_id FROM crypto_transactions WHERE {_WINDOW}"  # noqa: S608
_WINDOW_WALLETS = (
    f"SELECT DISTINCT wallet_address FROM crypto_transactions WHERE {_WINDOW} "  # noqa: S608
    "AND wallet_address != ''"
)

TRANSACTIONS_SQL = (
    f"SELECT {_select_list(TRANSACTION_COLUMNS)} FROM crypto_transactions "  # noqa: S608
    f"WHERE {_WINDOW} ORDER BY timestamp, transaction_id"
)

HISTORY_SQL = (
    f"SELECT {_select_list(HISTORY_COLUMNS)} FROM crypto_transactions "  # noqa: S608
    "WHERE timestamp >= fromUnixTimestamp64Micro({history_start:Int64}, 'UTC') "
    "AND timestamp < fromUnixTimestamp64Micro({start:Int64}, 'UTC') "
    f"AND (user_id IN ({_WINDOW_USERS}) OR wallet_address IN ({_WINDOW_WALLETS}))"
)

# FINAL: the latest label per transaction, as the features read it.
LABELS_SQL = (
    "SELECT transaction_id, is_fraud, toDateTime64(labeled_at, 6, 'UTC') AS labeled_at, "  # noqa: S608
    "user_id, wallet_address FROM transaction_labels FINAL "
    "WHERE labeled_at >= fromUnixTimestamp64Micro({history_start:Int64}, 'UTC') "
    "AND labeled_at < fromUnixTimestamp64Micro({end:Int64}, 'UTC') "
    f"AND (user_id IN ({_WINDOW_USERS}) OR wallet_address IN ({_WINDOW_WALLETS}))"
)


def _frame(client: Client, sql: str, parameters: dict[str, int]) -> pl.DataFrame:
    table = client.query_arrow(sql, parameters=parameters, use_strings=True)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.col(pl.Categorical).cast(pl.String))


def load_feature_inputs(
    client: Client,
    start: datetime,
    end: datetime,
    lookback: timedelta = timedelta(days=LOOKBACK_DAYS),
) -> FeatureInputs:
    """The transactions in [start, end), their users' and wallets' history, and known labels.

    History covers [hour(start) − lookback, start): the features' look-back is
    anchored at each transaction's hour, so this is exactly what the earliest
    transaction of the window can see. Labels are those with
    ``labeled_at < end`` (``extract_features`` further keeps, per transaction,
    only labels known strictly before it).
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
    hour_start = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    parameters = {
        "start": _micros(start),
        "end": _micros(end),
        "history_start": _micros(hour_start - lookback),
    }
    return FeatureInputs(
        transactions=_frame(client, TRANSACTIONS_SQL, parameters),
        history=_frame(client, HISTORY_SQL, parameters),
        labels=_frame(client, LABELS_SQL, parameters),
    )
