"""Fraud incidents, injected into the legitimate activity of real customers.

Each scenario follows a pattern seen in practice rather than a cartoon of
one, so detectors have to combine signals:

* ``account_takeover``: stolen credentials used from a device type and a
  country the customer never uses; optionally the holdings are sold, then 2–5
  withdrawals to one attacker wallet within the hour. Amounts are a share of
  the customer's holdings, often not extreme.
* ``velocity_burst``: a leaked API key or script places 5–12 orders or small
  withdrawals within five minutes.
* ``amount_spike``: an authorised-push-payment scam; the customer, on their own
  device and in their own country, sends 12–40× their running average to a
  scammer's wallet.
* ``impossible_travel``: a hijacked session used from a country too far from
  the customer's previous transaction for the time elapsed (> 1,500 km/h).
* ``structuring``: the owner launders funds as 4–10 withdrawals just below the
  reporting limit within a day, to fresh wallets.
* ``dormant_reactivation``: credential stuffing on an account inactive for more
  than DORMANT_AFTER_DAYS days; the balance leaves for a fresh wallet.
* ``wallet_draining``: malware on the customer's own device drains the account
  in escalating withdrawals to 2–4 fresh wallets within three hours.

Attackers reuse some of their wallets across victims (a pool per seed), as
mule wallets are in practice. Incidents are generated per UTC day from the
day's own random streams, so they do not depend on the range asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from fraud_assets.generator import geography
from fraud_assets.generator.config import DORMANT_AFTER_DAYS, REPORTING_LIMIT_USD
from fraud_assets.generator.events import Events
from fraud_assets.generator.hashing import day_rng, hash64, uniform
from fraud_assets.generator.normal import (
    ABROAD,
    BUY,
    SELL,
    WITHDRAW,
    expected_per_day,
    own_wallet_words,
    trip_status,
)
from fraud_assets.generator.profiles import API, DAY_S, Profiles
from fraud_assets.reference import CURRENCIES, FRAUD_SCENARIOS

(
    TAKEOVER,
    BURST,
    SPIKE,
    TRAVEL,
    STRUCTURING,
    DORMANT,
    DRAINING,
) = (FRAUD_SCENARIOS.index(s) for s in FRAUD_SCENARIOS)
assert FRAUD_SCENARIOS[TRAVEL] == "impossible_travel"
assert FRAUD_SCENARIOS[DORMANT] == "dormant_reactivation"

# Expected transactions per incident, to turn a transaction share into incidents.
MEAN_SIZE = {
    TAKEOVER: 4.0,
    BURST: 8.5,
    SPIKE: 1.2,
    TRAVEL: 2.0,
    STRUCTURING: 7.0,
    DORMANT: 2.5,
    DRAINING: 7.0,
}
MIN_TRAVEL_SPEED_KMH = 1_500.0
DORMANT_SLOT_DAYS = DORMANT_AFTER_DAYS + 1
ATTACKER_POOL = 64
POOL_REUSE = 0.2

VICTIM_STREAM, TRAVEL_STREAM, DORMANT_STREAM, DETAIL_STREAM = 2, 3, 4, 5
TXID_FRAUD, WALLET_FRAUD, WALLET_POOL, INCIDENT, DORMANT_SLOT = 12, 23, 24, 41, 42
_OWN, _FRESH, _POOL = 0, 1, 2
CUSTODY = (_OWN, 0, 0)  # the customer's own exchange wallet, used by buys and sells
USDT = CURRENCIES.index("USDT")
BTC = CURRENCIES.index("BTC")


def incident_targets(
    profiles: Profiles, day: int, fraud_rate: float, mix: Mapping[str, float]
) -> np.ndarray:
    """Expected incidents per scenario on a day, from the expected legitimate volume."""
    users = np.flatnonzero(profiles.active_mask(day * DAY_S))
    legit = float(expected_per_day(profiles, users, day).sum())
    fraud_txns = fraud_rate / (1 - fraud_rate) * legit
    return np.array(
        [fraud_txns * mix.get(s, 0.0) / MEAN_SIZE[i] for i, s in enumerate(FRAUD_SCENARIOS)]
    )


@dataclass
class _Incident:
    """One fraud case being written: who, from where, and its transactions in order."""

    builder: _Builder
    scenario: int
    k: int  # the incident's number among the day's incidents of its scenario
    user: int
    country: int
    device: int
    count: int = 0

    def add(self, ts, cents, currency: int, kind: int, wallet: tuple[int, int, int], spike=0.0):
        row = {
            "scenario": self.scenario,
            "k": self.k,
            "j": self.count,
            "user": self.user,
            "ts": int(ts),
            "cents": int(cents),
            "currency": currency,
            "kind": kind,
            "country": self.country,
            "device": self.device,
            "w_kind": wallet[0],
            "w_a": wallet[1],
            "w_b": wallet[2],
            "spike": spike,
        }
        for name, value in row.items():
            self.builder.columns.setdefault(name, []).append(value)
        self.count += 1


@dataclass
class _Builder:
    """Collects one day's fraud transactions; hashes ids and wallets in one go at the end."""

    seed: int
    day: int
    columns: dict[str, list] = field(default_factory=dict)

    def incident(self, scenario: int, k: int, user: int, country: int, device: int) -> _Incident:
        return _Incident(self, scenario, k, user, int(country), int(device))

    def build(self) -> Events:
        if not self.columns:
            return Events.empty()
        c = {k: np.asarray(v) for k, v in self.columns.items()}
        n = len(c["ts"])
        s, k, j = c["scenario"], c["k"], c["j"]
        txid = np.stack([hash64(self.seed, TXID_FRAUD, self.day, s, k, j, w) for w in range(2)], 1)
        wallet = np.zeros((n, 3), dtype=np.uint64)
        own, fresh, pool = (c["w_kind"] == x for x in (_OWN, _FRESH, _POOL))
        wallet[own] = own_wallet_words(self.seed, c["user"][own], c["w_a"][own])
        wallet[fresh] = np.stack(
            [
                hash64(self.seed, WALLET_FRAUD, self.day, s[fresh], k[fresh], c["w_b"][fresh], w)
                for w in range(3)
            ],
            1,
        )
        wallet[pool] = np.stack(
            [hash64(self.seed, WALLET_POOL, c["w_a"][pool], w) for w in range(3)], 1
        )
        incident = (hash64(self.seed, INCIDENT, self.day, s, k) >> np.uint64(1)).astype(np.int64)
        return Events(
            user=c["user"].astype(np.int64),
            ts=c["ts"].astype(np.int64),
            cents=c["cents"].astype(np.int64),
            currency=c["currency"].astype(np.int64),
            kind=c["kind"].astype(np.int64),
            country=c["country"].astype(np.int64),
            device=c["device"].astype(np.int64),
            wallet=wallet,
            txid=txid,
            scenario=s.astype(np.int64),
            incident=incident,
            unusual=np.zeros(n, dtype=bool),
            spike=c["spike"].astype(np.float64),
        )


