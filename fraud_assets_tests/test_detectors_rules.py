"""Statistical rules on hand-built feature frames: each flag fires exactly at its boundary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from fraud_assets.detectors.rules import (
    AMOUNT_SPIKE,
    BURST,
    DORMANT_CASH_OUT,
    IMPOSSIBLE_TRAVEL,
    NEW_DEVICE_NEW_COUNTRY,
    NEW_WALLET_HIGH_AMOUNT,
    NEW_WALLET_WITHDRAWAL,
    RULE_NAMES,
    STRUCTURING,
    RuleConfig,
    StatisticalRules,
)

QUIET = {
    "amount": 100.0,
    "amount_to_user_avg": 1.0,
    "tx_count_5m": 1,
    "tx_count_1h": 1,
    "tx_count_24h": 3,
    "wallet_age_days": 400.0,
    "is_new_wallet_for_user": 0,
    "country_changed": 0,
    "is_new_country_for_user": 0,
    "is_new_device_for_user": 0,
    "geo_velocity_kmh": 0.0,
    "minutes_since_last_tx": 600.0,
    "is_recent_device_for_user": 0,
    "is_recent_country_for_user": 0,
    "is_recent_wallet_for_user": 0,
    "log_user_tx_count_before_24h": float(np.log1p(40)),
    "near_limit_withdrawals_24h": 0,
    "log_user_account_age_days": float(np.log1p(400)),
    "type_withdraw": 0,
    "type_sell": 0,
}
NEW_TODAY = {"is_recent_device_for_user": 1, "is_recent_country_for_user": 1}


def frame(*overrides: dict) -> pd.DataFrame:
    return pd.DataFrame([{**QUIET, **o} for o in overrides])


def fired(features, config: RuleConfig | None = None) -> list[list[str]]:
    return StatisticalRules(config).evaluate(features)[1]


def test_quiet_transaction_fires_nothing():
    risk, flags = StatisticalRules().evaluate(frame({}))
    assert flags == [[]] and risk.tolist() == [0.0]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"amount_to_user_avg": 10.0}, []),
        ({"amount_to_user_avg": 10.01}, [AMOUNT_SPIKE]),
        ({"amount_to_user_avg": np.nan}, []),
        ({"tx_count_5m": 2, "is_recent_device_for_user": 1}, []),
        ({"tx_count_5m": 3, "is_recent_device_for_user": 1}, [BURST]),
        ({"tx_count_5m": 3, "is_recent_country_for_user": 1}, [BURST]),
        ({"tx_count_5m": 30}, []),  # a trading bot from its usual device and country
        ({"wallet_age_days": 7.0, "amount": 10_000.0}, [NEW_WALLET_HIGH_AMOUNT]),
        ({"wallet_age_days": 7.01, "amount": 10_000.0}, []),
        ({"wallet_age_days": 0.0, "amount": 9_999.99}, []),
        ({"country_changed": 1, "geo_velocity_kmh": 900.0, "is_recent_country_for_user": 1}, []),
        (
            {"country_changed": 1, "geo_velocity_kmh": 900.1, "is_recent_country_for_user": 1},
            [IMPOSSIBLE_TRAVEL],
        ),
        (
            {"country_changed": 1, "geo_velocity_kmh": np.inf, "is_recent_country_for_user": 1},
            [IMPOSSIBLE_TRAVEL],
        ),
        ({"country_changed": 1, "geo_velocity_kmh": 5000.0}, []),  # a habitual VPN exit
        ({"country_changed": 0, "geo_velocity_kmh": 5000.0}, []),
        (NEW_TODAY, [NEW_DEVICE_NEW_COUNTRY]),
        ({**NEW_TODAY, "log_user_tx_count_before_24h": 0.0}, []),  # nothing to compare with
        ({"is_recent_device_for_user": 1}, []),
        ({"near_limit_withdrawals_24h": 1}, []),
        ({"near_limit_withdrawals_24h": 2}, [STRUCTURING]),
        ({"log_user_tx_count_before_24h": 0.0, "type_withdraw": 1}, [DORMANT_CASH_OUT]),
        ({"log_user_tx_count_before_24h": 0.0, "type_sell": 1}, [DORMANT_CASH_OUT]),
        (
            {
                "log_user_tx_count_before_24h": 0.0,
                "type_sell": 1,
                "log_user_account_age_days": float(np.log1p(89)),
            },
            [],
        ),
        ({"type_withdraw": 1, "is_recent_wallet_for_user": 1}, [NEW_WALLET_WITHDRAWAL]),
        ({"type_withdraw": 0, "is_recent_wallet_for_user": 1}, []),
    ],
)
def test_each_rule_fires_exactly_at_its_boundary(overrides, expected):
    assert fired(frame(overrides)) == [expected]
    assert fired(pl.from_pandas(frame(overrides))) == [expected]


def test_risk_is_the_sum_of_points_capped_at_100():
    features = frame(
        {"amount_to_user_avg": 50.0},
        {"amount_to_user_avg": 50.0, "tx_count_5m": 9, "is_recent_device_for_user": 1},
        {
            "amount_to_user_avg": 50.0,
            "amount": 20_000.0,
            "wallet_age_days": 1.0,
            "country_changed": 1,
            "geo_velocity_kmh": 3000.0,
            "is_recent_country_for_user": 1,
        },
    )
    risk, flags = StatisticalRules().evaluate(features)
    assert risk.tolist() == [40.0, 75.0, 100.0]
    assert flags[2] == [AMOUNT_SPIKE, NEW_WALLET_HIGH_AMOUNT, IMPOSSIBLE_TRAVEL]
    flags[0].append("mutated")
    assert flags[1] == [AMOUNT_SPIKE, BURST]  # rows never share list objects


def test_limits_points_and_disabled_rules_come_from_config():
    config = RuleConfig(
        amount_multiple=3.0,
        burst_count=10,
        points={AMOUNT_SPIKE: 15},
        disabled=(NEW_DEVICE_NEW_COUNTRY,),
    )
    features = frame(
        {"amount_to_user_avg": 4.0, "tx_count_5m": 5, "is_recent_country_for_user": 1},
        NEW_TODAY,
    )
    risk, flags = StatisticalRules(config).evaluate(features)
    assert flags == [[AMOUNT_SPIKE], []]
    assert risk.tolist() == [15.0, 0.0]
    assert RuleConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown rule"):
        RuleConfig(points={"amount_spike": 1})


def test_minimum_amount_for_the_spike_rule():
    config = RuleConfig(amount_spike_min_usd=500.0)
    features = frame(
        {"amount_to_user_avg": 20.0, "amount": 499.0}, {"amount_to_user_avg": 20.0, "amount": 500.0}
    )
    assert fired(features, config) == [[], [AMOUNT_SPIKE]]


def test_nulls_and_booleans_from_polars():
    features = pl.DataFrame(
        {
            **{k: [v, v] for k, v in QUIET.items()},
            "country_changed": [True, None],
            "geo_velocity_kmh": [None, 5000.0],
            "is_recent_device_for_user": [True, True],
            "is_recent_country_for_user": [True, None],
        }
    )
    assert fired(features) == [[NEW_DEVICE_NEW_COUNTRY], []]


def test_missing_columns_are_reported():
    with pytest.raises(KeyError, match="tx_count_5m"):
        StatisticalRules().evaluate(frame({}).drop(columns=["tx_count_5m"]))
    only_burst = RuleConfig(
        disabled=tuple(name for name in RULE_NAMES if name != BURST),
        burst_requires_new_source=False,
    )
    assert StatisticalRules(only_burst).required_columns == ("tx_count_5m",)
    assert fired(pd.DataFrame({"tx_count_5m": [5]}), only_burst) == [[BURST]]


def test_matrix_view_matches_the_list_view():
    rng = np.random.default_rng(0)
    features = pd.DataFrame(
        {
            **{k: np.full(1000, v) for k, v in QUIET.items()},
            "amount_to_user_avg": rng.exponential(3, 1000),
            "tx_count_5m": rng.integers(0, 8, 1000),
            "is_recent_device_for_user": rng.integers(0, 2, 1000),
            "type_withdraw": rng.integers(0, 2, 1000),
            "is_recent_wallet_for_user": rng.integers(0, 2, 1000),
        }
    )
    rules = StatisticalRules()
    matrix = rules.evaluate_matrix(features)
    _, flags = rules.evaluate(features)
    for row, row_flags in zip(matrix.fired, flags, strict=True):
        assert row_flags == [n for n, f in zip(matrix.names, row, strict=True) if f]
