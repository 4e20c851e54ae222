"""Monotone maps of the ensemble's 0–100 risk: stable scores across versions and capacity cuts.

A retrained ensemble puts the same traffic at other risks than the active
one, so "risk 70" would mean something else after every promotion. A
``ScoreMapping`` is a strictly increasing piecewise-linear map of [0, 100]
onto itself, applied to the total risk before the review and block lines:

* ``fit_quantile_mapping``: the candidate's risk quantiles on the training
  window go onto the active bundle's risk quantiles on the same traffic, so
  a version flags about the share of traffic the previous one flagged;
* ``capacity_mapping``: the risk cuts chosen from review capacity and a
  block-precision target (``capacity_cuts``) go onto the review and block lines.

Both keep the order of transactions (rank), so ranking metrics are unchanged;
only where the lines fall moves. Pure: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

LOW, HIGH = 0.0, 100.0
# Share of the identity blended into a fitted map: distinct risks stay distinct
# (strictly increasing) at a cost of at most 0.01 risk points.
_IDENTITY_SHARE = 1e-4


@dataclass(frozen=True)
class ScoreMapping:
    """Piecewise-linear map through (source[i], target[i]); both strictly increasing, 0→0, 100→100."""

    source: tuple[float, ...]
    target: tuple[float, ...]
    description: str = ""

    def __post_init__(self) -> None:
        source, target = np.asarray(self.source), np.asarray(self.target)
        if source.shape != target.shape or source.size < 2:
            raise ValueError("a score mapping needs matching source and target knots (≥ 2)")
        if not (np.all(np.diff(source) > 0) and np.all(np.diff(target) > 0)):
            raise ValueError("score mapping knots must be strictly increasing")
        if (source[0], source[-1], target[0], target[-1]) != (LOW, HIGH, LOW, HIGH):
            raise ValueError("a score mapping must map 0 to 0 and 100 to 100")

    def transform(self, risk: Any) -> np.ndarray:
        values = np.clip(np.asarray(risk, dtype=np.float64), LOW, HIGH)
        return np.interp(values, self.source, self.target)

    def inverse(self, risk: Any) -> np.ndarray:
        values = np.clip(np.asarray(risk, dtype=np.float64), LOW, HIGH)
        return np.interp(values, self.target, self.source)

    def then(self, outer: ScoreMapping) -> ScoreMapping:
        """``outer ∘ self``: exact, since both are piecewise linear."""
        knots = np.union1d(self.source, self.inverse(outer.source))
        return ScoreMapping(
            tuple(knots.tolist()),
            tuple(outer.transform(self.transform(knots)).tolist()),
            f"{self.description}; {outer.description}",
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": list(self.source),
            "target": list(self.target),
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreMapping:
        return cls(
            tuple(float(v) for v in data["source"]),
            tuple(float(v) for v in data["target"]),
            str(data.get("description", "")),
        )


def _strict(source: np.ndarray, target: np.ndarray, description: str) -> ScoreMapping:
    """Merge equal source knots, then make the targets strictly increasing."""
    source = np.clip(np.asarray(source, dtype=np.float64), LOW, HIGH)
    target = np.clip(np.asarray(target, dtype=np.float64), LOW, HIGH)
    source, target = np.r_[LOW, source, HIGH], np.r_[LOW, target, HIGH]
    knots, group = np.unique(source, return_inverse=True)
    merged = np.array([np.median(target[group == i]) for i in range(knots.size)])
    merged = np.maximum.accumulate(merged)
    merged[0], merged[-1] = LOW, HIGH
    merged = (1.0 - _IDENTITY_SHARE) * merged + _IDENTITY_SHARE * knots
    return ScoreMapping(tuple(knots.tolist()), tuple(merged.tolist()), description)


def fit_quantile_mapping(risk: Any, reference: Any, knots: int = 201) -> ScoreMapping:
    """Map ``risk``'s quantiles onto ``reference``'s (both scored on the same traffic)."""
    risk = np.asarray(risk, dtype=np.float64).ravel()
    reference = np.asarray(reference, dtype=np.float64).ravel()
    if risk.size == 0 or reference.size == 0:
        raise ValueError("a quantile mapping needs risks and reference risks")
    if not (np.isfinite(risk).all() and np.isfinite(reference).all()):
        raise ValueError("risks must be finite")
    # Even steps up to the 99th percentile, then geometric ones into the tail,
    # where the block line sits.
    probabilities = np.union1d(
        np.linspace(0.0, 0.99, knots // 2), 1.0 - np.geomspace(0.01, 1e-5, knots - knots // 2)
    )
    probabilities = np.r_[probabilities[probabilities < 1.0], 1.0]
    return _strict(
        np.quantile(risk, probabilities),
        np.quantile(reference, probabilities),
        f"quantile mapping onto the reference ({probabilities.size} knots, {risk.size} rows)",
    )


@dataclass(frozen=True)
class CapacityCuts:
    """Risk cuts (in the input scale) that become the review and block lines, and why."""

    review_cut: float
    block_cut: float
    notes: tuple[str, ...]


def _cut_below(sorted_desc: np.ndarray, n: int) -> float:
    """A cut that leaves exactly the top ``n`` of ``sorted_desc`` above it (halfway to the next)."""
    if n <= 0:
        return float(sorted_desc[0]) if sorted_desc.size else HIGH
    if n >= sorted_desc.size:
        return float(sorted_desc[-1]) / 2.0
    return float((sorted_desc[n - 1] + sorted_desc[n]) / 2.0)


def capacity_cuts(
    risk: Any,
    is_fraud: Any,
    hours: float,
    *,
    review_capacity_per_hour: float | None = None,
    block_precision_target: float | None = None,
    review_line: float = 30.0,
    block_line: float = 70.0,
    rows_per_row: float = 1.0,
) -> CapacityCuts:
    """Where the review and block lines should sit on ``risk`` for the given capacity and target.

    Block: the lowest cut whose blocked rows (above it) have labelled precision
    ≥ ``block_precision_target``; unreachable → the block line stays. Review:
    the cut under the block cut that sends about ``review_capacity_per_hour``
    transactions an hour to review (``rows_per_row`` scales a subsample back to
    the traffic). Unset options leave their line where the risk scale puts it.
    """
    risk = np.asarray(risk, dtype=np.float64).ravel()
    labels = np.asarray(is_fraud).ravel().astype(bool)
    if risk.shape != labels.shape or risk.size == 0:
        raise ValueError("capacity cuts need one label per risk and at least one row")
    if hours <= 0:
        raise ValueError("capacity cuts need a positive number of hours")
    order = np.argsort(-risk, kind="stable")
    ranked, hits = risk[order], labels[order]
    notes = []
    block_cut = block_line
    if block_precision_target is not None:
        precision = np.cumsum(hits) / np.arange(1, risk.size + 1)
        boundary = np.r_[ranked[1:] != ranked[:-1], True]  # only cuts between distinct risks
        reaching = np.flatnonzero((precision >= block_precision_target) & boundary)
        if reaching.size:
            blocked = int(reaching[-1]) + 1
            block_cut = _cut_below(ranked, blocked)
            notes.append(
                f"block above risk {block_cut:.2f}: precision {precision[blocked - 1]:.3f} "
                f"≥ target {block_precision_target} on {blocked} labelled rows"
            )
        else:
            notes.append(
                f"block-precision target {block_precision_target} not reached on the labelled "
                f"rows: block line kept at {block_line:g}"
            )
    review_cut = min(review_line, block_cut)
    if review_capacity_per_hour is not None:
        below = ranked[ranked <= block_cut]
        allowed = int(review_capacity_per_hour * hours / rows_per_row)
        review_cut = _cut_below(below, allowed) if below.size else block_cut
        notes.append(
            f"review from risk {review_cut:.2f}: about {min(allowed, below.size) * rows_per_row / hours:.1f} "
            f"reviews/hour for a capacity of {review_capacity_per_hour:g}"
        )
    span = HIGH - LOW
    block_cut = float(np.clip(block_cut, LOW + 2e-6 * span, HIGH - 1e-6 * span))
    review_cut = float(np.clip(review_cut, LOW + 1e-6 * span, block_cut - 1e-6 * span))
    return CapacityCuts(review_cut, block_cut, tuple(notes))


def capacity_mapping(
    cuts: CapacityCuts, review_line: float = 30.0, block_line: float = 70.0
) -> ScoreMapping:
    """The map that puts ``cuts.review_cut`` on the review line and ``cuts.block_cut`` on the block line."""
    return ScoreMapping(
        (LOW, cuts.review_cut, cuts.block_cut, HIGH),
        (LOW, review_line, block_line, HIGH),
        f"capacity cuts {cuts.review_cut:.2f}→{review_line:g}, {cuts.block_cut:.2f}→{block_line:g}",
    )
