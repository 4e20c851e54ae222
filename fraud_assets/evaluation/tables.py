"""Markdown tables of detection metrics, shared by validation metadata, the evaluate command and
the README, so every place shows the same columns."""

from __future__ import annotations

import math
from typing import Any

from fraud_assets.evaluation.metrics import REVIEW_BUDGETS

LAYERS: tuple[str, ...] = ("rules", "isolation_forest", "autoencoder", "ensemble")
SCENARIO_BUDGET = 0.02
SCENARIO_KEY = f"scenario_recall_at_{SCENARIO_BUDGET:.1%}"


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}"


def layer_table(report: dict[str, Any]) -> str:
    """Per layer: ranking quality, the operating point, review budgets and block precision."""
    budgets = [f"recall@{b:.1%}" for b in REVIEW_BUDGETS]
    head = ["layer", "ROC-AUC", "PR-AUC", "precision", "recall", "F1", "alert rate", *budgets]
    lines = ["| " + " | ".join(head) + " | block precision |", "|---" * (len(head) + 1) + "|"]
    for name in LAYERS:
        m = report[name]
        cells = [m["roc_auc"], m["pr_auc"], m["precision"], m["recall"], m["f1"], m["alert_rate"]]
        cells += [m[f"recall_at_{b:.1%}"] for b in REVIEW_BUDGETS]
        block = fmt(m.get("block_precision")) if name == "ensemble" else "—"
        lines.append(f"| {name} | " + " | ".join(fmt(c) for c in cells) + f" | {block} |")
    return "\n".join(lines)


def scenario_table(report: dict[str, Any]) -> str:
    """Recall per fraud scenario at the 2% review budget, per layer."""
    counts = report.get("frauds_by_scenario", {})
    scenarios = list(counts) or list(report["ensemble"].get(SCENARIO_KEY, {}))
    lines = [
        "| scenario | frauds | " + " | ".join(LAYERS) + " |",
        "|---" * (len(LAYERS) + 2) + "|",
    ]
    for scenario in scenarios:
        recalls = [report[name].get(SCENARIO_KEY, {}).get(scenario) for name in LAYERS]
        lines.append(
            f"| {scenario} | {counts.get(scenario, '')} | "
            + " | ".join(fmt(r) for r in recalls)
            + " |"
        )
    return "\n".join(lines)
