"""Score mapping and capacity cuts (pure), and the replay comparison's verdicts."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import spearmanr

from fraud_assets.bundle import ModelThresholds
from fraud_assets.detectors.calibration import ScoreCalibrator
from fraud_assets.detectors.ensemble import EnsembleCombiner
from fraud_assets.detectors.score_mapping import (
    ScoreMapping,
    capacity_cuts,
    capacity_mapping,
    fit_quantile_mapping,
)
from fraud_assets.evaluation import replay

QUANTILES = np.array([0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999])


def _risks(seed: int = 0, n: int = 50_000):
    rng = np.random.default_rng(seed)
    candidate = np.clip(100 * rng.beta(2, 9, n), 0, 100)  # a new version: another scale
    reference = np.clip(100 * rng.beta(1.2, 6, n), 0, 100)  # the active version's risks
    return candidate, reference


def test_quantile_mapping_preserves_rank_and_matches_the_reference_quantiles():
    candidate, reference = _risks()
    mapping = fit_quantile_mapping(candidate, reference)
    mapped = mapping.transform(candidate)
    assert spearmanr(candidate, mapped).statistic == pytest.approx(1.0)
    order = np.argsort(candidate)
    assert np.all(np.diff(mapped[order]) >= 0) and np.all(np.diff(mapping.target) > 0)
    np.testing.assert_allclose(
        np.quantile(mapped, QUANTILES), np.quantile(reference, QUANTILES), atol=0.25
    )
    # Before the mapping they were far apart: the test would notice an identity map.
    assert np.abs(np.quantile(candidate, QUANTILES) - np.quantile(reference, QUANTILES)).max() > 3


def test_mapping_on_fresh_traffic_and_ties_and_endpoints():
    candidate, reference = _risks(1)
    mapping = fit_quantile_mapping(
        np.r_[candidate, np.zeros(20_000)], np.r_[reference, reference[:20_000]]
    )
    assert mapping.transform([0.0, 100.0]).tolist() == [0.0, 100.0]
    fresh, fresh_reference = _risks(2)
    np.testing.assert_allclose(
        np.quantile(fit_quantile_mapping(candidate, reference).transform(fresh), QUANTILES),
        np.quantile(fresh_reference, QUANTILES),
        atol=1.0,
    )
    with pytest.raises(ValueError, match="finite"):
        fit_quantile_mapping([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        ScoreMapping((0.0, 50.0, 50.0, 100.0), (0.0, 40.0, 60.0, 100.0))


def test_composition_is_exact_and_the_mapping_travels_with_the_thresholds(tmp_path):
    candidate, reference = _risks(3)
    quantile = fit_quantile_mapping(candidate, reference)
    cuts = capacity_cuts(candidate, candidate > 60, hours=100.0, review_capacity_per_hour=20)
    both = quantile.then(capacity_mapping(cuts))
    np.testing.assert_allclose(
        both.transform(candidate),
        capacity_mapping(cuts).transform(quantile.transform(candidate)),
        atol=1e-6,
    )
    thresholds = ModelThresholds(
        0.5, 0.5, ScoreCalibrator().fit(candidate), ScoreCalibrator().fit(candidate),
        score_mapping=both,
    )  # fmt: skip
    thresholds.save(tmp_path)
    assert ModelThresholds.load(tmp_path).score_mapping == both


def test_capacity_cuts_fill_the_review_capacity_and_meet_the_block_precision_target():
    rng = np.random.default_rng(4)
    n, hours = 100_000, 500.0
    fraud = rng.random(n) < 0.01
    risk = np.clip(np.where(fraud, rng.normal(75, 12, n), rng.normal(20, 10, n)), 0, 100)
    cuts = capacity_cuts(
        risk, fraud, hours, review_capacity_per_hour=10, block_precision_target=0.9
    )
    mapped = capacity_mapping(cuts).transform(risk)
    blocked, review = mapped > 70, (mapped >= 30) & (mapped <= 70)
    assert fraud[blocked].mean() >= 0.9 and blocked.sum() > 0.3 * fraud.sum()
    assert review.sum() / hours == pytest.approx(10, abs=0.05)
    # the same risks through the combiner: the map decides where the lines fall
    result = EnsembleCombiner(score_map=capacity_mapping(cuts)).combine(
        risk, risk, risk, np.ones(n), np.ones(n)
    )
    assert (result.decision == "blocked").sum() == blocked.sum()


def test_unreachable_precision_target_keeps_the_block_line():
    risk = np.linspace(0, 100, 1000)
    cuts = capacity_cuts(risk, np.zeros(1000), 10.0, block_precision_target=0.5)
    assert cuts.block_cut == pytest.approx(70.0) and "not reached" in cuts.notes[0]


def _outcome(version: str, decision, fraud, matured):
    return replay.outcome(version, decision, fraud, np.full(len(fraud), 100.0), matured, 48.0)


def test_replay_comparison_refuses_a_worse_candidate_and_passes_an_equal_one():
    rng = np.random.default_rng(5)
    n = 20_000
    fraud = rng.random(n) < 0.01
    matured = np.arange(n) < 15_000
    good = np.where(fraud, "blocked", np.where(rng.random(n) < 0.02, "review", "approved"))
    worse = np.where(rng.random(n) < 0.5, "approved", good)  # misses half of what it caught
    tolerances = replay.Tolerances()
    active = _outcome("v1", good, fraud, matured)
    verdict = replay.compare(_outcome("v2", good, fraud, matured), active, tolerances)
    assert verdict.passed and "not worse" in verdict.reason
    refused = replay.compare(_outcome("v2", worse, fraud, matured), active, tolerances)
    assert not refused.passed and "frauds caught" in refused.reason
    noisy = np.where(rng.random(n) < 0.05, "review", good)  # floods the review queue
    flooded = replay.compare(_outcome("v2", noisy, fraud, matured), active, tolerances)
    assert not flooded.passed and "reviews per hour" in flooded.reason
    assert "false-positive rate" in flooded.reason
    table = replay.markdown(_outcome("v2", worse, fraud, matured), active, refused)
    assert "| frauds caught |" in table and "**no**" in table


def test_a_replay_tallied_in_chunks_gives_the_one_pass_outcome_bit_for_bit():
    rng = np.random.default_rng(13)  # data where summing chunk by chunk changes the float sum
    n = 30_000
    decision = rng.choice(["approved", "review", "blocked"], n, p=[0.9, 0.07, 0.03])
    fraud = rng.random(n) < 0.05
    matured = rng.random(n) < 0.7
    amount = rng.lognormal(4.0, 3.0, n)  # spread magnitudes: float sums depend on their order
    whole = replay.outcome("v", decision, fraud, amount, matured, 336.0)
    tally = replay.Tally()
    for rows in np.array_split(np.arange(n), 17):
        tally.add(decision[rows], fraud[rows], amount[rows], matured[rows])
    assert tally.outcome("v", 336.0) == whole
    frauds = fraud & matured
    assert whole.fraud_amount == math.fsum(amount[frauds])  # correctly rounded
    assert whole.frauds == frauds.sum() and whole.transactions == n


def test_exact_sum_is_exact_and_refuses_non_finite_amounts():
    values = np.array([1e16, 1.0, -1e16, 0.5, -3.25, 5e-324])
    assert replay.exact_sum(values) == sum(Fraction(v) for v in values.tolist())
    assert replay.exact_sum(np.array([])) == 0
    with pytest.raises(ValueError, match="finite"):
        replay.exact_sum(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="one value per row"):
        replay.Tally().add(["review"], [1, 0], [1.0], [True])
