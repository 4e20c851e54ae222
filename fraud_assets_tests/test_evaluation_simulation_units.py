"""The pieces behind the detection-quality evaluation: budget metrics with ties, the fitted
ensemble combiner, its round trip through the thresholds artifact, the "new today"
features, the goal checks and the command line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from fraud_assets.bundle import ModelThresholds
from fraud_assets.detectors.calibration import ScoreCalibrator
from fraud_assets.detectors.ensemble import EnsembleCombiner, EnsembleConfig
from fraud_assets.detectors.rules import RuleMatrix
from fraud_assets.detectors.stacking import (
    FORMAT_VERSION,
    L2,
    L2_GRID,
    MAX_SURPRISAL,
    LabelledLayers,
    StackedCombiner,
    default_unless_clearly_beaten,
    log_odds_points,
    surprisal,
)
from fraud_assets.evaluation.metrics import (
    recall_at_budget,
    scenario_recall_at_budget,
    top_budget_share,
)
from fraud_assets.evaluation.simulation import SimulationGoals, SimulationSettings, check_goals
from fraud_assets.features import extract_features

# ---------------------------------------------------------------- budget metrics


def test_review_budget_shares_tied_slots_equally():
    scores = np.array([5.0, 3, 3, 3, 1, 0, 0, 0, 0, 0])
    labels = np.array([0, 1, 0, 1, 1, 0, 0, 0, 0, 0])
    share = top_budget_share(scores, 0.2)  # two slots: one above the tie, one shared by three
    np.testing.assert_allclose(share, [1, 1 / 3, 1 / 3, 1 / 3, 0, 0, 0, 0, 0, 0])
    assert share.sum() == pytest.approx(2)
    assert recall_at_budget(labels, scores, 0.2) == pytest.approx(2 / 9)
    assert recall_at_budget(labels, scores, 0.5) == 1.0
    assert np.isnan(recall_at_budget(np.zeros(10), scores, 0.2))
    types = np.array(["", "a", "", "b", "a", "", "", "", "", ""], dtype=object)
    assert scenario_recall_at_budget(types, labels, scores, 0.2) == pytest.approx(
        {"a": 1 / 6, "b": 1 / 3}
    )


def test_review_budget_does_not_depend_on_row_order():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, 500).astype(float)
    labels = rng.random(500) < 0.1
    order = rng.permutation(500)
    assert recall_at_budget(labels, scores, 0.02) == pytest.approx(
        recall_at_budget(labels[order], scores[order], 0.02)
    )


# ---------------------------------------------------------------- fitted combiner


def _synthetic(n: int = 20_000, seed: int = 0):
    """Two rules (one meaningful, one noise) and two model risks; fraud depends on rule a + iso."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.01
    fired = np.column_stack(
        [np.where(y, rng.random(n) < 0.8, rng.random(n) < 0.005), rng.random(n) < 0.05]
    )
    iso = np.where(y, rng.uniform(60, 99.9, n), rng.uniform(0, 70, n))
    ae = rng.uniform(0, 80, n)
    return fired, ("rule_a", "rule_b"), iso, ae, y


def test_combiner_learns_which_layer_outputs_mean_fraud():
    fired, names, iso, ae, y = _synthetic()
    combiner = StackedCombiner().fit(fired, names, iso, ae, y, {"rule_a": 40, "rule_b": 40})
    weights = combiner.weights()
    assert weights["rule_a"] > 3 > abs(weights["rule_b"])
    assert weights["isolation_forest"] > abs(weights["autoencoder"])
    p = combiner.predict_proba(fired, names, iso, ae)
    assert p.mean() == pytest.approx(y.mean(), rel=0.1)  # calibrated on the base rate
    assert p[y].mean() > 0.5 > p[~y].mean()


