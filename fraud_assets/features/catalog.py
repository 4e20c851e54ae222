"""Every model input feature, its meaning and its fill value: the one documented place.

``FEATURE_COLUMNS`` is the model input in a fixed order. Changing the order or
the set changes what a trained model expects, so a model bundle records the
columns it was trained on and scoring checks them.

Conventions shared by every feature (see ``pipeline.py``):

* A user's *history* is their transactions in the **30-day lookback**: from 30
  days before the start of the transaction's UTC hour up to the transaction.
  Anchoring the lookback at the hour makes it the same for every transaction in
  an hourly partition, so it can be aggregated in ClickHouse, and it makes a
  transaction's features independent of the window it is computed in.
* *Before* a transaction means earlier in (timestamp, transaction_id) order.
* Velocity windows end at the transaction and include it: ``tx_count_5m``
  counts the user's transactions with timestamp in (t − 5 min, t] that are not
  after it in that order (so it is at least 1).
* No feature is ever null or infinite; the fill value for "no history" is
  stated in each meaning.
"""

from __future__ import annotations

LOOKBACK_DAYS = 30
NO_PREVIOUS_TX_MINUTES = float(LOOKBACK_DAYS * 24 * 60)
GEO_VELOCITY_CAP_KMH = 20_000.0
MIN_ELAPSED_HOURS_FOR_GEO = 1.0 / 60.0
# Withdrawals in this USD range sit just below the exchange's 10,000 USD reporting limit.
NEAR_LIMIT_RANGE_USD = (8_500.0, 10_000.0)

_AMOUNT = {
    "amount": "Transaction amount, USD notional (Float64, unscaled; read by the rules).",
    "log_amount": "log(1 + amount).",
    "amount_is_round_100": "1 if the amount is a positive whole multiple of 100 USD.",
    "amount_just_below_10k": "1 if 9,000 ≤ amount < 10,000 USD (structuring below a reporting threshold).",
    "amount_to_user_avg": "amount ÷ the user's average amount over their 30-day history before this "
    "transaction; 1.0 when the user has no history (a first transaction is typical of itself).",
    "amount_log_zscore_user": "(log_amount − mean) ÷ max(std, 0.1) of the user's history log amounts; "
    "0 with fewer than 2 history transactions. Clipped to ±50.",
    "amount_to_profile_avg": "amount ÷ the source system's user_avg_amount column; 1.0 when that is ≤ 0.",
    "amount_share_of_user_24h": "amount ÷ the user's total amount in the 24 h ending at this "
    "transaction (including it); in (0, 1].",
}

_USER = {
    "user_tx_count_30d": "The user's transactions in the 30-day history before this one.",
    "user_has_history": "1 if user_tx_count_30d > 0.",
    "log_user_avg_amount_30d": "log(1 + the user's average amount over the 30-day history); 0 without history.",
    "user_log_amount_std_30d": "Standard deviation of log(1 + amount) over the 30-day history; 0 with "
    "fewer than 2 history transactions.",
    "user_hour_affinity_30d": "Mean cosine similarity between this transaction's UTC hour and the "
    "hours of the user's history transactions on the 24-hour clock: 1 when the user always "
    "transacts at this hour, −1 when always 12 hours apart; 0 without history.",
    "user_same_type_share_30d": "Share of the user's history transactions of the same transaction "
    "type as this one; 0 without history.",
    "log_user_account_age_days": "log(1 + user_account_age_days) from the source row (negatives as 0).",
    "log_user_total_transactions": "log(1 + user_total_transactions) from the source row (negatives as 0).",
}

_VELOCITY = {
    "tx_count_5m": "The user's transactions in the 5 minutes ending at this one, including it (≥ 1).",
    "tx_count_1h": "The user's transactions in the hour ending at this one, including it (≥ 1).",
    "tx_count_24h": "The user's transactions in the 24 hours ending at this one, including it (≥ 1).",
    "log_amount_sum_1h": "log(1 + the user's total amount in the hour ending at this one, including it).",
    "log_amount_sum_24h": "log(1 + the user's total amount in the 24 hours ending at this one, including it).",
    "withdraw_count_24h": "The user's withdrawals in the 24 hours ending at this one (including it if it "
    "is a withdrawal).",
    "velocity_1h_vs_30d": "tx_count_1h ÷ (the user's average transactions per hour over the 30-day "
    "history + 1): a burst against the user's own pace.",
    "minutes_since_last_tx": "Minutes since the user's previous transaction within the 30-day history; "
    f"{NO_PREVIOUS_TX_MINUTES:.0f} (the lookback) when there is none.",
    "log_minutes_since_last_tx": "log(1 + minutes_since_last_tx).",
    "country_changes_24h": "Country changes between consecutive transactions of the user within the "
    "24 hours ending at this one (pairs with both ends in the window).",
    "device_changes_24h": "Device-type changes between consecutive transactions of the user within the "
    "24 hours ending at this one (pairs with both ends in the window).",
}

