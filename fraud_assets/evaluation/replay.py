"""The replay gate's comparison: two bundles' decisions on the same replayed traffic.

Both bundles decide every transaction of the replay window (the same rows,
the same features). Label metrics count only matured transactions (older
than the label delay, labels known at the window's end); review volume counts
the whole window. The candidate passes when it is not worse than the active
bundle beyond the tolerances. Pure: arrays in, numbers and text out.

A window too large for memory is replayed in chunks: each chunk's decisions
are added to a ``Tally`` (counts and exact amount sums) and dropped, so the
outcome, and hence the verdict, is the same whatever the chunking.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tolerances:
    """How much worse than the active bundle the candidate may be on the replay."""

    max_caught_drop: float = 0.05  # relative: matured frauds caught (review or block), count
    max_caught_amount_drop: float = 0.05  # relative: amount of those frauds
    max_fp_rate_increase: float = 0.002  # absolute: flagged legitimate / legitimate
    max_review_increase: float = 0.25  # relative: reviews per hour
    max_block_precision_drop: float = 0.10  # absolute
    min_frauds: int = 10  # matured frauds needed before label metrics are judged
    min_blocked: int = 30  # matured blocks each bundle needs before block precision is judged


@dataclass(frozen=True)
class Outcome:
    """What one bundle decided on the replay window."""

    version: str
    transactions: int
    hours: float
    matured: int
    frauds: int
    caught: int
    fraud_amount: float
    caught_amount: float
    false_positives: int
    legitimate: int
    reviews: int
    blocked: int
    blocked_matured: int
    blocked_frauds: int

    @property
    def fp_rate(self) -> float:
        return self.false_positives / self.legitimate if self.legitimate else math.nan

    @property
    def reviews_per_hour(self) -> float:
        return self.reviews / self.hours

    @property
    def block_precision(self) -> float:
        return self.blocked_frauds / self.blocked_matured if self.blocked_matured else math.nan

    @property
    def recall(self) -> float:
        return self.caught / self.frauds if self.frauds else math.nan

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "fp_rate": self.fp_rate,
            "reviews_per_hour": self.reviews_per_hour,
            "block_precision": self.block_precision,
            "recall": self.recall,
        }


def exact_sum(values: Any) -> Fraction:
    """The exact sum of float64 ``values``: partial sums add up to the one-pass sum, bit for bit.

    Each value is an integer mantissa times a power of two (``frexp``); the
    mantissas are summed per exponent as split 26-bit halves, which int64
    holds without overflow for up to 2**36 values.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(values).all():
        raise ValueError("amounts to sum must be finite")
    mantissa, exponent = np.frexp(values)
    integers = (mantissa * 2.0**53).astype(np.int64)
    total = Fraction(0)
    for power in np.unique(exponent).tolist():
        part = integers[exponent == power]
        whole = (int((part >> 26).sum()) << 26) + int((part & (2**26 - 1)).sum())
        total += Fraction(whole) * Fraction(2) ** (power - 53)
    return total


@dataclass
class Tally:
    """One bundle's sufficient statistics, added up chunk by chunk (see ``outcome``)."""

    transactions: int = 0
    matured: int = 0
    frauds: int = 0
    caught: int = 0
    fraud_amount: Fraction = field(default_factory=Fraction)
    caught_amount: Fraction = field(default_factory=Fraction)
    false_positives: int = 0
    legitimate: int = 0
    reviews: int = 0
    blocked: int = 0
    blocked_matured: int = 0
    blocked_frauds: int = 0

    def add(self, decision: Any, is_fraud: Any, amount: Any, matured: Any) -> Tally:
        """Count the ``decision`` (approved / review / blocked) of each row of one chunk."""
        decision = np.asarray(decision)
        matured = np.asarray(matured).astype(bool)
        fraud = np.asarray(is_fraud).astype(bool) & matured
        amount = np.asarray(amount, dtype=np.float64)
        if not decision.shape == matured.shape == fraud.shape == amount.shape:
            raise ValueError("decision, is_fraud, amount and matured need one value per row")
        flagged = decision != "approved"
        blocked = decision == "blocked"
        legitimate = matured & ~fraud
        self.transactions += int(decision.size)
        self.matured += int(matured.sum())
        self.frauds += int(fraud.sum())
        self.caught += int((flagged & fraud).sum())
        self.fraud_amount += exact_sum(amount[fraud])
        self.caught_amount += exact_sum(amount[flagged & fraud])
        self.false_positives += int((flagged & legitimate).sum())
        self.legitimate += int(legitimate.sum())
        self.reviews += int((decision == "review").sum())
        self.blocked += int(blocked.sum())
        self.blocked_matured += int((blocked & matured).sum())
        self.blocked_frauds += int((blocked & fraud).sum())
        return self

    def outcome(self, version: str, hours: float) -> Outcome:
        counts = asdict(self)
        amounts = {k: float(counts.pop(k)) for k in ("fraud_amount", "caught_amount")}
        return Outcome(version=version, hours=float(hours), **counts, **amounts)


