"""Reference data shared by the generator, the features and the rules.

Amounts in ``crypto_transactions.amount`` are the USD notional value of the
transaction (what the exchange's ledger reports), whatever the ``currency``
traded, so one amount threshold means the same thing for every asset.
"""

from __future__ import annotations

TRANSACTION_TYPES: tuple[str, ...] = ("buy", "sell", "withdraw", "deposit")

# Larger than any real transaction: a unit or parsing error upstream. Scoring quarantines
# such a row; history sums count it at this amount (features/compaction.py).
MAX_AMOUNT_USD = 1e10

CURRENCIES: tuple[str, ...] = ("BTC", "ETH", "USDT", "USDC", "SOL", "XRP", "BNB", "ADA")

DEVICE_TYPES: tuple[str, ...] = ("mobile_ios", "mobile_android", "desktop_web", "api")

# ISO 3166-1 alpha-2 code → (latitude, longitude) of a representative point
# (capital or main financial centre), used for the geographic-velocity feature.
COUNTRY_LOCATIONS: dict[str, tuple[float, float]] = {
    "US": (40.71, -74.01),
    "CA": (43.65, -79.38),
    "BR": (-23.55, -46.63),
    "MX": (19.43, -99.13),
    "AR": (-34.60, -58.38),
    "GB": (51.51, -0.13),
    "DE": (50.11, 8.68),
    "FR": (48.86, 2.35),
    "NL": (52.37, 4.90),
    "ES": (40.42, -3.70),
    "IT": (45.46, 9.19),
    "CH": (47.37, 8.54),
    "SE": (59.33, 18.07),
    "PL": (52.23, 21.01),
    "TR": (41.01, 28.98),
    "AE": (25.20, 55.27),
    "IR": (35.69, 51.39),
    "IN": (19.08, 72.88),
    "SG": (1.35, 103.82),
    "JP": (35.68, 139.69),
    "KR": (37.57, 126.98),
    "HK": (22.32, 114.17),
    "AU": (-33.87, 151.21),
    "NG": (6.52, 3.38),
    "ZA": (-26.20, 28.05),
    "RU": (55.76, 37.62),
    "UA": (50.45, 30.52),
    "VN": (10.82, 106.63),
    "ID": (-6.21, 106.85),
    "PH": (14.60, 120.98),
}

FRAUD_SCENARIOS: tuple[str, ...] = (
    "account_takeover",
    "velocity_burst",
    "amount_spike",
    "impossible_travel",
    "structuring",
    "dormant_reactivation",
    "wallet_draining",
)
