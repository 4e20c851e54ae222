"""The fraud-simulation check at CI scale: generate, train with the training graph, score the
following week, and fail when detection quality regresses.

600 customers over 35 days give about 5,000 scored transactions with some 35 frauds, so the
floors sit below the goals the full run meets (README, "Detection quality") but well above
what the untuned system reached (ensemble PR-AUC 0.18, recall 0.34 at a 2% review budget).
"""

from __future__ import annotations

import json

import pytest

from fraud_assets.evaluation.simulation import (
    LAYERS,
    SimulationGoals,
    SimulationSettings,
    check_goals,
    format_report,
    run_simulation,
)

CI_SETTINGS = SimulationSettings(users=600, days=35, epochs=3, n_estimators=100)
CI_FLOORS = SimulationGoals(
    min_pr_auc=0.6,
    min_roc_auc=0.97,
    min_block_precision=0.8,
    min_recall_at_2pct=0.8,
    min_scenario_recall_at_2pct=0.5,
)
MIN_SCENARIO_FRAUDS = 5  # fewer and one miss moves the recall by a fifth or more


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return run_simulation(CI_SETTINGS, workdir=tmp_path_factory.mktemp("simulation"), log=print)


def test_ensemble_meets_the_ci_floors_on_the_scored_week(result):
    test = result.test
    print(format_report(result))
    assert test["frauds"] >= 20 and test["rows"] > 3000
    small = {s for s, n in test["frauds_by_scenario"].items() if n < MIN_SCENARIO_FRAUDS}
    failures = [
        f"{c.goal}: {c.value:.3f} (needs {c.target})"
        for c in check_goals(test, CI_FLOORS)
        if not c.passed and c.goal.removesuffix(" recall at 2%") not in small
    ]
    assert not failures, failures
    assert test["decisions"]["blocked"] > 0


def test_every_layer_is_measured_and_the_combiner_is_fitted(result):
    for name in LAYERS:
        metrics = result.test[name]
        assert 0.5 < metrics["roc_auc"] <= 1.0, name
        assert set(metrics["scenario_recall_at_2.0%"]) == set(result.test["frauds_by_scenario"])
    assert result.test["ensemble"]["pr_auc"] > max(
        result.test[name]["pr_auc"] for name in LAYERS[:-1]
    )


def test_result_serialises_without_its_frames(result):
    data = json.loads(json.dumps(result.to_dict()))  # what `evaluate --json` writes
    assert set(data) == {"settings", "test", "validation", "data", "seconds"}
    assert (
        data["data"]["combiner_l2"] == result.frames.bundle.thresholds.combiner.penalty_.describe()
    )
    assert result.frames.scored.height == data["test"]["rows"]


def test_validation_report_of_the_training_graph_carries_budgets_and_scenarios(result):
    validation = result.validation
    assert validation["validation_frauds"] > 0
    ensemble = validation["ensemble"]
    for key in ("recall_at_0.5%", "recall_at_1.0%", "recall_at_2.0%", "block_precision"):
        assert key in ensemble
    assert ensemble["scenario_recall_at_2.0%"]
    assert validation["frauds_by_scenario"]


def test_penalty_sweep_refits_only_the_combiner_and_reproduces_the_trained_one(result):
    from fraud_assets.detectors.stacking import L2
    from fraud_assets.evaluation.penalty_sweep import sweep, sweep_table

    bundle = result.frames.bundle
    trained = bundle.thresholds.combiner
    rows, choice = sweep(result.frames)
    assert bundle.thresholds.combiner is trained  # the bundle is left as it was
    assert [row.l2 for row in rows] == sorted(row.l2 for row in rows)
    assert [row.l2 for row in rows if row.chosen] == [choice.l2]
    # The training chose its penalty on the same validation split, or kept the default
    # with too few labelled frauds there: its row is the scored result itself.
    method = trained.penalty_.method
    assert method == "validation split" or method.startswith("default: "), method
    if method == "validation split":
        assert trained.penalty_ == choice
    same = next(row for row in rows if row.l2 == trained.penalty_.l2)
    assert same.scored["pr_auc"] == result.test["ensemble"]["pr_auc"]
    assert same.scored["block_precision"] == result.test["ensemble"]["block_precision"]
    losses = {row.l2: row.validation_log_loss for row in rows}
    best = min(losses, key=losses.get)
    clearly_better = losses[L2] - losses[best] > choice.margin
    assert choice.l2 == (best if clearly_better else L2)
    table = sweep_table(rows, choice)
    print(table)
    assert f"**{choice.l2:g}**" in table and table.endswith(f"Chosen: {choice.describe()}.")