def test_combiner_keeps_the_prior_where_labels_say_little():
    fired, names, iso, ae, y = _synthetic(n=3000, seed=1)
    rare = np.zeros((len(y), 1), dtype=bool)  # a rule that never fired in the labelled rows
    combiner = StackedCombiner(l2=5.0).fit(
        np.column_stack([fired, rare]), (*names, "rare"), iso, ae, y, {"rare": 60}
    )
    assert combiner.weights()["rare"] == pytest.approx(60 / 20, rel=1e-3)


def test_combiner_needs_both_classes_and_reads_rules_by_name():
    fired, names, iso, ae, y = _synthetic(n=2000)
    with pytest.raises(ValueError, match="both fraud and normal"):
        StackedCombiner().fit(fired, names, iso, ae, np.zeros(len(y)))
    combiner = StackedCombiner().fit(fired, names, iso, ae, y)
    swapped = combiner.predict_proba(fired[:, ::-1], names[::-1], iso, ae)
    np.testing.assert_allclose(swapped, combiner.predict_proba(fired, names, iso, ae))
    # a rule the combiner never saw is ignored; one it knows but is absent counts as not fired
    extra = np.column_stack([fired[:, :1], np.ones(len(y), dtype=bool)])
    np.testing.assert_allclose(
        combiner.predict_proba(extra, ("rule_a", "unknown"), iso, ae),
        combiner.predict_proba(np.column_stack([fired[:, 0], np.zeros(len(y))]), names, iso, ae),
    )
    assert surprisal([0.0, 50.0, 100.0, np.nan]).tolist() == pytest.approx(
        [0.0, np.log(2), MAX_SURPRISAL, 0.0]
    )


def test_combiner_fits_on_the_models_alone_when_there_are_no_rules():
    # The public benchmark has labels but no rules: zero rule columns, two model inputs.
    _, _, iso, ae, y = _synthetic(n=5000)
    no_rules = np.zeros((len(y), 0), dtype=bool)
    combiner = StackedCombiner().fit(no_rules, (), iso, ae, y)
    assert combiner.inputs == ("isolation_forest", "autoencoder")
    assert combiner.weights()["isolation_forest"] > abs(combiner.weights()["autoencoder"])
    p = combiner.predict_proba(no_rules, (), iso, ae)
    assert p[y].mean() > 5 * p[~y].mean()
    loaded = StackedCombiner.from_dict(combiner.to_dict())
    np.testing.assert_allclose(loaded.predict_proba(no_rules, (), iso, ae), p)


def _held_out_losses(fit_rows, held: LabelledLayers) -> dict[float, np.ndarray]:
    """Per-row held-out log loss of a fixed-penalty fit, for every candidate penalty."""
    y = np.asarray(held.labels, dtype=float)
    losses = {}
    for l2 in L2_GRID:
        p = StackedCombiner(l2=l2).fit(*fit_rows).predict_proba(*held[:4])
        losses[l2] = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return losses


def test_penalty_stays_the_default_unless_a_candidate_clearly_beats_it_held_out():
    fit_rows = _synthetic(n=20_000, seed=4)
    held = LabelledLayers(*_synthetic(n=20_000, seed=5))
    combiner = StackedCombiner(l2=None).fit(*fit_rows, validation=held)
    losses = _held_out_losses(fit_rows, held)
    choice = combiner.penalty_
    assert choice.method == "validation split"
    assert choice.losses == pytest.approx({l2: rows.mean() for l2, rows in losses.items()})
    best = min(choice.losses, key=choice.losses.get)
    difference = losses[L2] - losses[best]
    assert choice.margin == pytest.approx(np.std(difference) / np.sqrt(difference.size))
    assert choice.l2 == (best if difference.mean() > choice.margin else L2)
    # fitted with the chosen penalty on the fitting rows only
    fixed = StackedCombiner(l2=choice.l2).fit(*fit_rows)
    np.testing.assert_allclose(combiner.coef_, fixed.coef_, rtol=1e-6, atol=1e-8)


