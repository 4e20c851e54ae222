"""Reason codes in an analyst's words: the one table that maps features and rules to reasons.

Every model input feature (``FEATURE_COLUMNS``) and every statistical rule
belongs to exactly one reason code; evidence from any layer about a feature
or a rule counts for its code (``fraud_assets.detectors.reasons`` ranks them).
Each code has two phrasings:

* ``phrase(row)`` — with the row's own numbers ("amount 14× user's 30-day
  average"), used for the rows that are explained in full (not approved, or
  among the hour's riskiest);
* ``static`` — without numbers, used for the rule hits of the other rows,
  which are built once per combination of fired rules (cheap at 1M rows).

``row[name]`` is the row's raw (unscaled) feature value. Change the wording
here; tests check that every feature and rule has a code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fraud_assets.detectors import rules as r
from fraud_assets.features.catalog import FEATURE_COLUMNS, GEO_VELOCITY_CAP_KMH, LOOKBACK_DAYS
from fraud_assets.reference import CURRENCIES, DEVICE_TYPES, TRANSACTION_TYPES

Row = Mapping[str, float]

DEVICE_NAMES = {
    "mobile_ios": "iOS app",
    "mobile_android": "Android app",
    "desktop_web": "web browser",
    "api": "API",
}


@dataclass(frozen=True)
class Reason:
    code: str
    features: tuple[str, ...]
    rules: tuple[str, ...]
    static: str
    phrase: Callable[[Row], str]


def _times(ratio: float) -> str:
    return f"{ratio:.1f}×" if ratio < 10 else f"{ratio:,.0f}×"


def _usd(amount: float) -> str:
    return f"{amount:,.0f} USD"


def _one_hot(row: Row, prefix: str, values: tuple[str, ...]) -> str:
    for value in values:
        if row[f"{prefix}_{value.lower()}"] > 0.5:
            return value
    return "unknown"


def _account_age_days(row: Row) -> float:
    return math.expm1(min(row["log_user_account_age_days"], 700.0))  # saturated, not overflowed


def _amount(row: Row) -> str:
    ratio, amount = row["amount_to_user_avg"], row["amount"]
    if row["user_tx_count_30d"] < 1:
        return f"amount {_usd(amount)} with no {LOOKBACK_DAYS}-day history"
    if ratio >= 1.5:
        return f"amount {_times(ratio)} user's {LOOKBACK_DAYS}-day average"
    return f"unusual amount {_usd(amount)} ({_times(ratio)} user's {LOOKBACK_DAYS}-day average)"


def _pace(row: Row) -> str:
    burst, hour, pace = row["tx_count_5m"], row["tx_count_1h"], row["velocity_1h_vs_30d"]
    if burst >= 3:
        text = f"{burst:.0f} transactions in 5 min"
    else:
        text = f"{hour:.0f} transactions in the last hour"
    if pace >= 2:
        text += f", {_times(pace)} user's usual pace"
    minutes = row["minutes_since_last_tx"]
    if burst < 3 and pace < 2 and minutes >= 24 * 60:
        return f"first transaction in {minutes / (24 * 60):.0f} days"
    return text


def _withdrawals(row: Row) -> str:
    return f"{row['withdraw_count_24h']:.0f} withdrawals in 24 h"


def _structuring(row: Row) -> str:
    count = row["near_limit_withdrawals_24h"]
    if count >= 2:
        return f"{count:.0f} withdrawals just below the 10,000 USD limit in 24 h"
    return f"amount {_usd(row['amount'])} just below the 10,000 USD reporting limit"


def _dormant(row: Row) -> str:
    if row["log_user_tx_count_before_24h"] == 0:
        return (
            f"dormant account ({_account_age_days(row):,.0f} days old) active again "
            f"after {LOOKBACK_DAYS}+ quiet days"
        )
    return "little activity before today"


def _device(row: Row) -> str:
    name = DEVICE_NAMES.get(_one_hot(row, "device", DEVICE_TYPES), "unknown device")
    if row["is_recent_device_for_user"] > 0.5:
        return f"new device ({name})"
    if row["device_changes_24h"] >= 2:
        return f"{row['device_changes_24h']:.0f} device changes in 24 h ({name})"
    return f"unusual device ({name})"


def _country(row: Row) -> str:
    unknown = " outside the reference list" if row["country_is_unknown"] > 0.5 else ""
    if row["is_recent_country_for_user"] > 0.5:
        return f"new country{unknown}"
    if row["country_changes_24h"] >= 2:
        return f"{row['country_changes_24h']:.0f} country changes in 24 h"
    return f"unusual country{unknown}"


def _device_country(row: Row) -> str:
    device = row["is_recent_device_for_user"] > 0.5
    country = row["is_recent_country_for_user"] > 0.5
    if device and country:
        return "new device + new country"
    return f"{_device(row)} + {_country(row)}"


def _travel(row: Row) -> str:
    distance, speed = row["geo_distance_km"], row["geo_velocity_kmh"]
    pace = f"{speed:,.0f} km/h" if speed < GEO_VELOCITY_CAP_KMH else "faster than any flight"
    if speed > 900:
        return f"impossible travel: {distance:,.0f} km from the previous transaction, {pace}"
    return f"{distance:,.0f} km from the previous transaction's country ({pace})"


def _new_wallet(row: Row) -> str:
    if row["type_withdraw"] > 0.5 and row["is_recent_wallet_for_user"] > 0.5:
        return "withdrawal to a wallet first used today"
    return "wallet new for this user"


def _wallet_age(row: Row) -> str:
    age, amount = row["wallet_age_days"], row["amount"]
    when = "created today" if age < 1 else f"{age:,.0f} days old"
    if amount >= 10_000:
        return f"wallet {when} receiving {_usd(amount)}"
    return f"wallet {when}"


def _shared_wallet(row: Row) -> str:
    others = row["wallet_other_users_tx_30d"]
    if others >= 1:
        return f"wallet used by other accounts ({others:,.0f} transactions in 30 days)"
    return f"busy wallet ({row['wallet_tx_count_24h']:,.0f} transactions in 24 h)"


def _frauds(count: float) -> str:
    return "1 confirmed fraud" if round(count) == 1 else f"{count:.0f} confirmed frauds"


def _wallet_fraud(row: Row) -> str:
    return f"wallet linked to {_frauds(row['wallet_fraud_labels_30d'])} in 30 days"


def _user_fraud(row: Row) -> str:
    return f"user has {_frauds(row['user_fraud_labels_30d'])} in 30 days"


def _time(row: Row) -> str:
    if row["user_hour_affinity_30d"] < 0 and row["user_tx_count_30d"] >= 1:
        return "unusual hour for this user"
    if row["is_night_utc"] > 0.5:
        return "night-time transaction (UTC)"
    return "unusual time of week"


def _tx_type(row: Row) -> str:
    kind = _one_hot(row, "type", TRANSACTION_TYPES)
    share = row["user_same_type_share_30d"]
    return f"unusual transaction type ({kind}: {share:.0%} of the user's {LOOKBACK_DAYS} days)"


def _currency(row: Row) -> str:
    return f"unusual currency ({_one_hot(row, 'currency', CURRENCIES)})"


def _account(row: Row) -> str:
    age = _account_age_days(row)
    if age < LOOKBACK_DAYS:
        return f"new account ({age:.0f} days old)"
    if row["user_tx_count_30d"] < 1:
        return f"no transactions in the {LOOKBACK_DAYS} days before"
    return f"unusual account profile ({row['user_tx_count_30d']:.0f} transactions in 30 days)"


def _encoded(prefix: str, values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{prefix}_{v.lower()}" for v in values)


REASONS: tuple[Reason, ...] = (
    Reason(
        "amount",
        ("amount", "log_amount", "amount_is_round_100", "amount_to_user_avg",
         "amount_log_zscore_user", "amount_to_profile_avg", "amount_share_of_user_24h"),
        (r.AMOUNT_SPIKE,),
        f"amount over 10× user's {LOOKBACK_DAYS}-day average",
        _amount,
    ),
    Reason(
        "velocity",
        ("tx_count_5m", "tx_count_1h", "tx_count_24h", "log_amount_sum_1h", "log_amount_sum_24h",
         "velocity_1h_vs_30d", "minutes_since_last_tx", "log_minutes_since_last_tx"),
        (r.BURST,),
        "burst of transactions within 5 min from a new source",
        _pace,
    ),
    Reason("withdrawals", ("withdraw_count_24h",), (), "many withdrawals in 24 h", _withdrawals),
    Reason(
        "structuring",
        ("amount_just_below_10k", "near_limit_withdrawals_24h"),
        (r.STRUCTURING,),
        "repeated withdrawals just below the 10,000 USD limit",
        _structuring,
    ),
    Reason(
        "dormant",
        ("log_user_tx_count_before_24h",),
        (r.DORMANT_CASH_OUT,),
        "dormant account cashing out",
        _dormant,
    ),
    Reason(
        "device_country",
        (),
        (r.NEW_DEVICE_NEW_COUNTRY,),
        "new device + new country",
        _device_country,
    ),
    Reason(
        "device",
        ("device_changed", "is_new_device_for_user", "device_changes_24h",
         "is_recent_device_for_user", *_encoded("device", DEVICE_TYPES)),
        (),
        "new device",
        _device,
    ),
    Reason(
        "country",
        ("country_changed", "is_new_country_for_user", "country_is_unknown",
         "country_changes_24h", "is_recent_country_for_user"),
        (),
        "new country",
        _country,
    ),
    Reason(
        "travel",
        ("geo_distance_km", "geo_velocity_kmh"),
        (r.IMPOSSIBLE_TRAVEL,),
        "impossible travel since the previous transaction",
        _travel,
    ),
    Reason(
        "new_wallet",
        ("is_new_wallet_for_user", "is_recent_wallet_for_user"),
        (r.NEW_WALLET_WITHDRAWAL,),
        "withdrawal to a wallet first used today",
        _new_wallet,
    ),
    Reason(
        "wallet_age",
        ("wallet_age_days", "is_fresh_wallet", "log_wallet_total_volume"),
        (r.NEW_WALLET_HIGH_AMOUNT,),
        "high amount to a wallet under a week old",
        _wallet_age,
    ),
    Reason(
        "shared_wallet",
        ("wallet_tx_count_24h", "wallet_tx_count_30d", "wallet_other_users_tx_30d",
         "log_wallet_amount_sum_24h"),
        (),
        "wallet shared with other accounts",
        _shared_wallet,
    ),
    Reason(
        "wallet_fraud",
        ("wallet_fraud_labels_7d", "wallet_fraud_labels_30d"),
        (),
        "wallet linked to confirmed fraud",
        _wallet_fraud,
    ),
    Reason(
        "user_fraud",
        ("user_fraud_labels_7d", "user_fraud_labels_30d"),
        (),
        "user has confirmed fraud",
        _user_fraud,
    ),
    Reason(
        "time",
        ("hour_sin", "hour_cos", "dow_sin", "dow_cos", "is_weekend", "is_night_utc",
         "user_hour_affinity_30d"),
        (),
        "unusual time",
        _time,
    ),
    Reason(
        "transaction_type",
        ("user_same_type_share_30d", *_encoded("type", TRANSACTION_TYPES)),
        (),
        "unusual transaction type",
        _tx_type,
    ),
    Reason("currency", _encoded("currency", CURRENCIES), (), "unusual currency", _currency),
    Reason(
        "account",
        ("user_tx_count_30d", "user_has_history", "log_user_avg_amount_30d",
         "user_log_amount_std_30d", "log_user_account_age_days", "log_user_total_transactions"),
        (),
        "unusual account profile",
        _account,
    ),
)  # fmt: skip

# Static wording of the comparisons with the user's history (``detectors.reasons.BASELINES``),
# for rows not explained in full.
BASELINE_WORDS: dict[str, str] = {
    "amount_vs_average": f"amount over 3× user's {LOOKBACK_DAYS}-day average",
    "burst_5min": "3+ transactions within 5 min",
    "pace_vs_usual": "over 5× user's usual hourly pace",
    "withdrawals_24h": "5+ withdrawals in 24 h",
    "device_new_today": "new device today",
    "country_new_today": "new country today",
    "wallet_new_today": "withdrawal to a wallet first used today",
    "near_limit_withdrawals": "2+ withdrawals just below the 10,000 USD limit in 24 h",
    "dormant_cash_out": "dormant account cashing out",
    "fast_travel": "impossible travel since the previous transaction",
}

REASON_CODES: tuple[str, ...] = tuple(reason.code for reason in REASONS)
REASON_BY_CODE: dict[str, Reason] = {reason.code: reason for reason in REASONS}
FEATURE_REASON: dict[str, str] = {f: reason.code for reason in REASONS for f in reason.features}
RULE_REASON: dict[str, str] = {rule: reason.code for reason in REASONS for rule in reason.rules}
# Columns the phrases read: every feature (phrases may read any of them).
PHRASE_COLUMNS: tuple[str, ...] = FEATURE_COLUMNS


def wording_markdown() -> str:
    """The table as markdown, for the README."""
    lines = ["| code | rules | example (static wording) |", "|---|---|---|"]
    for reason in REASONS:
        rules = ", ".join(f"`{rule}`" for rule in reason.rules) or "—"
        lines.append(f"| `{reason.code}` | {rules} | {reason.static} |")
    return "\n".join(lines) + "\n"
