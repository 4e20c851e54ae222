"""Customers and how each of them behaves.

A profile is a pure function of (seed, user index): every attribute is drawn
from its own counter-based stream, so user 17 is the same customer whatever
the range or the number of users generated. Profiles are stored in arrays, one
entry per user, so the event generator stays vectorised.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from fraud_assets.generator import geography
from fraud_assets.generator.hashing import uniform
from fraud_assets.reference import CURRENCIES, DEVICE_TYPES, TRANSACTION_TYPES

DAY_S = 86_400

# Accounts open between these dates (a growing customer base); a range before
# an account's opening has no activity for it.
FIRST_SIGNUP = int(dt.datetime(2020, 1, 1, tzinfo=dt.UTC).timestamp())
LAST_SIGNUP = int(dt.datetime(2028, 1, 1, tzinfo=dt.UTC).timestamp())
CHURNING_SHARE = 0.30

CURRENCY_POPULARITY = np.array([0.30, 0.22, 0.18, 0.08, 0.08, 0.06, 0.05, 0.03])
TYPE_BASE = np.array([0.38, 0.27, 0.15, 0.20])  # order of TRANSACTION_TYPES
PRIMARY_DEVICE_P = np.array([0.30, 0.35, 0.30, 0.05])  # order of DEVICE_TYPES
API = DEVICE_TYPES.index("api")
assert TRANSACTION_TYPES == ("buy", "sell", "withdraw", "deposit")
assert len(CURRENCY_POPULARITY) == len(CURRENCIES)

# One stream id per attribute keeps attributes independent of each other.
(
    _SIGNUP,
    _CHURNS,
    _LIFETIME,
    _HOME,
    _TRAVEL,
    _TRIPPER,
    _TRIP_P,
    _VPN,
    _VPN_P,
    _DEVICE,
    _SECOND,
    _SECOND_DEVICE,
    _SECOND_SHARE,
    _RATE,
    _SESSION,
    _GAP,
    _PEAK,
    _SPREAD,
    _WEEKEND,
    _AMOUNT,
    _AMOUNT_SIGMA,
    _TYPES,
    _CURRENCY,
    _WALLETS,
    _NEW_WALLET,
) = range(100, 125)


def _u(seed: int, stream: int, users: np.ndarray, k: int = 0) -> np.ndarray:
    return uniform(seed, stream, users, k)


def _normal(seed: int, stream: int, users: np.ndarray, k: int = 0) -> np.ndarray:
    # Imported here: scipy.special costs ~0.25 s, and every process that loads the
    # code location imports this module (the demo-data asset), most never generating.
    from scipy.special import ndtri

    return ndtri(np.clip(_u(seed, stream, users, k), 1e-12, 1 - 1e-12))


def _gamma_weights(seed: int, stream: int, users: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Per-user Dirichlet(alpha) weights from counter-based gamma draws (Wilson–Hilferty)."""
    columns = []
    for k, a in enumerate(alpha):
        z = _normal(seed, stream, users, k)
        g = a * np.maximum(1 - 1 / (9 * a) + z * np.sqrt(1 / (9 * a)), 0.02) ** 3
        columns.append(g)
    weights = np.stack(columns, axis=1)
    return weights / weights.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Profiles:
    """Per-user behaviour, one array entry per user index."""

    seed: int
    signup_s: np.ndarray  # account opening, epoch seconds
    churn_s: np.ndarray  # last day of normal activity (int64 max: never churns)
    home: np.ndarray  # country index
    travel: np.ndarray  # country index of the usual trip destination
    trip_probability: np.ndarray  # chance of a trip starting in a given week
    vpn_probability: np.ndarray  # share of sessions through a VPN
    device: np.ndarray  # primary device index
    second_device: np.ndarray  # -1 when the user has one device
    second_share: np.ndarray
    rate: np.ndarray  # expected transactions per active day
    session_mean: np.ndarray  # transactions per session
    gap_s: np.ndarray  # mean seconds between transactions in a session
    peak_hour: np.ndarray  # UTC hour of peak activity
    hour_spread: np.ndarray
    weekend_factor: np.ndarray
    amount_mu: np.ndarray  # log of the median USD amount
    amount_sigma: np.ndarray
    type_cdf: np.ndarray  # (users, 4) cumulative mix over TRANSACTION_TYPES
    currency_cdf: np.ndarray  # (users, 8) cumulative mix over CURRENCIES
    own_wallets: np.ndarray  # external wallets the user withdraws to / deposits from
    new_wallet_probability: np.ndarray  # chance a withdrawal goes to a one-off address

    @property
    def n(self) -> int:
        return len(self.signup_s)

    @cached_property
    def typical_amount(self) -> np.ndarray:
        """Mean USD amount of the user's transactions (log-normal mean)."""
        return np.exp(self.amount_mu + self.amount_sigma**2 / 2)

    def active_mask(self, day_start_s: int) -> np.ndarray:
        """Users whose account is open and not churned at some point of the day."""
        return (self.signup_s < day_start_s + DAY_S) & (self.churn_s > day_start_s)


