"""Ensemble strategies, decision boundaries and reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_assets.detectors import EnsembleCombiner, EnsembleConfig, StatisticalRules


def test_decision_boundaries():
    stat = np.array([0.0, 29.99, 30.0, 50.0, 70.0, 70.01, 100.0])
    zeros = np.zeros_like(stat)
    ones = np.ones_like(stat)
    combiner = EnsembleCombiner(EnsembleConfig(stat_weight=1, iso_weight=0, ae_weight=0))
    result = combiner.combine(stat, zeros, zeros, ones, ones)
    assert result.decision.tolist() == [
        "approved",
        "approved",
        "review",
        "review",
        "review",
        "blocked",
        "blocked",
    ]
    assert result.counts() == {"approved": 2, "review": 3, "blocked": 2}


def test_boundaries_are_configurable():
    config = EnsembleConfig(
        stat_weight=1, iso_weight=0, ae_weight=0, approve_below=10, block_above=50
    )
    result = EnsembleCombiner(config).combine(
        [9.99, 10, 50, 50.01], [0] * 4, [0] * 4, [1] * 4, [1] * 4
    )
    assert result.decision.tolist() == ["approved", "review", "review", "blocked"]


def test_weighted_sum_default_and_seed_literal_sum():
    stat, iso, ae = np.array([50.0, 80.0]), np.array([20.0, 90.0]), np.array([10.0, 60.0])
    preds = np.array([1, -1])
    default = EnsembleCombiner().combine(stat, iso, ae, preds, preds)
    np.testing.assert_allclose(default.total_risk, [0.4 * 50 + 0.3 * 20 + 0.3 * 10, 77.0])
    assert default.decision.tolist() == ["approved", "blocked"]
    seed = EnsembleCombiner(EnsembleConfig(stat_weight=1, iso_weight=1, ae_weight=1))
    np.testing.assert_allclose(seed.combine(stat, iso, ae, preds, preds).total_risk, [80.0, 100.0])


def test_voting_counts_layers_that_call_the_row_anomalous():
    flags = [[], ["burst_5_in_5min"], [], ["impossible_travel"]]
    iso_pred = np.array([1, 1, -1, -1])
    ae_pred = np.array([1, 1, -1, -1])
    risks = np.zeros(4)
    result = EnsembleCombiner(
        EnsembleConfig(strategy="voting", stat_weight=1, iso_weight=1, ae_weight=1)
    ).combine(risks, risks, risks, iso_pred, ae_pred, flags)
    np.testing.assert_allclose(result.total_risk, [0.0, 100 / 3, 200 / 3, 100.0])
    assert result.decision.tolist() == ["approved", "review", "review", "blocked"]


def test_sequential_consults_the_forest_only_for_rows_the_autoencoder_flags():
    stat = np.array([0.0, 0.0])
    iso = np.array([np.nan, 90.0])  # the forest was skipped on the row the AE passed
    ae = np.array([20.0, 80.0])
    config = EnsembleConfig(strategy="sequential", stat_weight=0.4, iso_weight=0.3, ae_weight=0.3)
    result = EnsembleCombiner(config).combine(stat, iso, ae, [-1, -1], [1, -1])
    np.testing.assert_allclose(result.total_risk, [6.0, 0.3 * 90 + 0.3 * 80])
    assert result.reasons == [[], ["model:isolation_forest", "model:autoencoder"]]


def test_reasons_list_rules_then_models_over_threshold():
    flags = [["amount_gt_10x_user_avg"], [], ["burst_5_in_5min", "impossible_travel"]]
    result = EnsembleCombiner().combine(
        [40, 0, 95], [10, 80, 10], [5, 10, 90], [1, -1, 1], [1, 1, -1], flags
    )
    assert result.reasons == [
        ["rule:amount_gt_10x_user_avg"],
        ["model:isolation_forest"],
        ["rule:burst_5_in_5min", "rule:impossible_travel", "model:autoencoder"],
    ]
    no_flags = EnsembleCombiner().combine([0], [0], [0], [-1], [-1])
    assert no_flags.reasons == [["model:isolation_forest", "model:autoencoder"]]


def test_input_validation():
    with pytest.raises(ValueError, match="strategy"):
        EnsembleConfig(strategy="stacking")
    with pytest.raises(ValueError, match="approve_below"):
        EnsembleConfig(approve_below=80, block_above=70)
    with pytest.raises(ValueError, match="one value per row"):
        EnsembleCombiner().combine([1, 2], [1], [1, 2], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="NaN"):
        EnsembleCombiner().combine([1.0], [np.nan], [1.0], [1], [1])


@pytest.mark.parametrize("strategy", ["weighted_sum", "voting", "sequential"])
def test_rule_matrix_and_flag_lists_give_the_same_result(strategy):
    rng = np.random.default_rng(0)
    n = 500
    features = pd.DataFrame(
        {
            "amount": rng.lognormal(8, 1.5, n),
            "amount_to_user_avg": rng.lognormal(0, 1.5, n),
            "tx_count_5m": rng.integers(0, 8, n),
            "wallet_age_days": rng.exponential(30, n),
            "country_changed": rng.random(n) < 0.3,
            "geo_velocity_kmh": rng.exponential(600, n),
            "is_recent_device_for_user": rng.random(n) < 0.3,
            "is_recent_country_for_user": rng.random(n) < 0.3,
            "is_recent_wallet_for_user": rng.random(n) < 0.3,
            "log_user_tx_count_before_24h": rng.uniform(0, 5, n),
            "near_limit_withdrawals_24h": rng.integers(0, 3, n),
            "log_user_account_age_days": rng.uniform(0, 8, n),
            "type_withdraw": rng.random(n) < 0.3,
            "type_sell": rng.random(n) < 0.3,
        }
    )
    matrix = StatisticalRules().evaluate_matrix(features)
    args = (
        matrix.risk,
        rng.uniform(0, 100, n),
        rng.uniform(0, 100, n),
        np.where(rng.random(n) < 0.2, -1, 1),
        np.where(rng.random(n) < 0.2, -1, 1),
    )
    combiner = EnsembleCombiner(EnsembleConfig(strategy=strategy))
    from_lists = combiner.combine(*args, matrix.flags())
    from_matrix = combiner.combine(*args, matrix)
    np.testing.assert_array_equal(from_lists.total_risk, from_matrix.total_risk)
    np.testing.assert_array_equal(from_lists.decision, from_matrix.decision)
    assert from_lists.reasons == from_matrix.reasons
    assert len({len(r) for r in from_matrix.reasons}) > 2  # a real mix of reasons
