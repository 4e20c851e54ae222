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
the same features as the raw rows. ClickHouse answers the whole UTC days of
that part from the table's daily aggregate projection (``sql/056``), so a run
reads a few rows per user and day instead of every transaction; the partial
days at either end are summed from the rows. Each user's latest summarised
transaction, which may be a transaction's previous one, comes back as a
stand-in row found from the same sums (its key's latest time): its time,
country, device and wallet, with its count and hour taken out of the summary.

An exact copy of a stored transaction (every column the features read) that
validation quarantined as ``duplicate_transaction_id`` is not history: a
batch delivered twice in different blocks counts once in later hours'
features from the moment its hour is scored. The copies are few, so they are
read back by (time, id) and taken out of the rows and sums here; the
projection keeps summing every stored row. Which of two exact copies goes
makes no difference, so a rerun reads the same history.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import polars as pl
from clickhouse_connect.driver.client import Client

from fraud_assets.features.catalog import LOOKBACK_DAYS
from fraud_assets.features.compaction import AGGREGATE_SQL, SUMMARY_KEYS, row_aggregates
from fraud_assets.features.frames import AGGREGATE_COLUMNS, HISTORY_COLUMNS, PROFILE_COLUMNS

log = logging.getLogger(__name__)

TRANSACTION_COLUMNS: tuple[str, ...] = HISTORY_COLUMNS + tuple(PROFILE_COLUMNS)
VELOCITY_REACH = timedelta(hours=24)
_DAY = timedelta(days=1)


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


# The SQL below is assembled with f-strings, so ruff's S608 (string-built SQL) is
# silenced on each statement: every fragment is a constant of this module, and every
# value (times, ids, users) travels as a query parameter, never in the text.
_WINDOW = f"timestamp >= {_at('start')} AND timestamp < {_at('end')}"
_WINDOW_USERS = f"SELECT DISTINCT user_id FROM crypto_transactions WHERE {_WINDOW}"  # noqa: S608
_WINDOW_WALLETS = (
    f"SELECT DISTINCT wallet_address FROM crypto_transactions WHERE {_WINDOW} "  # noqa: S608
    "AND wallet_address != ''"
)
_RELATED = f"(user_id IN ({_WINDOW_USERS}) OR wallet_address IN ({_WINDOW_WALLETS}))"
# The summarised range in two parts: its whole UTC days, which ClickHouse answers
# from the table's daily aggregate projection (sql/056: one row per day and
# (user, country, device, wallet) instead of every transaction), and the rest
# at either end, from the transactions. The projection is only a faster path to
# the same sums: parts without it are read row by row.
_WHOLE_DAYS = "toDate(timestamp) >= {first_day:Date} AND toDate(timestamp) <= {last_day:Date}"
_PARTIAL_DAYS = (
    f"((timestamp >= {_at('head_start')} AND timestamp < {_at('head_end')}) "
    f"OR (timestamp >= {_at('tail_start')} AND timestamp < {_at('tail_end')}))"
)
# ``toDate(timestamp) >= day`` must stay as written for the projection to match, not
# be rewritten into a timestamp range.
SUMMARY_SETTINGS = {"optimize_time_filter_with_preimage": 0}
_KEPT_AS_ROWS = (
    f"((timestamp >= {_at('history_start')} AND timestamp < {_at('summary_start')}) "
    f"OR (timestamp > {_at('summary_end')} AND timestamp < {_at('start')}))"
)


def _both_parts(select: str, where: str, group_by: str) -> str:
    """``select`` per part of the summarised range (whole days, partial days), as one union."""
    # S608: see the note above _WINDOW.
    return " UNION ALL ".join(
        f"SELECT {select} FROM crypto_transactions "  # noqa: S608
        f"WHERE {part} AND {where} GROUP BY {group_by}"
        for part in (_WHOLE_DAYS, _PARTIAL_DAYS)
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

_KEYS = ", ".join(SUMMARY_KEYS)
SUMMARY_SQL = (
    f"SELECT {_KEYS}, "  # noqa: S608
    + ", ".join(f"toInt64(sum(part_{name})) AS {name}" for name in AGGREGATE_SQL)
    # Each key's latest time (the projection keeps it per day): the latest row of a user
    # lies under the key with the user's greatest one.
    + ", toDateTime64(max(part_time), 6, 'UTC') AS latest_time FROM ("
    + _both_parts(
        f"{_KEYS}, "
        + ", ".join(f"{expr} AS part_{name}" for name, expr in AGGREGATE_SQL.items())
        + ", max(timestamp) AS part_time",
        _RELATED,
        _KEYS,
    )
    + f") GROUP BY {_KEYS}"
)

# Users whose latest summarised time is shared by rows under several keys (two
# transactions in one second): the one with the greatest id is their latest, so
# those rows are read (the time, numeric, narrows the scan first).
TIED_LATEST_SQL = (
    "SELECT user_id, toDateTime64(timestamp, 6, 'UTC') AS timestamp, transaction_id, "
    "ip_country, device_type, wallet_address FROM crypto_transactions "
    "WHERE toUnixTimestamp(timestamp) IN {seconds:Array(Int64)} "
    "AND user_id IN {users:Array(String)}"
)

# Copies that validation quarantined as repeats of a stored transaction, by key
# (constants and query parameters only, as all SQL here: see S608 above).
_REPEATS = (
    "SELECT timestamp, transaction_id FROM quarantined_transactions "  # noqa: S608
    "WHERE reason = 'duplicate_transaction_id' "
    f"AND timestamp >= {_at('history_start')} AND timestamp < {_at('start')}"
)
REPEATS_SQL = (
    "SELECT toDateTime64(timestamp, 6, 'UTC') AS timestamp, transaction_id, "  # noqa: S608
    f"toInt64(count()) AS copies FROM ({_REPEATS}) GROUP BY timestamp, transaction_id"
)
# The stored rows at those keys inside the summarised range (each key's copies and
# the transaction they repeat): the key is (timestamp, ...) first, so few granules.
REPEATED_SUMMARISED_SQL = (
    f"SELECT {_select_list(HISTORY_COLUMNS)} FROM crypto_transactions "  # noqa: S608
    f"WHERE timestamp >= {_at('summary_start')} AND timestamp <= {_at('summary_end')} "
    f"AND (timestamp, transaction_id) IN ({_REPEATS}) AND {_RELATED}"
)

# FINAL: the latest label per transaction, as the features read it.
LABELS_SQL = (
    "SELECT transaction_id, is_fraud, toDateTime64(labeled_at, 6, 'UTC') AS labeled_at, "  # noqa: S608
    "user_id, wallet_address FROM transaction_labels FINAL "
    f"WHERE labeled_at >= {_at('history_start')} AND labeled_at < {_at('end')} AND {_RELATED}"
)


def _frame(
    client: Client, sql: str, parameters: dict[str, object], settings: dict | None = None
) -> pl.DataFrame:
    table = client.query_arrow(sql, parameters=parameters, use_strings=True, settings=settings)
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
        **_day_split(summary_start, summary_end),
    }
    repeats = _frame(client, REPEATS_SQL, parameters)
    rows = _without_repeats(_frame(client, HISTORY_SQL, parameters), repeats)
    summary = _frame(client, SUMMARY_SQL, parameters, SUMMARY_SETTINGS)
    if repeats.height:
        stored = _frame(client, REPEATED_SUMMARISED_SQL, parameters)
        summary = _subtract(summary, _repeated_copies(stored, repeats))
    latest = _latest_rows(client, summary)
    summary = _subtract(summary.drop("latest_time"), latest)
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


def _day_split(summary_start: datetime, summary_end: datetime) -> dict[str, object]:
    """The summarised range [summary_start, summary_end] as its whole UTC days and the rest.

    Whole days are [first_day, last_day] (none when first_day > last_day); the
    rest is [head_start, head_end) before them and [tail_start, tail_end) after.
    """
    after = summary_end + timedelta(microseconds=1)  # the range as [summary_start, after)
    first = _day(summary_start + (_DAY - timedelta(microseconds=1)))  # the first midnight in it
    last = _day(after)  # the last midnight in it; whole days lie between the two
    if after <= summary_start or last - first < _DAY:  # no whole day: all of it is "head"
        first, last, tail = after, after, after
    else:
        tail = last
    return {
        "first_day": first.date(),
        "last_day": (last - _DAY).date(),
        "head_start": _micros(summary_start),
        "head_end": _micros(min(first, after)),
        "tail_start": _micros(tail),
        "tail_end": _micros(after),
    }


def _day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _latest_rows(client: Client, summary: pl.DataFrame) -> pl.DataFrame:
    """Each summarised user's latest transaction, as a stand-in row: its time and keys.

    It stays a row because it may be a transaction's previous one, which needs
    only its time, country and device. Its amount and type are left blank (0,
    ""), and ``_subtract`` takes what such a row adds to the sums out of its
    key's summary, so the totals stay exact without reading the row itself.
    """
    at_latest = summary.filter(
        pl.col("latest_time") == pl.col("latest_time").max().over("user_id")
    ).select(*SUMMARY_KEYS, pl.col("latest_time").alias("timestamp"))
    tied = at_latest.filter(pl.len().over("user_id") > 1)
    if tied.height == 0:
        return _blank(at_latest)
    times = tied.unique("user_id").select("user_id", "timestamp")
    candidates = _frame(
        client,
        TIED_LATEST_SQL,
        {
            "seconds": times.get_column("timestamp").dt.epoch("s").unique().to_list(),
            "users": times.get_column("user_id").to_list(),
        },
    ).join(times, on=["user_id", "timestamp"], how="semi")
    chosen = candidates.filter(
        pl.col("transaction_id") == pl.col("transaction_id").max().over("user_id")
    ).select(*SUMMARY_KEYS, "timestamp")
    return _blank(pl.concat([at_latest.filter(pl.len().over("user_id") == 1), chosen]))


def _blank(latest: pl.DataFrame) -> pl.DataFrame:
    return latest.with_columns(
        transaction_id=pl.lit(""), amount=pl.lit(0.0), transaction_type=pl.lit("")
    )


def _subtract(summary: pl.DataFrame, taken_rows: pl.DataFrame) -> pl.DataFrame:
    """Summaries minus what the given transaction rows add to them (exact: integers).

    Taking out each stand-in row, a blank transaction (amount 0, no type), takes
    one from the row count and its hour from the hour vector, nothing else; the
    rest of the latest transaction stays in the summary. Other columns of
    ``summary`` (its ``latest_time``) are kept.
    """
    if taken_rows.height == 0:
        return summary
    taken = (
        taken_rows.with_columns(row_aggregates())
        .group_by(SUMMARY_KEYS)
        .agg(pl.col(c).sum() for c in AGGREGATE_COLUMNS)
    )
    return (
        summary.join(taken, on=SUMMARY_KEYS, how="left", suffix="_taken")
        .with_columns(
            (pl.col(c) - pl.col(f"{c}_taken").fill_null(0)).alias(c) for c in AGGREGATE_COLUMNS
        )
        .select(summary.columns)
    )


_KEY = ["timestamp", "transaction_id"]


def _repeated_copies(rows: pl.DataFrame, repeats: pl.DataFrame) -> pl.DataFrame:
    """The rows that are quarantined copies: of the rows identical in every history
    column, up to ``copies`` at their (time, id), always leaving one.

    A copy that differs from its twin (another amount, country, ...) is left as a
    transaction of its own: which of the two validation scored is not recorded here,
    and only identical rows can go without it mattering which.
    """
    if rows.height == 0 or repeats.height == 0:
        return rows.clear()
    identical = [c for c in HISTORY_COLUMNS if c in rows.columns]
    alike = pl.len().over(identical).cast(pl.Int64)
    return (
        rows.with_row_index("_read")
        .join(repeats, on=_KEY, how="inner")
        .sort("_read")
        .filter(pl.int_range(pl.len()).over(identical) < pl.min_horizontal("copies", alike - 1))
        .drop("_read", "copies")
    )


def _without_repeats(rows: pl.DataFrame, repeats: pl.DataFrame) -> pl.DataFrame:
    """History rows without the quarantined copies among them, in the order read."""
    if rows.height == 0 or repeats.height == 0:
        return rows
    indexed = rows.with_row_index("_row")
    copies = _repeated_copies(indexed, repeats).get_column("_row")
    return indexed.filter(~pl.col("_row").is_in(copies.implode())).drop("_row")