def test_the_default_stands_on_a_near_tie():
    rng = np.random.default_rng(14)
    base = rng.exponential(0.02, 10_000)
    noise = rng.normal(0, 0.01, base.size)  # standard error of a difference: 1e-4
    noise -= noise.mean()
    losses = {
        1.0: base + 0.0005,
        10.0: base,  # the smallest mean
        L2: base + 0.00005 + noise,  # worse by half a standard error: it stays
        50.0: base + 0.0003,
    }
    choice = default_unless_clearly_beaten(losses, "validation split")
    assert (choice.l2, choice.margin) == (L2, pytest.approx(1e-4, rel=0.05))
    assert "the default" in choice.describe()
    losses[L2] = base + 0.0002 + noise  # worse by two standard errors: the best wins
    choice = default_unless_clearly_beaten(losses, "validation split")
    assert choice.l2 == 10.0 and "more than one standard error" in choice.describe()
    with pytest.raises(ValueError, match="default"):
        default_unless_clearly_beaten({1.0: base, 2.0: base}, "validation split")


def test_penalty_follows_what_the_held_out_rows_say():
    # Same process in both: 20,000 rows say the forest matters far more than its prior
    # weight, so a weak pull wins. Held-out rows where the forest's risk means nothing
    # (its signal drifted away): the prior's side wins.
    fit_rows = _synthetic(n=20_000, seed=6)
    same = StackedCombiner(l2=None).fit(*fit_rows, validation=LabelledLayers(*_synthetic(seed=7)))
    fired, names, _, ae, y = _synthetic(seed=8)
    drifted = LabelledLayers(fired, names, np.random.default_rng(9).uniform(0, 99.9, y.size), ae, y)
    shifted = StackedCombiner(l2=None).fit(*fit_rows, validation=drifted)
    assert same.penalty_.l2 <= 5 < 100 <= shifted.penalty_.l2
    assert same.weights()["isolation_forest"] > 2 * shifted.weights()["isolation_forest"]


def test_penalty_falls_back_or_cross_validates_without_enough_held_out_frauds():
    fit_rows = _synthetic(n=20_000, seed=10)
    fired, names, iso, ae, y = _synthetic(n=2000, seed=11)
    few = np.zeros(y.size, dtype=bool)
    few[:3] = True
    combiner = StackedCombiner(l2=None).fit(
        *fit_rows, validation=LabelledLayers(fired, names, iso, ae, few)
    )
    assert (combiner.penalty_.l2, combiner.penalty_.method) == (
        L2,
        "default: 3 labelled frauds in the validation split",
    )
    # no held-out rows (the public data): stratified folds of the fitting rows, the same twice
    cross = StackedCombiner(l2=None).fit(*fit_rows)
    assert cross.penalty_.method == "5-fold cross-validation"
    assert cross.penalty_.l2 in L2_GRID and set(cross.penalty_.losses) == set(L2_GRID)
    again = StackedCombiner(l2=None).fit(*fit_rows)
    assert again.penalty_ == cross.penalty_
    assert StackedCombiner(l2=7.0).fit(*fit_rows).penalty_.describe() == "7 (fixed)"


def test_combiner_round_trip_keeps_how_its_penalty_was_chosen():
    fit_rows = _synthetic(n=5000, seed=12)
    fired, names, iso, ae, _ = fit_rows
    combiner = StackedCombiner(l2=None).fit(
        *fit_rows, validation=LabelledLayers(*_synthetic(seed=13))
    )
    data = combiner.to_dict()
    loaded = StackedCombiner.from_dict(data)
    assert loaded.penalty_ == combiner.penalty_
    assert "standard error" in loaded.penalty_.describe()
    np.testing.assert_allclose(
        loaded.predict_proba(fired, names, iso, ae), combiner.predict_proba(fired, names, iso, ae)
    )
    # a version 1 artifact (a fixed penalty, no record of a choice) still loads
    old = {k: v for k, v in data.items() if k != "penalty"} | {"format_version": 1, "l2": 20.0}
    assert StackedCombiner.from_dict(old).penalty_.describe() == "20 (fixed)"
    with pytest.raises(ValueError, match="newer"):
        StackedCombiner.from_dict(data | {"format_version": FORMAT_VERSION + 1})


