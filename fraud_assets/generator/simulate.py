"""One generator run: events for the range, behaviour columns, labels.

Days are simulated whole. Legitimate activity is generated from two days
before the range to one day after it, and fraud incidents from the day
before, so that every incident touching the range is complete (and its
impossible-travel anchors are known) whatever the range boundaries. Rows
outside ``[start, end)`` are then dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from fraud_assets.generator import geography
from fraud_assets.generator.behaviour import Behaviour, compute_behaviour, sort_order
from fraud_assets.generator.config import GeneratorConfig
from fraud_assets.generator.events import Events
from fraud_assets.generator.hashing import hex_strings
from fraud_assets.generator.history import PriorHistory
from fraud_assets.generator.labels import build_labels
from fraud_assets.generator.normal import normal_day
from fraud_assets.generator.profiles import DAY_S, Profiles, build_profiles, user_id
from fraud_assets.generator.scenarios import ScenarioGenerator
from fraud_assets.reference import CURRENCIES, DEVICE_TYPES, FRAUD_SCENARIOS, TRANSACTION_TYPES

TRANSACTION_COLUMNS = (
    "transaction_id",
    "timestamp",
    "user_id",
    "amount",
    "currency",
    "transaction_type",
    "user_avg_amount",
    "user_total_transactions",
    "user_account_age_days",
    "wallet_address",
    "wallet_age_days",
    "wallet_total_volume",
    "hour_of_day",
    "day_of_week",
    "ip_country",
    "device_type",
    "time_since_last_transaction",
    "transactions_last_hour",
    "transactions_last_24h",
)


@dataclass(frozen=True)
class GeneratedData:
    """A generated range: table rows plus the ground truth behind them."""

    transactions: pl.DataFrame  # crypto_transactions columns, sorted by timestamp
    labels: pl.DataFrame  # transaction_labels columns
    # Every fraud row's case: transaction_id, fraud_type, incident, and incident_rows, the
    # size of the whole incident (larger than its rows here when the range cuts it).
    incidents: pl.DataFrame

    def fraud_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(FRAUD_SCENARIOS, 0)
        for fraud_type, n in self.incidents.group_by("fraud_type").len().iter_rows():
            counts[fraud_type] = n
        return counts

    def incident_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(FRAUD_SCENARIOS, 0)
        per = self.incidents.group_by("fraud_type").agg(pl.col("incident").n_unique())
        for fraud_type, n in per.iter_rows():
            counts[fraud_type] = n
        return counts


def _names(values: tuple[str, ...], index: np.ndarray) -> pl.Series:
    return pl.Series(values, dtype=pl.String).gather(index)


def simulate_events(config: GeneratorConfig, profiles: Profiles) -> Events:
    """Every event of the days around the range, legitimate and fraudulent."""
    first_day = config.start_s // DAY_S
    last_day = (config.end_s - 1) // DAY_S
    normal = Events.concat([normal_day(profiles, d) for d in range(first_day - 2, last_day + 2)])
    scenarios = ScenarioGenerator(profiles, config.fraud_rate, config.fraud_mix, normal)
    fraud = Events.concat([scenarios.day(d) for d in range(first_day - 1, last_day + 1)])
    return Events.concat([normal, fraud])


def _frame(events: Events, b: Behaviour, user_ids: pl.Series) -> pl.DataFrame:
    """Table rows for events already sorted as ``b.order``, then ordered by time."""
    frame = pl.DataFrame(
        {
            "transaction_id": pl.from_arrow(hex_strings(events.txid, 32)),
            "ts": events.ts,
            "user_id": user_ids.gather(events.user),
            "amount": b.cents / 100,
            "currency": _names(CURRENCIES, events.currency),
            "transaction_type": _names(TRANSACTION_TYPES, events.kind),
            "user_avg_amount": b.user_avg_amount,
            "user_total_transactions": b.user_total_transactions,
            "user_account_age_days": b.user_account_age_days,
            "wallet_address": b.wallet_addresses.gather(b.wallet_rank),
            "wallet_age_days": b.wallet_age_days,
            "wallet_total_volume": b.wallet_total_volume,
            "hour_of_day": b.hour_of_day,
            "day_of_week": b.day_of_week,
            "ip_country": _names(geography.COUNTRIES, events.country),
            "device_type": _names(DEVICE_TYPES, events.device),
            "time_since_last_transaction": b.time_since_last_transaction,
            "transactions_last_hour": b.transactions_last_hour,
            "transactions_last_24h": b.transactions_last_24h,
            "fraud_type": _names(("", *FRAUD_SCENARIOS), events.scenario + 1),
            "incident": events.incident,
            "unusual": events.unusual,
            "txid0": events.txid[:, 0],
        }
    )
    by_time = sort_order(None, events.ts, events.txid)
    return frame[by_time].with_columns(
        timestamp=pl.from_epoch("ts", time_unit="s")
        .dt.cast_time_unit("us")
        .dt.replace_time_zone("UTC")
    )


def generate(config: GeneratorConfig, prior: PriorHistory | None = None) -> GeneratedData:
    """Generate ``config``'s range; ``prior`` is the recorded history before it (none: empty)."""
    profiles = build_profiles(config.seed, config.users)
    events = simulate_events(config, profiles)
    is_fraud = events.scenario >= 0
    incident_end = (
        pl.DataFrame({"incident": events.incident[is_fraud], "ts": events.ts[is_fraud]})
        .group_by("incident")
        .agg(incident_end_s=pl.col("ts").max(), incident_rows=pl.len().cast(pl.Int64))
    )
    events = events.take(np.flatnonzero((events.ts >= config.start_s) & (events.ts < config.end_s)))
    user_ids = pl.Series("user_id", [user_id(i) for i in range(profiles.n)], dtype=pl.String)
    behaviour = compute_behaviour(
        events,
        profiles.signup_s[events.user],
        profiles.typical_amount[events.user] * 100,
        user_ids,
        prior or PriorHistory.empty(),
    )
    frame = _frame(events.take(behaviour.order), behaviour, user_ids)
    labels = build_labels(config.seed, frame, incident_end, config.review_rate)
    return GeneratedData(
        transactions=frame.select(TRANSACTION_COLUMNS),
        labels=labels,
        incidents=frame.filter(pl.col("fraud_type") != "")
        .select("transaction_id", "fraud_type", "incident")
        .join(
            incident_end.select("incident", "incident_rows"),
            on="incident",
            how="left",
            maintain_order="left",
        ),
    )
