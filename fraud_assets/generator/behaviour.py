"""The behaviour columns, computed from the history itself.

History is the rows already in ``crypto_transactions`` before the range
(``PriorHistory``) followed by the generated rows. A user's transactions are
ordered by (timestamp, transaction_id); "previous" means earlier in that
order, so every column describes what was known just before the transaction.

* ``user_total_transactions``: number of the user's previous transactions.
* ``user_avg_amount``: mean amount of those previous transactions, rounded to
  the cent (amounts are summed in integer cents); 0 when there are none.
* ``user_account_age_days``: whole days since the account was opened.
* ``time_since_last_transaction``: minutes since the user's previous
  transaction; for the first one, minutes since the account was opened.
* ``transactions_last_hour`` / ``transactions_last_24h``: the user's previous
  transactions less than 3,600 s / 86,400 s before this one (this one excluded).
* ``wallet_age_days``: whole days since the wallet address first appeared in
  any transaction (0 on its first appearance).
* ``wallet_total_volume``: summed amount of all earlier transactions on the
  wallet address, by any user (ordered by timestamp, transaction_id).
* ``hour_of_day``: UTC hour 0–23; ``day_of_week``: ISO day of the UTC date,
  Monday = 1 … Sunday = 7 (ClickHouse ``toDayOfWeek``).

Amount-spike incidents are defined relative to the running average, so their
amounts are settled here: each is its factor × the user's average before it
(or × the profile's typical amount on a first transaction), iterated until
stable because a spike also moves the user's later averages.

Everything runs on integer arrays (ids and wallets as their hash words, whose
numeric order is the order of their hex strings), so a million rows take
seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from fraud_assets.generator.events import Events
from fraud_assets.generator.hashing import hex_strings
from fraud_assets.generator.history import PriorHistory

DAY_S = 86_400
HOUR_S = 3_600
_KEY_SHIFT = np.int64(1) << np.int64(40)  # > any epoch second until year 36812
_NO_TIME = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Behaviour:
    """Behaviour columns for events sorted by (user, timestamp, transaction id)."""

    order: np.ndarray  # the sort applied to the input events
    cents: np.ndarray  # amounts with amount-spike incidents settled
    user_total_transactions: np.ndarray
    user_avg_amount: np.ndarray
    user_account_age_days: np.ndarray
    time_since_last_transaction: np.ndarray
    transactions_last_hour: np.ndarray
    transactions_last_24h: np.ndarray
    wallet_age_days: np.ndarray
    wallet_total_volume: np.ndarray
    hour_of_day: np.ndarray
    day_of_week: np.ndarray
    wallet_rank: np.ndarray  # index into wallet_addresses per row
    wallet_addresses: pl.Series  # one per distinct wallet


def sort_order(group: np.ndarray | None, ts: np.ndarray, txid: np.ndarray) -> np.ndarray:
    """Row order by (group, ts, transaction id), with two stable integer sorts.

    ``group`` (non-negative, < 2**23) may be None to order by time only. The
    id's second word only matters when the first words tie, which is fixed
    row by row (in practice it never happens).
    """
    if group is not None and len(group) and group.max() >= 1 << 23:
        raise ValueError("sort_order supports fewer than 2**23 groups")
    key = ts if group is None else group.astype(np.int64) * _KEY_SHIFT + ts
    by_id = np.argsort(txid[:, 0], kind="stable")
    order = by_id[np.argsort(key[by_id], kind="stable")]
    k, w = key[order], txid[order, 0]
    for i in np.flatnonzero((k[1:] == k[:-1]) & (w[1:] == w[:-1])):  # pragma: no cover
        j = i
        while j > 0 and k[j - 1] == k[i] and w[j - 1] == w[i]:
            j -= 1
        stop = i + 2
        run = order[j:stop]
        order[j:stop] = run[np.argsort(txid[run, 1], kind="stable")]
    return order


def dense_rank_rows(words: np.ndarray) -> np.ndarray:
    """Dense rank of each row of hash words (rows equal ⇔ same rank)."""
    n = len(words)
    order = np.argsort(words[:, 0], kind="stable")
    w = words[order]
    changed = np.ones(n, dtype=bool)
    changed[1:] = w[1:, 0] != w[:-1, 0]
    if n and (w[1:, 1:] != w[:-1, 1:]).any(axis=1)[~changed[1:]].any():  # pragma: no cover
        order = np.lexsort(tuple(words[:, i] for i in reversed(range(words.shape[1]))))
        w = words[order]
        changed[1:] = (w[1:] != w[:-1]).any(axis=1)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.cumsum(changed) - 1
    return rank


def _group_starts(changed: np.ndarray) -> np.ndarray:
    """Index of the first row of each row's group, for rows sorted by group."""
    starts = np.where(changed, np.arange(len(changed)), 0)
    return np.maximum.accumulate(starts) if len(starts) else starts


