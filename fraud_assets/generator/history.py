"""What ClickHouse already knows before a generated range starts.

The behaviour columns of a new range continue the recorded history: a
customer's running count, average and last transaction, the last 24 hours of
their transactions (for the window counts) and each wallet's first appearance
and volume. Money is carried in integer cents so that continuing a history
gives exactly the numbers a single longer run would.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from clickhouse_connect.driver.client import Client

from fraud_assets.features.compaction import SUMMED_AMOUNT_SQL

DAY_S = 86_400

# Amounts capped as the features sum them (SUMMED_AMOUNT_SQL): a row quarantined for an
# absurd or non-finite amount must not stop a range from continuing the history.
_USERS = """
SELECT user_id,
       toInt64(count()) AS prior_count,
       toInt64(sum(toInt64(round(if(isFinite(amount), least(greatest(amount, 0), 10000000000.), 0.) * 100)))) AS prior_cents,
       toInt64(toUnixTimestamp(max(timestamp))) AS prior_last_s
FROM crypto_transactions
WHERE timestamp < toDateTime(%(start)s, 'UTC')
GROUP BY user_id
"""

_RECENT = """
SELECT user_id, toInt64(toUnixTimestamp(timestamp)) AS ts, transaction_id
FROM crypto_transactions
WHERE timestamp >= toDateTime(%(since)s, 'UTC') AND timestamp < toDateTime(%(start)s, 'UTC')
"""

_WALLETS = """
SELECT wallet_address,
       toInt64(toUnixTimestamp(min(timestamp))) AS prior_first_s,
       toInt64(sum(toInt64(round(if(isFinite(amount), least(greatest(amount, 0), 10000000000.), 0.) * 100)))) AS prior_cents
FROM crypto_transactions
WHERE timestamp < toDateTime(%(start)s, 'UTC')
GROUP BY wallet_address
"""

assert SUMMED_AMOUNT_SQL in _USERS and SUMMED_AMOUNT_SQL in _WALLETS

_LATER = """
SELECT count() FROM crypto_transactions WHERE timestamp >= toDateTime(%(end)s, 'UTC')
"""


@dataclass(frozen=True)
class PriorHistory:
    users: pl.DataFrame  # user_id, prior_count, prior_cents, prior_last_s
    recent: pl.DataFrame  # user_id, ts, transaction_id: the 24 hours before the range
    wallets: pl.DataFrame  # wallet_address, prior_first_s, prior_cents

    @staticmethod
    def empty() -> PriorHistory:
        return PriorHistory(
            users=pl.DataFrame(
                schema={
                    "user_id": pl.String,
                    "prior_count": pl.Int64,
                    "prior_cents": pl.Int64,
                    "prior_last_s": pl.Int64,
                }
            ),
            recent=pl.DataFrame(
                schema={"user_id": pl.String, "ts": pl.Int64, "transaction_id": pl.String}
            ),
            wallets=pl.DataFrame(
                schema={
                    "wallet_address": pl.String,
                    "prior_first_s": pl.Int64,
                    "prior_cents": pl.Int64,
                }
            ),
        )


def _frame(client: Client, sql: str, parameters: dict, like: pl.DataFrame) -> pl.DataFrame:
    table = client.query_arrow(sql, parameters=parameters)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    if frame.is_empty():
        return like
    return frame.cast(like.schema)


def read_prior_history(client: Client, start_s: int) -> PriorHistory:
    empty = PriorHistory.empty()
    at = {"start": start_s, "since": start_s - DAY_S}
    return PriorHistory(
        users=_frame(client, _USERS, at, empty.users),
        recent=_frame(client, _RECENT, at, empty.recent),
        wallets=_frame(client, _WALLETS, at, empty.wallets),
    )


def rows_after(client: Client, end_s: int) -> int:
    return int(client.query(_LATER, parameters={"end": end_s}).result_rows[0][0])