_TIME = {
    "hour_sin": "sin(2π · UTC hour of day / 24).",
    "hour_cos": "cos(2π · UTC hour of day / 24).",
    "dow_sin": "sin(2π · day of week / 7), Monday = 0.",
    "dow_cos": "cos(2π · day of week / 7), Monday = 0.",
    "is_weekend": "1 on Saturday and Sunday (UTC).",
    "is_night_utc": "1 between 00:00 and 05:59 UTC.",
}

_GEO_DEVICE = {
    "country_changed": "1 if ip_country differs from the user's previous transaction's; 0 without "
    "a previous transaction.",
    "is_new_country_for_user": "1 if the user has no history transaction from this ip_country (so 1 "
    "for a user without history; combine with user_has_history).",
    "geo_distance_km": "Great-circle distance between the representative points of the previous and "
    "this transaction's countries (fraud_assets.reference); 0 when the same or either is unknown.",
    "geo_velocity_kmh": "geo_distance_km ÷ hours since the previous transaction (at least 1 minute), "
    f"capped at {GEO_VELOCITY_CAP_KMH:,.0f} km/h (faster than any flight); 0 when same country.",
    "country_is_unknown": "1 if ip_country is not in the reference country list.",
    "device_changed": "1 if device_type differs from the user's previous transaction's; 0 without one.",
    "is_new_device_for_user": "1 if the user has no history transaction from this device type (1 for a "
    "user without history).",
}

_WALLET = {
    "wallet_age_days": "Wallet age in days from the source row (negatives as 0).",
    "log_wallet_total_volume": "log(1 + wallet_total_volume) from the source row (negatives as 0).",
    "is_fresh_wallet": "1 if wallet_age_days < 1.",
    "is_new_wallet_for_user": "1 if the user never used this wallet in their 30-day history (1 for a "
    "user without history); 0 when the transaction has no wallet.",
    "wallet_tx_count_24h": "Transactions of any user with this wallet in the 24 hours ending at this "
    "one, including it; 0 without a wallet.",
    "wallet_tx_count_30d": "Transactions of any user with this wallet in the 30-day lookback before "
    "this one; 0 without a wallet.",
    "wallet_other_users_tx_30d": "Of wallet_tx_count_30d, those made by other users (a wallet shared "
    "across accounts).",
    "log_wallet_amount_sum_24h": "log(1 + total amount of any user with this wallet in the 24 hours "
    "ending at this one, including it); 0 without a wallet.",
}

_FEEDBACK = {
    "user_fraud_labels_7d": "The user's transactions confirmed as fraud with labeled_at in the 7 days "
    "before this transaction's hour up to (strictly before) its timestamp.",
    "user_fraud_labels_30d": "As user_fraud_labels_7d over the 30-day lookback.",
    "wallet_fraud_labels_7d": "Transactions with this counterparty wallet (any user) confirmed as fraud, "
    "labeled_at within the 7-day lookback and strictly before this transaction; 0 without a wallet.",
    "wallet_fraud_labels_30d": "As wallet_fraud_labels_7d over the 30-day lookback.",
}


_NOVELTY = {
    "log_user_tx_count_before_24h": "log(1 + the user's transactions in the 30-day lookback that are "
    "more than 24 h before this one): 0 for a new, dormant or reactivated account.",
    "is_recent_device_for_user": "1 if the user has no transaction from this device type in the "
    "lookback before the last 24 h (new today, or new altogether); stays 1 for every transaction "
    "of a same-day session from a new device, unlike is_new_device_for_user.",
    "is_recent_country_for_user": "As is_recent_device_for_user for ip_country.",
    "is_recent_wallet_for_user": "As is_recent_device_for_user for the counterparty wallet; 0 "
    "without a wallet.",
    "near_limit_withdrawals_24h": "The user's withdrawals of 8,500 to 9,999.99 USD (just below the "
    "10,000 USD reporting limit) in the 24 hours ending at this one, including it.",
}


def _one_hot(prefix: str, values: tuple[str, ...], what: str) -> dict[str, str]:
    return {f"{prefix}_{v.lower()}": f"1 if {what} is {v!r}." for v in values}


def _encodings() -> dict[str, str]:
    from fraud_assets.reference import CURRENCIES, DEVICE_TYPES, TRANSACTION_TYPES

    return {
        **_one_hot("type", TRANSACTION_TYPES, "transaction_type"),
        **_one_hot("currency", CURRENCIES, "currency"),
        **_one_hot("device", DEVICE_TYPES, "device_type"),
    }


FEATURE_CATALOG: dict[str, str] = {
    **_AMOUNT,
    **_USER,
    **_VELOCITY,
    **_TIME,
    **_GEO_DEVICE,
    **_WALLET,
    **_FEEDBACK,
    **_NOVELTY,
    **_encodings(),
}

FEATURE_COLUMNS: tuple[str, ...] = tuple(FEATURE_CATALOG)

KEY_COLUMNS: tuple[str, ...] = ("transaction_id", "timestamp", "user_id")


def catalog_markdown() -> str:
    """The catalog as a markdown table, for the README."""
    lines = ["| # | Feature | Meaning |", "|---|---|---|"]
    for number, (name, meaning) in enumerate(FEATURE_CATALOG.items(), start=1):
        escaped = meaning.replace("|", "\\|")
        lines.append(f"| {number} | `{name}` | {escaped} |")
    return "\n".join(lines) + "\n"