def outcome(
    version: str,
    decision: Any,
    is_fraud: Any,
    amount: Any,
    matured: Any,
    hours: float,
) -> Outcome:
    """Counts of one bundle's ``decision`` (approved / review / blocked) per row."""
    return Tally().add(decision, is_fraud, amount, matured).outcome(version, hours)


@dataclass(frozen=True)
class Check:
    metric: str
    candidate: float
    active: float
    limit: float | None  # None: not judged (see note)
    passed: bool
    note: str = ""


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    checks: tuple[Check, ...]


def _floor(metric: str, cand: float, act: float, limit: float, note: str = "") -> Check:
    return Check(metric, cand, act, limit, bool(cand >= limit), note)


def _ceiling(metric: str, cand: float, act: float, limit: float, note: str = "") -> Check:
    return Check(metric, cand, act, limit, bool(cand <= limit), note)


def compare(candidate: Outcome, active: Outcome, tolerances: Tolerances) -> Verdict:
    """Judge the candidate against the active bundle on the same replayed rows."""
    t = tolerances
    checks = []
    if active.frauds >= t.min_frauds:
        checks += [
            _floor(
                "frauds caught",
                candidate.caught,
                active.caught,
                math.floor(active.caught * (1 - t.max_caught_drop)),  # a count: whole frauds
            ),
            _floor(
                "fraud amount caught",
                candidate.caught_amount,
                active.caught_amount,
                active.caught_amount * (1 - t.max_caught_amount_drop),
            ),
        ]
    else:
        checks.append(
            Check(
                "frauds caught",
                candidate.caught,
                active.caught,
                None,
                True,
                f"not judged: {active.frauds} matured frauds < {t.min_frauds}",
            )
        )
    checks.append(
        _ceiling(
            "false-positive rate",
            candidate.fp_rate,
            active.fp_rate,
            active.fp_rate + t.max_fp_rate_increase,
        )
        if candidate.legitimate and active.legitimate
        else Check("false-positive rate", math.nan, math.nan, None, True, "no matured rows")
    )
    checks.append(
        _ceiling(
            "reviews per hour",
            candidate.reviews_per_hour,
            active.reviews_per_hour,
            active.reviews_per_hour * (1 + t.max_review_increase),
        )
    )
    if min(candidate.blocked_matured, active.blocked_matured) >= t.min_blocked:
        checks.append(
            _floor(
                "block precision",
                candidate.block_precision,
                active.block_precision,
                active.block_precision - t.max_block_precision_drop,
            )
        )
    else:
        checks.append(
            Check(
                "block precision",
                candidate.block_precision,
                active.block_precision,
                None,
                True,
                f"not judged: fewer than {t.min_blocked} matured blocks "
                f"({candidate.blocked_matured} / {active.blocked_matured})",
            )
        )
    failed = [c for c in checks if not c.passed]
    if failed:
        reason = f"{candidate.version} worse than {active.version} beyond tolerance: " + "; ".join(
            f"{c.metric} {_fmt(c.candidate)} vs {_fmt(c.active)} (limit {_fmt(c.limit)})"
            for c in failed
        )
    else:
        reason = (
            f"{candidate.version} not worse than {active.version} beyond tolerance on "
            f"{candidate.transactions} replayed transactions ({candidate.frauds} matured frauds)"
        )
    return Verdict(not failed, reason, tuple(checks))


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, int) or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.4g}"


def markdown(candidate: Outcome, active: Outcome, verdict: Verdict) -> str:
    """The side-by-side table: the outcome of both bundles, then each check."""
    rows = [
        f"| | candidate {candidate.version} | active {active.version} |",
        "|---|---|---|",
    ]
    for label, attribute in (
        ("transactions replayed", "transactions"),
        ("matured transactions", "matured"),
        ("matured frauds", "frauds"),
        ("frauds caught", "caught"),
        ("fraud amount", "fraud_amount"),
        ("fraud amount caught", "caught_amount"),
        ("recall", "recall"),
        ("false positives", "false_positives"),
        ("false-positive rate", "fp_rate"),
        ("reviews", "reviews"),
        ("reviews per hour", "reviews_per_hour"),
        ("blocked", "blocked"),
        ("block precision (matured)", "block_precision"),
    ):
        rows.append(
            f"| {label} | {_fmt(getattr(candidate, attribute))} | {_fmt(getattr(active, attribute))} |"
        )
    rows += [
        "",
        "| check | candidate | active | limit | passed | note |",
        "|---|---|---|---|---|---|",
    ]
    for c in verdict.checks:
        rows.append(
            f"| {c.metric} | {_fmt(c.candidate)} | {_fmt(c.active)} | {_fmt(c.limit)} "
            f"| {'yes' if c.passed else '**no**'} | {c.note} |"
        )
    return "\n".join(rows)
