"""The A/B test's stopping rule: a fixed-horizon test with a stated confidence level.

Design. Users are split by a stable hash of ``user_id`` into buckets: the
candidate arm is the first ``share`` of buckets, the control arm (the active
bundle) the next ``share``. One user is always in one arm, and every
transaction of a user is scored by that arm's bundle only.

Stopping rule. The horizon is fixed in advance (``days`` of traffic before the
week's end); the test is evaluated once, at the horizon, never peeked at. Two
one-sided harm tests at confidence level ``c`` on the difference of the arms'
proportions:

* alert rate (review + blocked share of transactions): the candidate is worse
  when the lower ``c`` bound of (candidate − control) exceeds
  ``max_alert_rate_increase`` × the control rate;
* recall on labelled frauds: the candidate is worse when the upper ``c`` bound
  of (candidate − control) is below −``max_recall_drop``. Judged only when both
  arms hold at least ``min_frauds`` labelled frauds.

Users, not transactions, are the randomised unit, and one user's transactions
are alike (a heavy user can be a tenth of an arm), so each arm's variance is
the cluster-robust (ratio, delta-method) variance over users — never taken
below the Agresti–Caffo binomial variance (one success and one failure added),
which keeps empty arms and zero rates well defined. Arms with fewer than
``MIN_USERS`` users are not judged.

Decision: **rollback** (the candidate is not promoted) when either harm test
fires; otherwise **promote**. A test that cannot show harm with this much data
promotes: the candidate has already passed the validation quality gates.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import polars as pl

WORSE, NOT_WORSE, NOT_JUDGED = "worse", "not worse", "not judged"
BUCKETS = 10_000
_SALT = b"fraud-assets-ab"


def user_buckets(user_ids: pl.Series) -> pl.Series:
    """A bucket in [0, 10000) per row from BLAKE2b of the user id: stable across processes,
    library versions and weeks, so a user keeps their arm from one test to the next."""
    distinct = user_ids.cast(pl.Utf8).fill_null("").unique()
    buckets = [
        int.from_bytes(hashlib.blake2b(u.encode(), digest_size=8, key=_SALT).digest(), "big")
        % BUCKETS
        for u in distinct.to_list()
    ]
    lookup = pl.DataFrame({"user": distinct, "bucket": pl.Series(buckets, dtype=pl.UInt32)})
    return (
        pl.DataFrame({"user": user_ids.cast(pl.Utf8).fill_null("")})
        .join(lookup, on="user", how="left", maintain_order="left")["bucket"]
        .rename("ab_bucket")
    )


def arm_bounds(share: float, offset: float = 0.0) -> tuple[int, int]:
    """Buckets [low, high) of an arm holding ``share`` of users after the first ``offset``."""
    if not 0 < share <= 1 or not 0 <= offset < 1:
        raise ValueError(f"need 0 < share <= 1 and 0 <= offset < 1, got {share}, {offset}")
    return round(offset * BUCKETS), min(round((offset + share) * BUCKETS), BUCKETS)


MIN_USERS = 20


@dataclass(frozen=True)
class Arm:
    """Per-user successes and trials of one arm (users are the randomised unit)."""

    successes: np.ndarray
    trials: np.ndarray

    @classmethod
    def of(cls, successes, trials) -> Arm:
        s = np.asarray(successes, dtype=np.float64).ravel()
        t = np.asarray(trials, dtype=np.float64).ravel()
        if s.shape != t.shape or np.any(s > t) or np.any(s < 0):
            raise ValueError("need 0 <= successes <= trials per user, arrays of one length")
        keep = t > 0
        return cls(s[keep], t[keep])

    @classmethod
    def independent(cls, successes: int, trials: int) -> Arm:
        """``trials`` users with one trial each: the classic independent-rows case."""
        return cls.of([1] * successes + [0] * (trials - successes), [1] * trials)

    @property
    def users(self) -> int:
        return int(self.trials.size)

    @property
    def total_successes(self) -> int:
        return int(self.successes.sum())

    @property
    def total_trials(self) -> int:
        return int(self.trials.sum())

    @property
    def rate(self) -> float:
        return self.total_successes / self.total_trials if self.total_trials else float("nan")

    def variance(self) -> float:
        """Var of ``rate``: cluster-robust over users, at least the Agresti–Caffo binomial one."""
        n, x = self.total_trials, self.total_successes
        adjusted = (x + 1) / (n + 2)
        binomial = adjusted * (1 - adjusted) / (n + 2)
        m = self.users
        if m < 2:
            return binomial
        residuals = self.successes - self.rate * self.trials
        mean_trials = n / m
        clustered = float(np.sum(residuals**2)) / (m * (m - 1) * mean_trials**2)
        return max(clustered, binomial)

    def summary(self) -> dict:
        return {
            "users": self.users,
            "successes": self.total_successes,
            "trials": self.total_trials,
            "rate": self.rate,
        }


@dataclass(frozen=True)
class HarmTest:
    """One metric's one-sided test; ``z`` > 0 leans towards harm, harm when z > the quantile."""

    metric: str
    candidate: dict
    control: dict
    confidence: float
    margin: float
    difference: float
    lower: float
    upper: float
    z: float
    p_value: float
    verdict: str
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _normal_quantile(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


def _normal_sf(z: float) -> float:
    from scipy.stats import norm

    return float(norm.sf(z))


def difference(candidate: Arm, control: Arm) -> tuple[float, float]:
    """candidate − control rate and its standard error (independent arms)."""
    return candidate.rate - control.rate, math.sqrt(candidate.variance() + control.variance())


def harm_test(
    metric: str,
    candidate: Arm,
    control: Arm,
    confidence: float,
    boundary: float,
    higher_is_worse: bool,
) -> HarmTest:
    """Worse when the difference is beyond ``boundary`` (above it when higher is worse, else
    below it) with the given one-sided confidence."""
    diff, se = difference(candidate, control)
    q = _normal_quantile(confidence)
    lower, upper = diff - q * se, diff + q * se
    z = (diff - boundary) / se if higher_is_worse else (boundary - diff) / se
    worse = lower > boundary if higher_is_worse else upper < boundary
    note = ""
    if min(candidate.users, control.users) < MIN_USERS:
        note = f"fewer than {MIN_USERS} users in an arm"
    return HarmTest(
        metric=metric,
        candidate=candidate.summary(),
        control=control.summary(),
        confidence=confidence,
        margin=boundary,
        difference=diff,
        lower=lower,
        upper=upper,
        z=z,
        p_value=_normal_sf(z),
        verdict=NOT_JUDGED if note else (WORSE if worse else NOT_WORSE),
        note=note,
    )


def decide(
    alerts: tuple[Arm, Arm],
    frauds_caught: tuple[Arm, Arm],
    confidence: float = 0.95,
    max_alert_rate_increase: float = 0.5,
    max_recall_drop: float = 0.05,
    min_frauds: int = 5,
) -> tuple[str, list[HarmTest]]:
    """The decision ('promote' or 'rollback') and the tests behind it.

    ``alerts`` and ``frauds_caught`` are (candidate, control) arms: per user,
    flagged of transactions, and flagged of labelled frauds.
    """
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")
    candidate, control = alerts
    margin = max_alert_rate_increase * (control.rate if control.total_trials else 0.0)
    tests = [harm_test("alert_rate", candidate, control, confidence, margin, True)]
    caught_c, caught_a = frauds_caught
    recall = harm_test("recall", caught_c, caught_a, confidence, -max_recall_drop, False)
    if min(caught_c.total_trials, caught_a.total_trials) < min_frauds:
        recall = replace(
            recall, verdict=NOT_JUDGED, note=f"fewer than {min_frauds} labelled frauds in an arm"
        )
    tests.append(recall)
    return ("rollback" if any(t.verdict == WORSE for t in tests) else "promote"), tests


def _arm_text(arm: dict) -> str:
    return f"{arm['successes']}/{arm['trials']} ({arm['users']} users)"


def summary(tests: list[HarmTest]) -> str:
    """One line per test for the registry's status_reason and the notification."""
    parts = []
    for t in tests:
        text = (
            f"{t.metric} candidate {_arm_text(t.candidate)} vs control {_arm_text(t.control)}, "
            f"diff {t.difference:+.4f} [{t.lower:+.4f}, {t.upper:+.4f}] @ {t.confidence:.0%}, "
            f"boundary {t.margin:+.4f}: {t.verdict}"
        )
        parts.append(text + (f" ({t.note})" if t.note else ""))
    return "; ".join(parts)


def markdown(tests: list[HarmTest]) -> str:
    rows = [
        "| metric | candidate | control | difference | one-sided bounds | boundary | z | p "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in tests:
        rows.append(
            f"| {t.metric} | {_arm_text(t.candidate)} = {t.candidate['rate']:.4f} "
            f"| {_arm_text(t.control)} = {t.control['rate']:.4f} "
            f"| {t.difference:+.4f} | [{t.lower:+.4f}, {t.upper:+.4f}] | {t.margin:+.4f} "
            f"| {t.z:.2f} | {t.p_value:.4f} | {t.verdict}{' — ' + t.note if t.note else ''} |"
        )
    return "\n".join(rows)
