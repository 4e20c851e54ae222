"""Detection metrics shared by validation, the A/B test, evaluation and monitoring.

Pure functions over arrays: labels (1 = fraud), scores (higher = riskier) and
boolean alerts. Undefined values (no positives, no alerts) are reported as NaN
rather than a flattering 0 or 1.
"""

from __future__ import annotations

import math

import numpy as np

REVIEW_BUDGETS: tuple[float, ...] = (0.005, 0.01, 0.02)


def _safe_div(num: float, den: float) -> float:
    return float(num) / float(den) if den else math.nan


def alert_metrics(labels: np.ndarray, alerts: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1 and counts of a yes/no alert against labels."""
    labels = np.asarray(labels).astype(bool)
    alerts = np.asarray(alerts).astype(bool)
    tp = int(np.sum(labels & alerts))
    fp = int(np.sum(~labels & alerts))
    fn = int(np.sum(labels & ~alerts))
    precision = _safe_div(tp, tp + fp)
    recall = _safe_div(tp, tp + fn)
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision + recall > 0 and not math.isnan(precision + recall)
        else math.nan
    )
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "alert_rate": _safe_div(int(alerts.sum()), len(alerts)),
    }


def ranking_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision) and recall at fixed review budgets."""
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=float)
    from sklearn.metrics import average_precision_score, roc_auc_score  # slow import: keep it lazy

    result: dict[str, float] = {"roc_auc": math.nan, "pr_auc": math.nan}
    if 0 < labels.sum() < len(labels):
        result["roc_auc"] = float(roc_auc_score(labels, scores))
        result["pr_auc"] = float(average_precision_score(labels, scores))
    for budget in REVIEW_BUDGETS:
        result[f"recall_at_{budget:.1%}"] = recall_at_budget(labels, scores, budget)
    return result


def top_budget_share(scores: np.ndarray, budget: float) -> np.ndarray:
    """Per row, the chance of being among the top ``budget`` fraction when reviewed by score.

    Rows above the cut count 1, rows below 0; rows tied with the cut share the
    remaining review slots equally, which is the expectation under a random
    order of ties (coarse scores, e.g. the rules' points, tie a lot).
    """
    scores = np.asarray(scores, dtype=float)
    n = len(scores)
    if n == 0:
        return np.zeros(0)
    k = min(n, max(1, int(math.ceil(budget * n))))
    cut = np.partition(scores, n - k)[n - k]
    share = (scores > cut).astype(float)
    tied = scores == cut
    share[tied] = (k - share.sum()) / tied.sum()
    return share


def recall_at_budget(labels: np.ndarray, scores: np.ndarray, budget: float) -> float:
    """Share of frauds among the top ``budget`` fraction of transactions by score (ties shared)."""
    labels = np.asarray(labels).astype(bool)
    if not labels.any():
        return math.nan
    return float(top_budget_share(scores, budget)[labels].sum() / labels.sum())


def per_scenario_recall(
    fraud_types: np.ndarray, labels: np.ndarray, alerts: np.ndarray
) -> dict[str, float]:
    """Recall of each labelled fraud scenario."""
    fraud_types = np.asarray(fraud_types, dtype=object)
    labels = np.asarray(labels).astype(bool)
    alerts = np.asarray(alerts).astype(bool)
    out: dict[str, float] = {}
    for scenario in sorted({t for t in fraud_types[labels] if t}):
        mask = labels & (fraud_types == scenario)
        out[scenario] = float(alerts[mask].mean())
    return out


def scenario_recall_at_budget(
    fraud_types: np.ndarray, labels: np.ndarray, scores: np.ndarray, budget: float
) -> dict[str, float]:
    """Recall of each labelled fraud scenario among the top ``budget`` fraction by score."""
    fraud_types = np.asarray(fraud_types, dtype=object)
    labels = np.asarray(labels).astype(bool)
    share = top_budget_share(scores, budget)
    return {
        scenario: float(share[labels & (fraud_types == scenario)].mean())
        for scenario in sorted({t for t in fraud_types[labels] if t})
    }