def test_ensemble_with_a_fitted_combiner_puts_probabilities_on_the_seed_scale():
    fired, names, iso, ae, y = _synthetic(n=5000)
    combiner = StackedCombiner().fit(fired, names, iso, ae, y)
    matrix = RuleMatrix(risk=fired @ np.array([40.0, 40.0]), fired=fired, names=names)
    pred = np.ones(len(y))
    args = (matrix.risk, iso, ae, pred, pred)
    result = EnsembleCombiner(EnsembleConfig(), combiner).combine(*args, matrix)
    p = combiner.predict_proba(fired, names, iso, ae)
    # 30 points = 5 % likely (review), 70 points = 70 % likely (block), same order as p
    assert set(result.decision[p > 0.7]) == {"blocked"}
    assert set(result.decision[(p >= 0.05) & (p <= 0.7)]) <= {"review"}
    assert set(result.decision[p < 0.05]) == {"approved"}
    order = np.argsort(p)
    assert np.all(np.diff(result.total_risk[order]) >= 0)
    from_lists = EnsembleCombiner(EnsembleConfig(), combiner).combine(*args, matrix.flags())
    np.testing.assert_allclose(from_lists.total_risk, result.total_risk)
    assert from_lists.reasons == result.reasons


def test_log_odds_points_pass_through_the_anchors_and_never_tie():
    z_review, z_block = np.log(0.05 / 0.95), np.log(0.7 / 0.3)
    z = np.array([z_review, z_block, (z_review + z_block) / 2])
    np.testing.assert_allclose(log_odds_points(z, z_review, z_block, 30, 70), [30, 70, 50])
    points = log_odds_points(np.linspace(-30, 30, 20_001), z_review, z_block, 30, 70)
    assert np.all(np.diff(points) > 0) and 0 < points[0] < 0.01 and 99.99 < points[-1] < 100


def test_thresholds_artifact_carries_the_combiner(tmp_path):
    fired, names, iso, ae, y = _synthetic(n=3000)
    calibrator = ScoreCalibrator().fit(np.linspace(0, 1, 100))
    thresholds = ModelThresholds(0.5, 0.1, calibrator, calibrator, {"kind": "percentile"})
    thresholds.save(tmp_path)
    assert ModelThresholds.load(tmp_path).combiner is None  # bundles without one still load
    thresholds.combiner = StackedCombiner().fit(fired, names, iso, ae, y)
    thresholds.save(tmp_path)
    loaded = ModelThresholds.load(tmp_path).combiner
    np.testing.assert_allclose(
        loaded.predict_proba(fired, names, iso, ae),
        thresholds.combiner.predict_proba(fired, names, iso, ae),
    )
    assert loaded.weights() == thresholds.combiner.weights()


# ---------------------------------------------------------------- "new today" features

T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)


def _tx(tid: str, hours: float, **overrides) -> dict:
    row = {
        "transaction_id": tid,
        "timestamp": T0 + timedelta(hours=hours),
        "user_id": "u1",
        "amount": 100.0,
        "transaction_type": "buy",
        "wallet_address": "own",
        "ip_country": "US",
        "device_type": "mobile_ios",
        "user_account_age_days": 400,
    }
    return row | overrides


def _features(rows: list[dict], history: list[dict]) -> dict[str, dict]:
    def frame(data):
        return pl.DataFrame(data).with_columns(pl.col("timestamp").dt.cast_time_unit("us"))

    out = extract_features(frame(rows), frame(history), pl.DataFrame())
    return {row["transaction_id"]: row for row in out.iter_rows(named=True)}


