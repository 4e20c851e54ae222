"""Threshold strategies: where an anomaly score becomes an alert.

Every detector flags a row when its anomaly score (higher = more anomalous) is
strictly greater than its threshold, so a strategy only has to pick one number
from a sample of scores. The strategies are the seed's: a percentile of the
training scores, mean + k·std, the F1-optimal (or ROC/Youden-optimal) cut when
labels exist, and a business cap on the share of rows sent to review.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

ThresholdKind = Literal["percentile", "mean_std", "f1_optimal", "youden", "max_alert_rate"]

DEFAULT_PARAMS: dict[str, dict[str, float]] = {
    "percentile": {"q": 95.0},
    "mean_std": {"k": 3.0},
    "f1_optimal": {},
    "youden": {},
    "max_alert_rate": {"rate": 0.01},
}
NEEDS_LABELS = frozenset({"f1_optimal", "youden"})


@dataclass(frozen=True)
class ThresholdStrategy:
    """Which rule picks the threshold, and its parameters.

    * ``percentile``: ``q``-th percentile of the scores (linear interpolation, default 95).
    * ``mean_std``: ``mean + k * std`` (population std, default k = 3).
    * ``f1_optimal``: the cut with the best F1 against ``labels`` (1 = fraud).
    * ``youden``: the cut with the best ROC Youden J (TPR - FPR) against ``labels``.
    * ``max_alert_rate``: the lowest cut that flags at most ``rate`` of the rows.

    Label-based and rate-based cuts sit halfway between the last flagged score and
    the next one down, so new data just above the flagged tail is treated alike.
    """

    kind: ThresholdKind = "percentile"
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in DEFAULT_PARAMS:
            raise ValueError(
                f"unknown threshold kind {self.kind!r}; expected one of {sorted(DEFAULT_PARAMS)}"
            )
        unknown = set(self.params) - set(DEFAULT_PARAMS[self.kind])
        if unknown:
            raise ValueError(f"{self.kind} takes no parameter(s) {sorted(unknown)}")
        merged = {**DEFAULT_PARAMS[self.kind], **{k: float(v) for k, v in self.params.items()}}
        object.__setattr__(self, "params", merged)
        if self.kind == "percentile" and not 0.0 <= merged["q"] <= 100.0:
            raise ValueError("percentile q must be within [0, 100]")
        if self.kind == "max_alert_rate" and not 0.0 <= merged["rate"] <= 1.0:
            raise ValueError("max_alert_rate rate must be within [0, 1]")

    @classmethod
    def percentile(cls, q: float = 95.0) -> ThresholdStrategy:
        return cls("percentile", {"q": q})

    @classmethod
    def mean_std(cls, k: float = 3.0) -> ThresholdStrategy:
        return cls("mean_std", {"k": k})

    @classmethod
    def f1_optimal(cls) -> ThresholdStrategy:
        return cls("f1_optimal")

    @classmethod
    def youden(cls) -> ThresholdStrategy:
        return cls("youden")

    @classmethod
    def max_alert_rate(cls, rate: float = 0.01) -> ThresholdStrategy:
        return cls("max_alert_rate", {"rate": rate})

    @property
    def needs_labels(self) -> bool:
        return self.kind in NEEDS_LABELS

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ThresholdStrategy:
        return cls(data["kind"], dict(data.get("params") or {}))


def fit_threshold(
    scores: np.ndarray,
    strategy: ThresholdStrategy | None = None,
    labels: np.ndarray | None = None,
) -> float:
    """One threshold for ``scores`` (higher = more anomalous); flag where score > threshold."""
    strategy = strategy or ThresholdStrategy()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError("cannot fit a threshold on zero scores")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    params = strategy.params
    if strategy.kind == "percentile":
        return float(np.percentile(scores, params["q"]))
    if strategy.kind == "mean_std":
        return float(scores.mean() + params["k"] * scores.std())
    if strategy.kind == "max_alert_rate":
        return _max_alert_rate_threshold(scores, params["rate"])
    if labels is None:
        raise ValueError(f"threshold strategy {strategy.kind!r} needs labels")
    labels = np.asarray(labels).ravel().astype(bool)
    if labels.shape != scores.shape:
        raise ValueError("labels and scores must have the same length")
    if labels.all() or not labels.any():
        raise ValueError(f"{strategy.kind!r} needs both fraud and normal labels")
    return _label_optimal_threshold(scores, labels, strategy.kind)


def _cut_between(sorted_desc: np.ndarray, n_flagged: int) -> float:
    """Threshold flagging exactly the top ``n_flagged`` of distinct-boundary sorted scores."""
    if n_flagged <= 0:
        return float(sorted_desc[0])
    if n_flagged >= sorted_desc.size:
        return float(np.nextafter(sorted_desc[-1], -np.inf))
    return float((sorted_desc[n_flagged - 1] + sorted_desc[n_flagged]) / 2.0)


def _max_alert_rate_threshold(scores: np.ndarray, rate: float) -> float:
    sorted_desc = np.sort(scores)[::-1]
    allowed = int(np.floor(rate * scores.size + 1e-9))
    # Ties straddling the cut cannot be split: step back to the last clean boundary.
    while 0 < allowed < scores.size and sorted_desc[allowed - 1] == sorted_desc[allowed]:
        allowed -= 1
    return _cut_between(sorted_desc, allowed)


def _label_optimal_threshold(scores: np.ndarray, labels: np.ndarray, kind: str) -> float:
    order = np.argsort(-scores, kind="stable")
    sorted_desc = scores[order]
    tp = np.cumsum(labels[order])
    fp = np.arange(1, scores.size + 1) - tp
    # Only cuts between distinct scores are realisable.
    boundary = np.r_[sorted_desc[1:] != sorted_desc[:-1], True]
    n_pos = labels.sum()
    n_neg = labels.size - n_pos
    if kind == "f1_optimal":
        objective = 2.0 * tp / (np.arange(1, scores.size + 1) + n_pos)
    else:
        objective = tp / n_pos - fp / n_neg
    objective = np.where(boundary, objective, -np.inf)
    best = int(np.argmax(objective))
    return _cut_between(sorted_desc, best + 1)
