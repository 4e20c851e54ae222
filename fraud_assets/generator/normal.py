"""Legitimate activity: one UTC day at a time, every user at once.

A day's events depend only on (seed, day, users), never on the range asked
for, so generating a month in one go or day by day gives the same events.
Customers transact in sessions (a deposit then a buy, a bot's batch of
orders) around their own peak hours, mostly from home, from their one or two
devices, moving funds between a few wallets of their own. Realistic noise
keeps the legitimate population from looking perfectly regular: trips to a
neighbouring country, VPN sessions that appear in another country, the odd new
device, one-off withdrawal addresses, bots that legitimately place many
orders within minutes, and log-normal amounts with heavy tails.
"""

from __future__ import annotations

import numpy as np

from fraud_assets.generator import geography
from fraud_assets.generator.events import Events
from fraud_assets.generator.hashing import day_rng, hash64, uniform
from fraud_assets.generator.profiles import DAY_S, Profiles

NORMAL_STREAM = 1
TXID_NORMAL = 11
WALLET_OWN = 21
WALLET_ONE_OFF = 22
_TRIP, _TRIP_START, _TRIP_LENGTH = 31, 32, 33

HOME, ABROAD, IN_TRANSIT = 0, 1, 2
NEW_DEVICE_PROBABILITY = 0.003
OFF_PEAK_SHARE = 0.10
# Log-scale shift of amounts by transaction type (buy, sell, withdraw, deposit):
# customers move money in and out in larger chunks than they trade.
TYPE_AMOUNT_SHIFT = np.array([0.0, 0.0, 0.25, 0.35])
BUY, SELL, WITHDRAW, DEPOSIT = range(4)


def own_wallet_words(seed: int, users: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Address words of a user's own wallet: 0 is the custody wallet, 1.. external ones."""
    return np.stack([hash64(seed, WALLET_OWN, users, index, j) for j in range(3)], axis=1)


def trip_status(profiles: Profiles, users: np.ndarray, day: int) -> np.ndarray:
    """HOME, ABROAD or IN_TRANSIT for each user on a day.

    A trip starts in a week with the user's trip probability: one travel day
    out, 1–6 days abroad, one travel day back. Nobody transacts on a travel
    day, so moving between countries never looks faster than a flight.
    """
    status = np.full(len(users), HOME, dtype=np.int64)
    week = (day + 3) // 7  # weeks start on Monday (day 0 was a Thursday)
    for w in (week - 1, week):
        takes_trip = uniform(profiles.seed, _TRIP, users, w) < profiles.trip_probability[users]
        leave = w * 7 - 3 + (uniform(profiles.seed, _TRIP_START, users, w) * 7).astype(np.int64)
        nights = 1 + (uniform(profiles.seed, _TRIP_LENGTH, users, w) * 6).astype(np.int64)
        back = leave + nights + 1
        abroad = takes_trip & (day > leave) & (day < back)
        transit = takes_trip & ((day == leave) | (day == back))
        status = np.where(abroad & (status == HOME), ABROAD, status)
        status = np.where(transit, IN_TRANSIT, status)
    return status


def _pick(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise inverse CDF: the category of each uniform under its row's CDF."""
    return np.minimum((u[:, None] > cdf).sum(axis=1), cdf.shape[1] - 1)


def expected_per_day(profiles: Profiles, users: np.ndarray, day: int) -> np.ndarray:
    weekend = ((day + 3) % 7) >= 5
    return profiles.rate[users] * (profiles.weekend_factor[users] if weekend else 1.0)


def normal_day(profiles: Profiles, day: int) -> Events:
    """Every legitimate transaction of sessions starting on ``day``."""
    p, seed = profiles, profiles.seed
    day_start = day * DAY_S
    rng = day_rng(seed, NORMAL_STREAM, day)
    users = np.flatnonzero(p.active_mask(day_start))
    status = trip_status(p, users, day)
    expected = np.where(status == IN_TRANSIT, 0.0, expected_per_day(p, users, day))
    sessions = rng.poisson(expected / p.session_mean[users])

    s_user = np.repeat(users, sessions)
    s_status = np.repeat(status, sessions)
    n_s = len(s_user)
    hour = np.where(
        rng.random(n_s) < OFF_PEAK_SHARE,
        rng.random(n_s) * 24,
        (p.peak_hour[s_user] + p.hour_spread[s_user] * rng.standard_normal(n_s)) % 24,
    )
    s_start = day_start + (hour * 3600).astype(np.int64)
    s_size = 1 + rng.poisson(p.session_mean[s_user] - 1)

    country = np.where(s_status == ABROAD, p.travel[s_user], p.home[s_user])
    vpn = rng.random(n_s) < p.vpn_probability[s_user]
    vpn_country = geography.VPN_INDEX[rng.integers(0, len(geography.VPN_INDEX), n_s)]
    country = np.where(vpn, vpn_country, country)
    device = np.where(
        (p.second_device[s_user] >= 0) & (rng.random(n_s) < p.second_share[s_user]),
        p.second_device[s_user],
        p.device[s_user],
    )
    new_device = rng.random(n_s) < NEW_DEVICE_PROBABILITY
    device = np.where(new_device, (device + rng.integers(1, 4, n_s)) % 4, device)

    # Events: session attributes repeated, times spread by exponential gaps.
    user = np.repeat(s_user, s_size)
    n = len(user)
    first = np.repeat(np.cumsum(s_size) - s_size, s_size)
    gaps = rng.exponential(1.0, n) * p.gap_s[user]
    gaps[first] = 0.0
    elapsed = np.cumsum(gaps)
    ts = np.repeat(s_start, s_size) + (elapsed - elapsed[first]).astype(np.int64)

    kind = _pick(p.type_cdf[user], rng.random(n))
    currency = _pick(p.currency_cdf[user], rng.random(n))
    log_amount = (
        p.amount_mu[user] + TYPE_AMOUNT_SHIFT[kind] + p.amount_sigma[user] * rng.standard_normal(n)
    )
    cents = np.maximum(np.rint(np.exp(log_amount) * 100), 100).astype(np.int64)
    large = cents > 800 * p.typical_amount[user]

    external = 1 + (rng.random(n) ** 2 * p.own_wallets[user]).astype(np.int64)
    wallet_index = np.where((kind == BUY) | (kind == SELL), 0, external)
    one_off = (kind == WITHDRAW) & (rng.random(n) < p.new_wallet_probability[user])
    position = np.arange(n, dtype=np.int64)
    wallet = own_wallet_words(seed, user, wallet_index)
    if one_off.any():
        where = np.flatnonzero(one_off)
        wallet[where] = np.stack(
            [hash64(seed, WALLET_ONE_OFF, day, where, j) for j in range(3)], axis=1
        )
    txid = np.stack([hash64(seed, TXID_NORMAL, day, position, j) for j in range(2)], axis=1)

    events = Events(
        user=user,
        ts=ts,
        cents=cents,
        currency=currency.astype(np.int64),
        kind=kind.astype(np.int64),
        country=np.repeat(country, s_size),
        device=np.repeat(device, s_size),
        wallet=wallet,
        txid=txid,
        scenario=np.full(n, -1, dtype=np.int64),
        incident=np.full(n, -1, dtype=np.int64),
        unusual=np.repeat(vpn | new_device, s_size) | one_off | large,
        spike=np.zeros(n, dtype=np.float64),
    )
    open_account = (ts >= p.signup_s[user]) & (ts < p.churn_s[user])
    return events.take(np.flatnonzero(open_account))
