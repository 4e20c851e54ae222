"""Every candidate penalty of the ensemble combiner on one trained week.

The weekly training chooses how hard the combiner is pulled toward its prior
on the validation split (``detectors/stacking.py``). This shows that choice
beside what each candidate would have done: per penalty, the combiner
refitted on the training split (the models stay as trained), its log loss on
the validation split, and the ensemble's goals on the scored days.
``fraud-assets evaluate --penalty-sweep`` prints it after the simulation report.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from fraud_assets.assets.training_steps import layer_outputs
from fraud_assets.detectors.stacking import (
    L2_GRID,
    PenaltyChoice,
    StackedCombiner,
    default_unless_clearly_beaten,
)
from fraud_assets.evaluation.simulation import TrainedWeek, check_goals, measure
from fraud_assets.evaluation.tables import SCENARIO_KEY


@dataclass(frozen=True)
class PenaltyRow:
    l2: float
    validation_log_loss: float
    chosen: bool  # the rule's choice (the default unless clearly beaten)
    scored: dict  # the scored days' ensemble metrics with this penalty
    failed_goals: list[str]


def sweep(
    week: TrainedWeek, grid: tuple[float, ...] = L2_GRID
) -> tuple[list[PenaltyRow], PenaltyChoice]:
    """One row per penalty in ``grid``, and the rule's choice (the bundle is left as it was)."""
    bundle = week.bundle
    train = week.training.filter(pl.col("split") == "train")
    held_rows = week.training.filter(pl.col("split") == "validation")
    if held_rows.height == 0:
        raise ValueError("the training window has no validation split to judge penalties on")
    fitting = layer_outputs(bundle, train)
    held = layer_outputs(bundle, held_rows)
    trained = bundle.thresholds.combiner
    losses, reports = {}, {}
    try:
        for l2 in grid:
            combiner = StackedCombiner(l2=l2).fit(*fitting, bundle.rules.points)
            losses[l2] = combiner.log_loss_rows(*held)
            bundle.thresholds.combiner = combiner
            reports[l2] = measure(bundle, week.scored)
    finally:
        bundle.thresholds.combiner = trained
    choice = default_unless_clearly_beaten(losses, "validation split")
    rows = [
        PenaltyRow(
            l2,
            choice.losses[l2],
            l2 == choice.l2,
            reports[l2]["ensemble"],
            [check.goal for check in check_goals(reports[l2]) if not check.passed],
        )
        for l2 in grid
    ]
    return rows, choice


def sweep_table(rows: list[PenaltyRow], choice: PenaltyChoice) -> str:
    """The sweep as markdown, the rule's choice in bold, and the choice explained."""
    lines = [
        "| L2 | validation log loss | above the best | PR-AUC | ROC-AUC | block precision | "
        "recall at 2 % | lowest scenario at 2 % | goals missed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    best = min(row.validation_log_loss for row in rows)
    for row in rows:
        scenarios = row.scored[SCENARIO_KEY]
        lowest = min(scenarios, key=scenarios.get) if scenarios else ""
        l2 = f"**{row.l2:g}**" if row.chosen else f"{row.l2:g}"
        lines.append(
            f"| {l2} | {row.validation_log_loss:.5f} | {row.validation_log_loss - best:.5f} | "
            f"{row.scored['pr_auc']:.3f} | {row.scored['roc_auc']:.3f} | "
            f"{row.scored['block_precision']:.3f} | {row.scored['recall_at_2.0%']:.3f} | "
            f"{scenarios.get(lowest, float('nan')):.3f} {lowest} | "
            f"{', '.join(row.failed_goals) or '—'} |"
        )
    return "\n".join([*lines, "", f"Chosen: {choice.describe()}."])