class ScenarioGenerator:
    """Fraud incidents for one configuration, day by day."""

    def __init__(
        self,
        profiles: Profiles,
        fraud_rate: float,
        mix: Mapping[str, float],
        normal: Events,
    ) -> None:
        self.p = profiles
        self.fraud_rate = fraud_rate
        self.mix = mix
        order = np.lexsort((normal.ts, normal.user))
        self.n_user = normal.user[order]
        self.n_ts = normal.ts[order]
        self.n_country = normal.country[order]
        self.dormant_slot = (
            uniform(profiles.seed, DORMANT_SLOT, np.arange(profiles.n)) * DORMANT_SLOT_DAYS
        ).astype(np.int64)
        self._victims: dict[int, dict[int, np.ndarray]] = {}
        self._status: dict[int, np.ndarray] = {}

    # -- who is hit ------------------------------------------------------------------------

    def victims(self, day: int) -> dict[int, np.ndarray]:
        """Victims of the scenarios that need no legitimate anchor, distinct within the day."""
        if day in self._victims:
            return self._victims[day]
        p, day_start = self.p, day * DAY_S
        rng = day_rng(p.seed, VICTIM_STREAM, day)
        targets = incident_targets(p, day, self.fraud_rate, self.mix)
        eligible = (p.signup_s <= day_start - 3 * DAY_S) & (p.churn_s > day_start + 2 * DAY_S)
        chosen: dict[int, np.ndarray] = {}
        for s in (TAKEOVER, BURST, SPIKE, STRUCTURING, DRAINING):
            wanted = rng.poisson(targets[s])
            pool = np.flatnonzero(eligible)
            count = min(wanted, len(pool))
            if count == 0:
                chosen[s] = np.zeros(0, dtype=np.int64)
                continue
            weights = p.typical_amount[pool] if s == STRUCTURING else np.ones(len(pool))
            picked = rng.choice(pool, size=count, replace=False, p=weights / weights.sum())
            chosen[s] = np.sort(picked)
            eligible[picked] = False
        # Dormant accounts: inactive for DORMANT_AFTER_DAYS, at most one incident per slot.
        dormant = np.flatnonzero(
            (p.churn_s <= day_start - DORMANT_SLOT_DAYS * DAY_S)
            & ((day + self.dormant_slot) % DORMANT_SLOT_DAYS == 0)
        )
        count = min(rng.poisson(targets[DORMANT]), len(dormant))
        chosen[DORMANT] = (
            np.sort(rng.choice(dormant, size=count, replace=False)) if count else dormant[:0]
        )
        self._victims[day] = chosen
        return chosen

    def travel_victims(self, day: int) -> tuple[np.random.Generator, np.ndarray]:
        day_start = day * DAY_S
        rng = day_rng(self.p.seed, TRAVEL_STREAM, day)
        wanted = rng.poisson(incident_targets(self.p, day, self.fraud_rate, self.mix)[TRAVEL])
        today = (self.n_ts >= day_start) & (self.n_ts < day_start + DAY_S)
        candidates = np.unique(self.n_user[today])
        busy = [v for d in (day - 1, day) for v in self.victims(d).values()]
        candidates = np.setdiff1d(candidates, np.concatenate(busy) if busy else [])
        count = min(wanted, len(candidates))
        victims = rng.choice(candidates, size=count, replace=False) if count else candidates[:0]
        return rng, np.sort(victims)

    # -- what happens -------------------------------------------------------------------------

    def day(self, day: int) -> Events:
        b = _Builder(self.p.seed, day)
        rng = day_rng(self.p.seed, DETAIL_STREAM, day)
        for s, victims in self.victims(day).items():
            make = {
                TAKEOVER: self._takeover,
                BURST: self._burst,
                SPIKE: self._spike,
                STRUCTURING: self._structuring,
                DORMANT: self._dormant,
                DRAINING: self._draining,
            }[s]
            for k, user in enumerate(victims):
                make(b, rng, day, k, int(user))
        travel_rng, victims = self.travel_victims(day)
        for k, user in enumerate(victims):
            self._impossible_travel(b, travel_rng, day, k, int(user))
        return b.build()

    def _attacker_wallet(self, rng: np.random.Generator, slot: int) -> tuple[int, int, int]:
        if rng.random() < POOL_REUSE:
            return (_POOL, int(rng.integers(ATTACKER_POOL)), 0)
        return (_FRESH, 0, slot)

    def _where(self, user: int, day: int) -> int:
        """The customer's own country that day (home, or the trip destination)."""
        if day not in self._status:
            self._status = {day: trip_status(self.p, np.arange(self.p.n), day)}
        abroad = self._status[day][user] == ABROAD
        return int(self.p.travel[user] if abroad else self.p.home[user])

    def _favourite_currency(self, user: int) -> int:
        return int(np.argmax(np.diff(self.p.currency_cdf[user], prepend=0.0)))

    def _typical_cents(self, user: int) -> float:
        return float(self.p.typical_amount[user] * 100)

    def _active_hour_ts(self, rng: np.random.Generator, user: int, day: int) -> int:
        hour = (self.p.peak_hour[user] + self.p.hour_spread[user] * rng.standard_normal()) % 24
        return day * DAY_S + int(hour * 3600)

    def _takeover(self, b: _Builder, rng, day: int, k: int, user: int) -> None:
        p = self.p
        own = {p.home[user], p.travel[user]}
        country = rng.choice([c for c in range(len(geography.COUNTRIES)) if c not in own])
        device = rng.choice(
            [d for d in range(4) if d not in (p.device[user], p.second_device[user])]
        )
        case = b.incident(TAKEOVER, k, user, country, device)
        ts = day * DAY_S + int(rng.integers(DAY_S))
        holdings = self._typical_cents(user) * rng.uniform(3, 15)
        currency = self._favourite_currency(user)
        if rng.random() < 0.5:  # sell the holdings first, withdraw stablecoins
            case.add(ts, holdings * rng.uniform(0.5, 1), currency, SELL, CUSTODY)
            currency, ts = USDT, ts + int(rng.integers(60, 600))
        wallet = self._attacker_wallet(rng, 0)
        n = int(rng.integers(2, 6))
        shares = rng.dirichlet(np.ones(n) * 2)
        offsets = np.sort(rng.integers(0, int(rng.integers(10 * 60, 55 * 60)), n))
        offsets[0] = 0
        for i in range(n):
            case.add(ts + offsets[i], max(holdings * shares[i], 1000), currency, WITHDRAW, wallet)

    def _burst(self, b: _Builder, rng, day: int, k: int, user: int) -> None:
        p = self.p
        device = API if rng.random() < 0.7 else p.device[user]
        home = rng.random() < 0.5
        country = self._where(user, day) if home else rng.integers(len(geography.COUNTRIES))
        case = b.incident(BURST, k, user, country, device)
        ts = day * DAY_S + int(rng.integers(DAY_S))
        n = int(rng.integers(5, 13))
        gaps = rng.uniform(3, 35, n - 1)
        gaps *= min(1.0, 270 / gaps.sum())  # the whole burst within five minutes
        offsets = np.concatenate([[0], np.cumsum(gaps)]).astype(np.int64)
        withdrawals = rng.random() < 0.6
        wallet = self._attacker_wallet(rng, 0)
        currency = self._favourite_currency(user)
        for i in range(n):
            cents = max(self._typical_cents(user) * rng.lognormal(-0.5, 0.6), 500)
            if withdrawals:
                case.add(ts + offsets[i], cents, currency, WITHDRAW, wallet)
            else:
                case.add(ts + offsets[i], cents, currency, BUY if i % 2 == 0 else SELL, CUSTODY)

    def _spike(self, b: _Builder, rng, day: int, k: int, user: int) -> None:
        case = b.incident(SPIKE, k, user, self._where(user, day), self.p.device[user])
        ts = self._active_hour_ts(rng, user, day)
        wallet = self._attacker_wallet(rng, 0)
        currency = self._favourite_currency(user)
        for i in range(2 if rng.random() < 0.2 else 1):
            factor = float(rng.uniform(12, 40))
            at = ts + i * int(rng.integers(300, 1800))
            cents = self._typical_cents(user) * factor  # settled against the running average
            case.add(at, cents, currency, WITHDRAW, wallet, spike=factor)

    def _structuring(self, b: _Builder, rng, day: int, k: int, user: int) -> None:
        case = b.incident(STRUCTURING, k, user, self._where(user, day), self.p.device[user])
        ts = self._active_hour_ts(rng, user, day)
        n = int(rng.integers(4, 11))
        offsets = np.sort(rng.integers(0, int(rng.integers(2 * 3600, 20 * 3600)), n))
        offsets -= offsets[0]
        wallets = [self._attacker_wallet(rng, slot) for slot in range(int(rng.integers(1, 4)))]
        currency = USDT if rng.random() < 0.6 else BTC
        for i in range(n):
            cents = REPORTING_LIMIT_USD * 100 * rng.uniform(0.86, 0.995)
            if rng.random() < 0.5:
                cents = np.floor(cents / 1000) * 1000  # whole tens of dollars
            wallet = wallets[int(rng.integers(len(wallets)))]
            case.add(ts + offsets[i], cents, currency, WITHDRAW, wallet)

    def _dormant(self, b: _Builder, rng, day: int, k: int, user: int) -> None:
        p = self.p
        device = p.device[user] if rng.random() < 0.4 else rng.integers(4)
        proxy = rng.random() < 0.6  # a residential proxy in the customer's country
        country = p.home[user] if proxy else rng.integers(len(geography.COUNTRIES))
        case = b.incident(DORMANT, k, user, country, device)
        ts = day * DAY_S + int(rng.integers(DAY_S))
        holdings = self._typical_cents(user) * rng.uniform(2, 12)
        currency = self._favourite_currency(user)
        if rng.random() < 0.5:
            case.add(ts, holdings * rng.uniform(0.6, 1), currency, SELL, CUSTODY)
            currency, ts = USDT, ts + int(rng.integers(120, 1200))
        wallet = self._attacker_wallet(rng, 0)
        n = int(rng.integers(1, 4))
        shares = rng.dirichlet(np.ones(n) * 2)
        offsets = np.sort(rng.integers(0, 2 * 3600, n))
        offsets -= offsets[0]
        for i in range(n):
            case.add(ts + offsets[i], max(holdings * shares[i], 1000), currency, WITHDRAW, wallet)

    def _draining(self, b: _Builder, rng, day: int, k: int, user: int) -> None:
        case = b.incident(DRAINING, k, user, self._where(user, day), self.p.device[user])
        ts = day * DAY_S + int(rng.integers(DAY_S))
        n = int(rng.integers(4, 11))
        offsets = np.sort(rng.integers(0, int(rng.integers(15 * 60, 3 * 3600)), n))
        offsets -= offsets[0]
        n_wallets = int(rng.integers(2, 5))
        slots = np.concatenate([np.arange(n_wallets), rng.integers(0, n_wallets, n)])[:n]
        rng.shuffle(slots)
        wallets = [self._attacker_wallet(rng, slot) for slot in range(n_wallets)]
        growth = rng.uniform(1.2, 1.6)
        base = self._typical_cents(user) * rng.uniform(0.3, 1.0)
        currency = self._favourite_currency(user)
        for i in range(n):
            cents = max(base * growth**i, 1000)
            case.add(ts + offsets[i], cents, currency, WITHDRAW, wallets[slots[i]])

    def _impossible_travel(self, b: _Builder, rng, day: int, k: int, user: int) -> None:
        """Anchor on one of the customer's own transactions, then act from far away."""
        day_start = day * DAY_S
        lo, hi = np.searchsorted(self.n_user, [user, user + 1])
        ts = self.n_ts[lo:hi]
        today = np.flatnonzero((ts >= day_start) & (ts < day_start + DAY_S))
        anchor = int(today[rng.integers(len(today))])
        anchor_ts = int(ts[anchor])
        next_ts = int(ts[anchor + 1]) if anchor + 1 < len(ts) else anchor_ts + 10 * 3600
        # Act before the customer's next own transaction, so the anchor stays the previous one.
        delay = min(int(rng.integers(5 * 60, 60 * 60)), int(0.8 * (next_ts - anchor_ts)))
        if delay < 120:
            return
        origin = int(self.n_country[lo + anchor])
        far = np.flatnonzero(geography.DISTANCE_KM[origin] >= MIN_TRAVEL_SPEED_KMH * delay / 3600)
        if len(far) == 0:
            return
        case = b.incident(TRAVEL, k, user, rng.choice(far), self.p.device[user])
        wallet = self._attacker_wallet(rng, 0)
        t = anchor_ts + delay
        for _ in range(int(rng.integers(1, 4))):
            cents = self._typical_cents(user) * rng.lognormal(0.5, 0.5)
            kind = WITHDRAW if rng.random() < 0.7 else int(rng.choice([BUY, SELL]))
            target = wallet if kind == WITHDRAW else CUSTODY
            case.add(t, cents, self._favourite_currency(user), kind, target)
            t += int(rng.integers(60, 300))
