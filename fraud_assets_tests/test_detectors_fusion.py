"""StandardizedScoreFusion: label-free sum of per-model standardised scores."""

from __future__ import annotations

import numpy as np
import pytest

from fraud_assets.detectors import StandardizedScoreFusion


def test_each_model_is_standardised_on_its_own_training_scores():
    rng = np.random.default_rng(0)
    forest = rng.normal(0.45, 0.05, 1000)  # an Isolation Forest's narrow range
    errors = rng.lognormal(-1.0, 1.0, 1000)  # a reconstruction error's skewed one
    fusion = StandardizedScoreFusion(log_scale=(False, True)).fit([forest, errors])
    z_forest, z_errors = fusion.standardized([forest, errors])
    for z in (z_forest, z_errors):
        assert z.mean() == pytest.approx(0.0, abs=1e-9)
        assert z.std() == pytest.approx(1.0, rel=1e-9)
    np.testing.assert_allclose(fusion.combine([forest, errors]), z_forest + z_errors)


def test_log_scale_keeps_one_huge_error_from_deciding_alone():
    rng = np.random.default_rng(1)
    forest, errors = rng.normal(0.45, 0.05, 1000), rng.lognormal(-1.0, 1.0, 1000)
    # Row 0: the forest is very sure; row 1: a 100x reconstruction error, an ordinary forest score.
    rows = [np.array([0.70, 0.45]), np.array([np.exp(-1.0), 100 * np.exp(-1.0)])]
    in_log = StandardizedScoreFusion(log_scale=(False, True)).fit([forest, errors])
    linear = StandardizedScoreFusion(log_scale=(False, False)).fit([forest, errors])
    assert in_log.combine(rows)[0] > in_log.combine(rows)[1]
    assert linear.combine(rows)[0] < linear.combine(rows)[1]


def test_constant_training_scores_and_zero_errors_stay_finite():
    fusion = StandardizedScoreFusion(log_scale=(False, True)).fit([np.ones(5), np.zeros(5)])
    combined = fusion.combine([np.array([1.0, 2.0]), np.array([0.0, 1.0])])
    assert np.isfinite(combined).all() and combined[1] > combined[0]


def test_bad_input_is_refused():
    fusion = StandardizedScoreFusion(log_scale=(False, True))
    with pytest.raises(RuntimeError, match="fit"):
        fusion.combine([np.ones(2), np.ones(2)])
    with pytest.raises(ValueError, match="one training score array per model"):
        fusion.fit([np.ones(3)])
    with pytest.raises(ValueError, match="non-negative"):
        fusion.fit([np.ones(3), -np.ones(3)])
    with pytest.raises(ValueError, match="finite"):
        fusion.fit([np.array([1.0, np.nan]), np.ones(2)])
    fusion.fit([np.arange(3.0), np.arange(1.0, 4.0)])
    with pytest.raises(ValueError, match="same rows"):
        fusion.combine([np.ones(2), np.ones(3)])
