"""Ensemble decision: three layers' risks → one 0–100 risk, a decision and its reasons.

Inputs per row: the statistical risk (0–100), each model's calibrated risk
(0–100, see ``ScoreCalibrator``) and each model's 1 / -1 prediction against its
own threshold, plus the fired rule flags. Strategies:

* ``weighted_sum`` (seed default): ``total = w_stat·stat + w_iso·iso + w_ae·ae``,
  clipped to [0, 100]. The default weights (0.4, 0.3, 0.3) sum to 1, so the
  total stays a weighted mean on the 0–100 scale; weights (1, 1, 1) give the
  seed's literal ``stat + iso + ae`` (then clipped).
* ``voting``: each layer casts a vote — the statistical layer when any rule
  fired, each model when its prediction is -1 — and
  ``total = 100 · Σ w·vote / Σ w``. With equal weights: no vote → 0
  (approved), one or two → 33.3 / 66.7 (review), all three → 100 (blocked).
* ``sequential`` (seed's AE → IF): the autoencoder screens every row; the
  Isolation Forest only confirms, contributing ``w_iso·iso`` solely to rows the
  autoencoder flagged (``ae_pred == -1``). Rows the autoencoder passes get
  ``w_stat·stat + w_ae·ae``; their ``iso_risk`` may be NaN, so a caller may
  skip the forest on them.

* fitted (``stacker``, see ``stacking.py``): when the model bundle carries a
  ``StackedCombiner`` fitted on labelled training rows, it replaces the
  strategy: ``total`` is P(fraud | rule flags, model risks) on a log-odds
  scale where ``approve_below`` (30) means 5 % likely and ``block_above``
  (70) means 70 % likely. The configured strategy remains the fallback for
  bundles trained without enough labels.

A bundle may carry a ``ScoreMapping`` (``score_mapping.py``): a monotone map
of the total onto the previous version's risk scale and the capacity cuts,
applied before the decision.

Decision from the total: ``approved`` if ``total < approve_below`` (30),
``blocked`` if ``total > block_above`` (70), otherwise ``review`` (30 and 70
both review). Reasons per row: ``rule:<flag>`` for each fired rule, then
``model:isolation_forest`` / ``model:autoencoder`` for each model over its
threshold (for ``sequential``, the forest only where it was consulted).
``flags`` may be the per-row lists from ``StatisticalRules.evaluate`` or the
``RuleMatrix`` from ``evaluate_matrix`` (faster: reasons are then built once
per distinct combination).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from fraud_assets.detectors.rules import RuleMatrix, gc_paused, rule_codes

Strategy = Literal["weighted_sum", "voting", "sequential"]
APPROVED, REVIEW, BLOCKED = "approved", "review", "blocked"
ISO_REASON = "model:isolation_forest"
AE_REASON = "model:autoencoder"
RULE_PREFIX = "rule:"


@dataclass(frozen=True)
class EnsembleConfig:
    strategy: Strategy = "weighted_sum"
    stat_weight: float = 0.4
    iso_weight: float = 0.3
    ae_weight: float = 0.3
    approve_below: float = 30.0
    block_above: float = 70.0

    def __post_init__(self) -> None:
        if self.strategy not in ("weighted_sum", "voting", "sequential"):
            raise ValueError(f"unknown ensemble strategy {self.strategy!r}")
        weights = (self.stat_weight, self.iso_weight, self.ae_weight)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("ensemble weights must be non-negative with a positive sum")
        if not 0 <= self.approve_below <= self.block_above <= 100:
            raise ValueError("need 0 <= approve_below <= block_above <= 100")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EnsembleResult:
    total_risk: np.ndarray
    decision: np.ndarray
    reasons: list[list[str]]

    def counts(self) -> dict[str, int]:
        return {d: int(np.count_nonzero(self.decision == d)) for d in (APPROVED, REVIEW, BLOCKED)}


class EnsembleCombiner:
    def __init__(
        self, config: EnsembleConfig | None = None, stacker: Any = None, score_map: Any = None
    ) -> None:
        self.config = config or EnsembleConfig()
        self.stacker = stacker  # a fitted StackedCombiner, or None for the configured strategy
        self.score_map = score_map  # a ScoreMapping applied to the total before the lines

    def combine(
        self,
        stat_risk: Any,
        iso_risk: Any,
        ae_risk: Any,
        iso_pred: Any,
        ae_pred: Any,
        flags: Sequence[Sequence[str]] | RuleMatrix | None = None,
    ) -> EnsembleResult:
        cfg = self.config
        stat = _column(stat_risk)
        iso = _column(iso_risk)
        ae = _column(ae_risk)
        n = stat.size
        iso_flag = _column(iso_pred, n) == -1
        ae_flag = _column(ae_pred, n) == -1
        if not (iso.size == ae.size == n):
            raise ValueError("all ensemble inputs must have one value per row")
        if isinstance(flags, RuleMatrix):
            if flags.fired.shape[0] != n:
                raise ValueError("flags must have one entry per row")
        elif flags is not None and len(flags) != n:
            raise ValueError("flags must have one entry per row")
        iso_consulted = np.ones(n, dtype=bool)

        if self.stacker is not None:
            fired, names = _fired_matrix(flags, n)
            total = self.stacker.risk_points(
                fired, names, iso, ae, cfg.approve_below, cfg.block_above
            )
        elif cfg.strategy == "weighted_sum":
            total = cfg.stat_weight * stat + cfg.iso_weight * iso + cfg.ae_weight * ae
        elif cfg.strategy == "voting":
            if isinstance(flags, RuleMatrix):
                rule_vote = flags.fired.any(axis=1)
            elif flags is not None:
                rule_vote = np.fromiter((len(f) > 0 for f in flags), dtype=bool, count=n)
            else:
                rule_vote = stat > 0
            votes = (
                cfg.stat_weight * rule_vote + cfg.iso_weight * iso_flag + cfg.ae_weight * ae_flag
            )
            total = 100.0 * votes / (cfg.stat_weight + cfg.iso_weight + cfg.ae_weight)
        else:
            iso_consulted = ae_flag
            iso_part = np.where(iso_consulted, np.nan_to_num(iso, nan=0.0), 0.0)
            total = cfg.stat_weight * stat + cfg.ae_weight * ae + cfg.iso_weight * iso_part
            iso_flag = iso_flag & iso_consulted

        if np.isnan(total).any():
            raise ValueError("risk inputs contain NaN")
        total = np.clip(total, 0.0, 100.0)
        if self.score_map is not None:
            total = self.score_map.transform(total)
        decision = np.full(n, REVIEW, dtype=object)
        decision[total < cfg.approve_below] = APPROVED
        decision[total > cfg.block_above] = BLOCKED
        with gc_paused():
            reasons = _reasons(flags, iso_flag, ae_flag, n)
        return EnsembleResult(total, decision, reasons)


def _fired_matrix(
    flags: Sequence[Sequence[str]] | RuleMatrix | None, n: int
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Rule flags as a (rows, rules) boolean matrix and its column names."""
    if isinstance(flags, RuleMatrix):
        return flags.fired, tuple(flags.names)
    if flags is None:
        return np.zeros((n, 0), dtype=bool), ()
    names = tuple(sorted({flag for row in flags for flag in row}))
    index = {name: j for j, name in enumerate(names)}
    fired = np.zeros((n, len(names)), dtype=bool)
    for i, row in enumerate(flags):
        for flag in row:
            fired[i, index[flag]] = True
    return fired, names