def _exclusive_running(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sum of the earlier rows of each row's group (integers: exact)."""
    running = np.cumsum(values) - values
    return running - running[starts]


def _joined(keys: pl.Series, table: pl.DataFrame, on: str, column: str, missing: int) -> np.ndarray:
    frame = pl.DataFrame({on: keys}).join(table, on=on, how="left", maintain_order="left")
    return frame[column].fill_null(missing).to_numpy()


def compute_behaviour(
    events: Events,
    signup_s: np.ndarray,
    typical_cents: np.ndarray,
    user_ids: pl.Series,
    prior: PriorHistory,
) -> Behaviour:
    """Behaviour columns of ``events`` (with per-row account opening and typical amount).

    ``user_ids`` maps user index → user_id string for every index in the events.
    """
    order = sort_order(events.user, events.ts, events.txid)
    user, ts = events.user[order], events.ts[order]
    signup, typical = signup_s[order], typical_cents[order]
    n = len(ts)
    starts = _group_starts(np.r_[True, user[1:] != user[:-1]] if n else np.zeros(0, bool))
    first = np.arange(n) == starts

    distinct_users, user_rank = np.unique(user, return_inverse=True)
    ids = user_ids.gather(distinct_users)
    prior_count = _joined(ids, prior.users, "user_id", "prior_count", 0)[user_rank]
    prior_cents = _joined(ids, prior.users, "user_id", "prior_cents", 0)[user_rank]
    prior_last = _joined(ids, prior.users, "user_id", "prior_last_s", -1)[user_rank]

    count = prior_count + (np.arange(n) - starts)
    cents = events.cents[order].copy()
    spike = events.spike[order]
    spiking = np.flatnonzero(spike > 0)
    for _ in range(100):
        before = prior_cents + _exclusive_running(cents, starts)
        reference = np.where(count > 0, before / np.maximum(count, 1), typical)
        settled = np.maximum(np.rint(spike[spiking] * reference[spiking]), 100).astype(np.int64)
        if np.array_equal(settled, cents[spiking]):
            break
        cents[spiking] = settled
    else:  # pragma: no cover - would need a chain of 100 spikes of one user
        raise RuntimeError("amount-spike amounts did not settle")

    previous = np.where(first, np.where(prior_last >= 0, prior_last, signup), np.roll(ts, 1))
    last_hour, last_day = _window_counts(user_rank, ts, ids, prior)
    wallet_rank, addresses, wallet_age, wallet_volume = _wallet_columns(
        events.wallet[order], ts, events.txid[order], cents, prior
    )
    return Behaviour(
        order=order,
        cents=cents,
        user_total_transactions=count.astype(np.int32),
        user_avg_amount=np.where(count > 0, np.rint(before / np.maximum(count, 1)) / 100, 0.0),
        user_account_age_days=((ts - signup) // DAY_S).astype(np.int32),
        time_since_last_transaction=(ts - previous) / 60.0,
        transactions_last_hour=last_hour.astype(np.int32),
        transactions_last_24h=last_day.astype(np.int32),
        wallet_age_days=wallet_age.astype(np.int32),
        wallet_total_volume=wallet_volume / 100,
        hour_of_day=((ts % DAY_S) // HOUR_S).astype(np.int8),
        day_of_week=(((ts // DAY_S) + 3) % 7 + 1).astype(np.int8),
        wallet_rank=wallet_rank,
        wallet_addresses=addresses,
    )


def _window_counts(user_rank, ts, ids: pl.Series, prior: PriorHistory):
    """Previous transactions within the hour / day: generated rows plus recorded ones."""
    key = user_rank.astype(np.int64) * _KEY_SHIFT + ts
    position = np.arange(len(key))
    last_hour = position - np.searchsorted(key, key - HOUR_S, side="right")
    last_day = position - np.searchsorted(key, key - DAY_S, side="right")
    ranks = pl.DataFrame({"user_id": ids, "rank": np.arange(len(ids), dtype=np.int64)})
    recorded = prior.recent.join(ranks, on="user_id", how="inner")
    if recorded.height:
        # Recorded rows all precede the range, so only their count in the window matters.
        recorded_key = np.sort(recorded["rank"].to_numpy() * _KEY_SHIFT + recorded["ts"].to_numpy())
        upto = np.searchsorted(recorded_key, key, side="right")
        last_hour += upto - np.searchsorted(recorded_key, key - HOUR_S, side="right")
        last_day += upto - np.searchsorted(recorded_key, key - DAY_S, side="right")
    return last_hour, last_day


def _wallet_columns(wallet, ts, txid, cents, prior: PriorHistory):
    """Wallet age and earlier volume per row (rows in user order; computed in wallet order)."""
    n = len(ts)
    rank = dense_rank_rows(wallet)
    order = sort_order(rank, ts, txid)
    w = wallet[order]
    rank_sorted = rank[order]
    changed = np.r_[True, rank_sorted[1:] != rank_sorted[:-1]] if n else np.zeros(0, bool)
    starts = _group_starts(changed)
    addresses = pl.from_arrow(hex_strings(w[changed], 40, prefix=b"0x"))
    assert isinstance(addresses, pl.Series)
    prior_first = _joined(addresses, prior.wallets, "wallet_address", "prior_first_s", _NO_TIME)
    prior_cents = _joined(addresses, prior.wallets, "wallet_address", "prior_cents", 0)
    ts_sorted = ts[order]
    first_seen = np.minimum(prior_first[rank_sorted], ts_sorted[starts])
    volume = prior_cents[rank_sorted] + _exclusive_running(cents[order], starts)

    wallet_rank = np.empty(n, dtype=np.int64)
    age = np.empty(n, dtype=np.int64)
    total = np.empty(n, dtype=np.int64)
    wallet_rank[order] = rank_sorted
    age[order] = (ts_sorted - first_seen) // DAY_S
    total[order] = volume
    return wallet_rank, addresses.rename("wallet_address"), age, total