def test_new_today_features_hold_for_every_transaction_of_an_attack():
    history = [_tx(f"h{i}", -72 - i) for i in range(5)]  # three days ago: home set-up
    attack = {"device_type": "api", "ip_country": "BR", "wallet_address": "mule"}
    rows = [
        _tx("a1", 0, **attack, transaction_type="sell"),
        _tx("a2", 0.2, **attack, transaction_type="withdraw", amount=9_500),
        _tx("a3", 0.3, **attack, transaction_type="withdraw", amount=9_900),
        _tx("own", 0.5, transaction_type="withdraw", amount=9_000),
    ]
    f = _features(rows, history)
    for tid in ("a1", "a2", "a3"):
        assert f[tid]["is_recent_device_for_user"] == 1
        assert f[tid]["is_recent_country_for_user"] == 1
        assert f[tid]["is_recent_wallet_for_user"] == 1
        assert f[tid]["log_user_tx_count_before_24h"] == pytest.approx(np.log1p(5))
    assert f["a1"]["is_new_device_for_user"] == 1 and f["a2"]["is_new_device_for_user"] == 0
    assert f["own"]["is_recent_device_for_user"] == f["own"]["is_recent_wallet_for_user"] == 0
    near = [f[t]["near_limit_withdrawals_24h"] for t in ("a1", "a2", "a3", "own")]
    assert near == [0, 1, 2, 3]


def test_a_device_used_before_the_last_day_is_not_new_today():
    history = [_tx("old", -30, device_type="api"), _tx("h", -2)]
    f = _features([_tx("t", 0, device_type="api")], history)
    assert f["t"]["is_recent_device_for_user"] == 0  # 30 h ago: before the last 24 h
    f = _features([_tx("t", 0, device_type="api")], [_tx("old", -20, device_type="api")])
    assert f["t"]["is_recent_device_for_user"] == 1  # 20 h ago: still new today
    assert f["t"]["log_user_tx_count_before_24h"] == 0


# ---------------------------------------------------------------- goals and settings


def _report(pr_auc=0.8, block_precision=0.95, scenario_recall=0.9) -> dict:
    layer = {"pr_auc": 0.4, "roc_auc": 0.9}
    ensemble = {
        "pr_auc": pr_auc,
        "roc_auc": 0.99,
        "block_precision": block_precision,
        "recall_at_2.0%": 0.9,
        "scenario_recall_at_2.0%": {"structuring": 1.0, "velocity_burst": scenario_recall},
    }
    return {"rules": layer, "isolation_forest": layer, "autoencoder": layer, "ensemble": ensemble}


def test_goal_checks_name_each_failure():
    assert all(c.passed for c in check_goals(_report()))
    failed = {c.goal for c in check_goals(_report(0.3, float("nan"), 0.5)) if not c.passed}
    assert failed == {
        "ensemble PR-AUC",
        "block precision",
        "velocity_burst recall at 2%",
        "ensemble PR-AUC above every single layer",
    }
    lenient = SimulationGoals(min_pr_auc=0.2, ensemble_beats_layers_on_pr_auc=False)
    assert {c.goal for c in check_goals(_report(0.3), lenient) if not c.passed} == set()


def test_settings_put_the_test_week_on_a_weekly_partition_boundary():
    settings = SimulationSettings(users=10, days=35)
    assert settings.test_start == datetime(2026, 2, 22, 2, tzinfo=UTC)
    assert settings.start == datetime(2026, 1, 25, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="three weeks"):
        SimulationSettings(days=20)
    with pytest.raises(ValueError, match="Sunday"):
        SimulationSettings(end=datetime(2026, 3, 2, 2, tzinfo=UTC))


def test_evaluate_command_is_registered():
    from fraud_assets.cli import build_parser

    args = build_parser().parse_args(["evaluate", "--users", "50", "--public-seeds", "0"])
    assert (args.users, args.public_seeds, args.days) == (50, 0, SimulationSettings().days)