def _column(values: Any, n: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if n is not None and array.size != n:
        raise ValueError("all ensemble inputs must have one value per row")
    return array


def _reasons(
    flags: Sequence[Sequence[str]] | RuleMatrix | None,
    iso_flag: np.ndarray,
    ae_flag: np.ndarray,
    n: int,
) -> list[list[str]]:
    model_reasons = ([], [ISO_REASON], [AE_REASON], [ISO_REASON, AE_REASON])
    model_code = iso_flag.astype(np.int64) + 2 * ae_flag.astype(np.int64)
    if flags is None:
        return [[*model_reasons[c]] for c in model_code.tolist()]
    if isinstance(flags, RuleMatrix):
        codes = rule_codes(flags.fired) * 4 + model_code
        table = {}
        for code in np.flatnonzero(np.bincount(codes, minlength=1)).tolist():
            rules = [
                RULE_PREFIX + name for j, name in enumerate(flags.names) if (code >> (j + 2)) & 1
            ]
            table[code] = rules + model_reasons[code & 3]
        return [[*table[c]] for c in codes.tolist()]
    prefixed: dict[str, str] = {}
    reasons = []
    append = reasons.append
    for row_flags, c in zip(flags, model_code.tolist(), strict=True):
        if not row_flags:
            append([*model_reasons[c]])
            continue
        row = []
        for flag in row_flags:
            label = prefixed.get(flag)
            if label is None:
                label = prefixed[flag] = RULE_PREFIX + flag
            row.append(label)
        append(row + model_reasons[c])
    return reasons
