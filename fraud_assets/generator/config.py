"""What a generator run is asked to produce, validated once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from fraud_assets.reference import FRAUD_SCENARIOS

DEFAULT_FRAUD_RATE = 0.0075

# Share of fraudulent *transactions* per scenario (not of incidents: a takeover
# is several transactions, an amount spike one).
DEFAULT_FRAUD_MIX: dict[str, float] = {
    "account_takeover": 0.20,
    "velocity_burst": 0.18,
    "amount_spike": 0.10,
    "impossible_travel": 0.10,
    "structuring": 0.16,
    "dormant_reactivation": 0.10,
    "wallet_draining": 0.16,
}

# Withdrawals at or above this USD value are reported (the exchange's
# travel-rule / enhanced-due-diligence threshold); structuring stays just below.
REPORTING_LIMIT_USD = 10_000.0

# An account with no transaction for this long is dormant.
DORMANT_AFTER_DAYS = 90


def _utc(value: dt.datetime | dt.date | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def parse_mix(text: str) -> dict[str, float]:
    """``"account_takeover=2,structuring=1"`` → weights (unnamed scenarios get 0)."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        mix[name.strip()] = float(weight)
    return mix


@dataclass(frozen=True)
class GeneratorConfig:
    """One simulated range: ``[start, end)`` in UTC for ``users`` accounts, from ``seed``.

    ``fraud_rate`` is the expected share of fraudulent transactions and
    ``fraud_mix`` how they split between scenarios (weights, normalised).
    ``review_rate`` is the share of unusual-looking legitimate transactions
    that an analyst reviewed and confirmed legitimate (``is_fraud = 0`` labels).
    """

    start: dt.datetime
    end: dt.datetime
    users: int = 2_000
    seed: int = 7
    fraud_rate: float = DEFAULT_FRAUD_RATE
    fraud_mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_FRAUD_MIX))
    review_rate: float = 0.05

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _utc(self.start))
        object.__setattr__(self, "end", _utc(self.end))
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        if self.users < 1:
            raise ValueError("users must be at least 1")
        if not 0 <= self.seed < 2**63:
            raise ValueError("seed must be a non-negative 63-bit integer")
        if not 0 <= self.fraud_rate < 0.5:
            raise ValueError("fraud_rate must be in [0, 0.5)")
        if not 0 <= self.review_rate <= 1:
            raise ValueError("review_rate must be in [0, 1]")
        unknown = set(self.fraud_mix) - set(FRAUD_SCENARIOS)
        if unknown:
            raise ValueError(
                f"unknown fraud scenarios {sorted(unknown)}; known: {', '.join(FRAUD_SCENARIOS)}"
            )
        if any(w < 0 for w in self.fraud_mix.values()):
            raise ValueError("fraud_mix weights must be non-negative")
        total = sum(self.fraud_mix.values())
        if self.fraud_rate > 0 and total <= 0:
            raise ValueError("fraud_mix needs at least one positive weight")
        normalised = {
            s: self.fraud_mix.get(s, 0.0) / total if total else 0.0 for s in FRAUD_SCENARIOS
        }
        object.__setattr__(self, "fraud_mix", normalised)

    @property
    def start_s(self) -> int:
        return int(self.start.timestamp())

    @property
    def end_s(self) -> int:
        return int(self.end.timestamp())