def user_id(index: int) -> str:
    return f"user_{index:07d}"


def build_profiles(seed: int, users: int) -> Profiles:
    u = np.arange(users, dtype=np.int64)

    signup = FIRST_SIGNUP + (_u(seed, _SIGNUP, u) * (LAST_SIGNUP - FIRST_SIGNUP)).astype(np.int64)
    churns = _u(seed, _CHURNS, u) < CHURNING_SHARE
    lifetime_days = 30 + -np.log1p(-_u(seed, _LIFETIME, u)) * 400
    churn = np.where(
        churns, signup + (lifetime_days * DAY_S).astype(np.int64), np.iinfo(np.int64).max
    )

    home_cdf = np.cumsum(geography.HOME_PROBABILITIES)
    home = np.minimum(
        np.searchsorted(home_cdf, _u(seed, _HOME, u), side="right"), len(home_cdf) - 1
    )
    travel = geography.NEIGHBOURS[home, (_u(seed, _TRAVEL, u) * 3).astype(int)]
    trip_p = np.where(_u(seed, _TRIPPER, u) < 0.5, 0.02 + 0.2 * _u(seed, _TRIP_P, u), 0.0)
    vpn_p = np.where(_u(seed, _VPN, u) < 0.10, 0.01 + 0.07 * _u(seed, _VPN_P, u), 0.0)

    device_cdf = np.cumsum(PRIMARY_DEVICE_P)
    device = np.minimum(np.searchsorted(device_cdf, _u(seed, _DEVICE, u), side="right"), 3)
    offset = 1 + (_u(seed, _SECOND_DEVICE, u) * 3).astype(int)
    second = np.where(_u(seed, _SECOND, u) < 0.4, (device + offset) % 4, -1)
    second_share = 0.1 + 0.3 * _u(seed, _SECOND_SHARE, u)

    is_api = device == API
    rate = np.exp(np.log(0.8) + 1.1 * _normal(seed, _RATE, u))
    rate = np.minimum(np.where(is_api, rate * 8, rate), 150.0)
    session_mean = np.where(
        is_api, 5 + 12 * _u(seed, _SESSION, u), 1 + 1.5 * _u(seed, _SESSION, u) ** 2
    )
    gap = np.where(
        is_api, 8 + 25 * _u(seed, _GAP, u), np.exp(np.log(90) + 0.6 * _normal(seed, _GAP, u))
    )

    # Afternoon/evening local time, shifted to UTC by the home longitude.
    local_peak = 12 + 10 * _u(seed, _PEAK, u)
    peak = (local_peak - geography.LONGITUDES[home] / 15.0) % 24
    spread = 1.5 + 3.5 * _u(seed, _SPREAD, u)
    weekend = 0.5 + _u(seed, _WEEKEND, u)

    amount_mu = np.log(150.0) + 1.1 * _normal(seed, _AMOUNT, u)
    amount_sigma = 0.45 + 0.6 * _u(seed, _AMOUNT_SIGMA, u)

    type_w = _gamma_weights(seed, _TYPES, u, TYPE_BASE * 6)
    currency_w = _gamma_weights(seed, _CURRENCY, u, CURRENCY_POPULARITY * 2)
    wallets = 1 + np.minimum(-np.log1p(-_u(seed, _WALLETS, u)) * 0.9, 4).astype(np.int64)
    new_wallet_p = 0.01 + 0.06 * _u(seed, _NEW_WALLET, u) ** 2

    return Profiles(
        seed=seed,
        signup_s=signup,
        churn_s=churn,
        home=home.astype(np.int64),
        travel=travel.astype(np.int64),
        trip_probability=trip_p,
        vpn_probability=vpn_p,
        device=device.astype(np.int64),
        second_device=second.astype(np.int64),
        second_share=second_share,
        rate=rate,
        session_mean=session_mean,
        gap_s=gap,
        peak_hour=peak,
        hour_spread=spread,
        weekend_factor=weekend,
        amount_mu=amount_mu,
        amount_sigma=amount_sigma,
        type_cdf=np.cumsum(type_w, axis=1),
        currency_cdf=np.cumsum(currency_w, axis=1),
        own_wallets=wallets,
        new_wallet_probability=new_wallet_p,
    )
