"""The fitted combiner: the three layers' outputs → the probability that a transaction is fraud.

A fixed weighted sum of calibrated risks treats "unusual" as "fraud": a
customer's one-off VPN session and an account takeover reach similar totals,
and almost nothing reaches the block threshold. Labels say which layer
outputs actually mean fraud, so the weekly training fits the combination on
the labelled rows of its training split (labels known at the partition end;
the validation split stays a held-out test of the whole bundle).

Inputs per row, each "higher = riskier":

* one 0/1 column per rule flag (by name, so the rule set can change),
* each model's surprisal ``−log(1 − risk)`` from its calibrated 0–1 risk
  (``ScoreCalibrator``), clipped at ``MAX_SURPRISAL``: a log scale on which
  "1 in 10,000 normal rows" is twice "1 in 100".

The model is a logistic regression fitted by L-BFGS on the log loss plus an
L2 penalty that pulls the weights toward a prior (``rule points / 20`` per
flag, 0.3 per model; the intercept is free), so a flag that rarely fires in
the labels keeps a sensible weight instead of an arbitrary one, and a
small training window cannot overfit its few dozen frauds. The result
is a probability calibrated on the training window's fraud rate.

How hard to pull (``l2``) depends on how many labels there are and on how far
the rows the combiner will score differ from the rows it learns from. With
``l2=None`` the candidates of ``L2_GRID`` are judged on held-out rows, the way
the combiner is used: the weekly training passes its validation split (the
window's newest days, which no model trained on), so they are judged on later
traffic; without one (the public benchmark data, whose rows have no time) by
stratified ``CV_FOLDS``-fold cross-validation. The tested default ``L2``
stands unless the candidate with the smallest held-out log loss beats it by
more than one standard error of their per-row difference: held-out losses of
neighbouring penalties often differ by less than their noise, and on a small
exchange's few dozen validation frauds every candidate from 20 to 500 can
look alike, though the strongest, a fit close to the prior, loses most of the
recall.
Too few labelled frauds to judge (``MIN_FRAUDS``): ``L2``.

The ensemble's 0–100 risk is that probability on a log-odds scale anchored
at the seed's decision boundaries (``risk_points``): 30 points where fraud is
``review_probability`` (5 %) likely, 70 where it is ``block_probability``
(70 %) likely, linear in log-odds between them and approaching 0 and 100
exponentially outside, so the map is strictly increasing (no ties, ranking
unchanged). A 5 % review floor sends about 1.3 % of simulated traffic to
review with 40–50 % precision; 70 % blocks only near-certain fraud.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

# 2: "penalty" records how ``l2`` was set (version 1 dicts, a fixed penalty, load unchanged)
FORMAT_VERSION = 2
MODEL_INPUTS: tuple[str, ...] = ("isolation_forest", "autoencoder")
MAX_SURPRISAL = 10.0
MIN_FRAUDS = 10
PRIOR_MODEL_WEIGHT = 0.3
PRIOR_POINTS_SCALE = 20.0
REVIEW_PROBABILITY = 0.05
BLOCK_PROBABILITY = 0.70
# Penalty weight. A labelled row adds at most 0.25·x² to the curvature of an
# input's weight (x: a 0/1 flag, or a surprisal, 0.69 at 1 in 100 normal rows,
# 1.39 at 1 in 10,000), so the prior counts as much as 80 labels on a flag, 40
# labels at 1 in 10,000 or 170 at 1 in 100 on a model input: several hundred
# move the weights, a few dozen leave them near the prior (at 600 simulated
# customers, 1.0 overfit the ~100 known frauds: PR-AUC 0.60 vs 0.80). The fixed
# penalty, and the one used when there are too few labels to choose one.
L2 = 20.0
L2_GRID: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)
CV_FOLDS = 5
CV_SEED = 0


class LabelledLayers(NamedTuple):
    """The combiner's inputs for labelled rows: what it is fitted on, or judged on."""

    fired: np.ndarray
    rule_names: Sequence[str]
    iso_risk: Any
    ae_risk: Any
    labels: Any


@dataclass(frozen=True)
class PenaltyChoice:
    """The penalty the weights were fitted with, and how it was set."""

    l2: float
    method: str  # "fixed", "validation split", "5-fold cross-validation" or "default: <why>"
    losses: dict[float, float] | None = None  # mean held-out log loss per candidate
    margin: float | None = None  # one standard error of the default's loss minus the best's

    def describe(self) -> str:
        if self.losses is None or self.margin is None:
            return f"{self.l2:g} ({self.method})"
        best = min(self.losses, key=self.losses.__getitem__)
        gap = self.losses[L2] - self.losses[best]
        if self.l2 == L2:
            return (
                f"{self.l2:g} (the default: on the {self.method} the best candidate, {best:g}, "
                f"beats its log loss by {gap:.5f}, within one standard error, {self.margin:.5f})"
            )
        return (
            f"{self.l2:g} (on the {self.method} its log loss beats the default {L2:g}'s by "
            f"{gap:.5f}, more than one standard error, {self.margin:.5f})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "l2": self.l2,
            "method": self.method,
            "losses": None if self.losses is None else [[v, x] for v, x in self.losses.items()],
            "margin": self.margin,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PenaltyChoice:
        losses = data.get("losses")
        return cls(
            float(data["l2"]),
            str(data["method"]),
            None if losses is None else {float(v): float(x) for v, x in losses},
            None if data.get("margin") is None else float(data["margin"]),
        )


def surprisal(risk_0_100: Any) -> np.ndarray:
    """``−log(1 − risk)`` of a 0–100 risk, clipped to [0, MAX_SURPRISAL] (NaN → 0)."""
    risk = np.nan_to_num(np.asarray(risk_0_100, dtype=np.float64) / 100.0, nan=0.0)
    survival = np.clip(1.0 - risk, np.exp(-MAX_SURPRISAL), 1.0)
    return -np.log(survival)


class StackedCombiner:
    """Logistic regression over rule flags and model surprisals, with a prior on the weights."""

    def __init__(
        self,
        l2: float | None = L2,
        review_probability: float = REVIEW_PROBABILITY,
        block_probability: float = BLOCK_PROBABILITY,
        l2_grid: Sequence[float] = L2_GRID,
    ) -> None:
        """``l2=None``: chosen from ``l2_grid`` on held-out rows at ``fit`` (module docstring)."""
        if l2 is not None and l2 <= 0:
            raise ValueError("l2 must be positive")
        if not l2_grid or min(l2_grid) <= 0 or L2 not in l2_grid:
            raise ValueError(f"l2_grid needs positive values, the default {L2:g} among them")
        if not 0 < review_probability < block_probability < 1:
            raise ValueError("need 0 < review_probability < block_probability < 1")
        self.l2 = l2
        self.l2_grid = tuple(sorted(float(value) for value in l2_grid))
        self.review_probability = review_probability
        self.block_probability = block_probability

    @property
    def inputs(self) -> tuple[str, ...]:
        self._check_fitted()
        return (*self.rule_names_, *MODEL_INPUTS)

    def design(
        self,
        fired: np.ndarray,
        rule_names: Sequence[str],
        iso_risk: Any,
        ae_risk: Any,
        names: Sequence[str] | None = None,
    ) -> np.ndarray:
        """The input matrix: ``names`` rule columns (missing ones 0), then the model surprisals."""
        names = list(self.rule_names_ if names is None else names)
        fired = np.asarray(fired, dtype=bool)
        if fired.ndim != 2:
            raise ValueError("fired must be a (rows, rules) matrix")
        index = {name: j for j, name in enumerate(rule_names)}
        columns = [
            fired[:, index[name]].astype(np.float64)
            if name in index
            else np.zeros(fired.shape[0], dtype=np.float64)
            for name in names
        ]
        columns += [surprisal(iso_risk), surprisal(ae_risk)]
        return np.column_stack(columns)

    def fit(
        self,
        fired: np.ndarray,
        rule_names: Sequence[str],
        iso_risk: Any,
        ae_risk: Any,
        labels: Any,
        rule_points: Mapping[str, float] | None = None,
        validation: LabelledLayers | None = None,
    ) -> StackedCombiner:
        """Fit on these rows; with ``l2=None`` the penalty is chosen on ``validation``
        (labelled rows not fitted on) or, without it, by cross-validation."""
        self.rule_names_ = tuple(rule_names)
        x = self.design(fired, rule_names, iso_risk, ae_risk)
        y = np.asarray(labels, dtype=np.float64).ravel()
        if y.shape[0] != x.shape[0]:
            raise ValueError("labels and layer outputs must have one value per row")
        if not 0 < y.sum() < y.size:
            raise ValueError("the combiner needs both fraud and normal labels")
        points = rule_points or {}
        prior = np.array(
            [points.get(name, 0.0) / PRIOR_POINTS_SCALE for name in self.rule_names_]
            + [PRIOR_MODEL_WEIGHT] * len(MODEL_INPUTS)
        )
        self.penalty_ = self._choose_penalty(x, y, prior, validation)
        theta = _fit_logistic(x, y, prior, self.penalty_.l2)
        self.intercept_ = float(theta[0])
        self.coef_ = theta[1:]
        self.prior_ = prior
        self.n_samples_ = int(y.size)
        self.n_frauds_ = int(y.sum())
        return self

    def _choose_penalty(
        self, x: np.ndarray, y: np.ndarray, prior: np.ndarray, validation: LabelledLayers | None
    ) -> PenaltyChoice:
        if self.l2 is not None:
            return PenaltyChoice(float(self.l2), "fixed")
        if validation is not None:
            held_y = np.asarray(validation.labels, dtype=np.float64).ravel()
            frauds = int(held_y.sum())
            if frauds < MIN_FRAUDS or frauds == held_y.size:
                return PenaltyChoice(
                    L2, f"default: {frauds} labelled frauds in the validation split"
                )
            held_x = self.design(
                validation.fired, validation.rule_names, validation.iso_risk, validation.ae_risk
            )
            row_losses = {
                l2: _row_log_loss(_fit_logistic(x, y, prior, l2), held_x, held_y)
                for l2 in self.l2_grid
            }
            method = "validation split"
        else:
            if y.sum() < max(MIN_FRAUDS, CV_FOLDS):
                return PenaltyChoice(L2, f"default: {int(y.sum())} labelled frauds")
            row_losses = _out_of_fold_losses(x, y, prior, self.l2_grid)
            method = f"{CV_FOLDS}-fold cross-validation"
        return default_unless_clearly_beaten(row_losses, method)

    def predict_proba(
        self, fired: np.ndarray, rule_names: Sequence[str], iso_risk: Any, ae_risk: Any
    ) -> np.ndarray:
        """P(fraud) per row."""
        self._check_fitted()
        x = self.design(fired, rule_names, iso_risk, ae_risk)
        return _sigmoid(self.intercept_ + x @ self.coef_)

    def log_loss_rows(
        self, fired: np.ndarray, rule_names: Sequence[str], iso_risk: Any, ae_risk: Any, labels: Any
    ) -> np.ndarray:
        """Each row's log loss under this fit (on held-out rows: how well it predicts them)."""
        self._check_fitted()
        x = self.design(fired, rule_names, iso_risk, ae_risk)
        y = np.asarray(labels, dtype=np.float64).ravel()
        return _row_log_loss(np.r_[self.intercept_, self.coef_], x, y)

    def risk_points(
        self,
        fired: np.ndarray,
        rule_names: Sequence[str],
        iso_risk: Any,
        ae_risk: Any,
        review_points: float = 30.0,
        block_points: float = 70.0,
    ) -> np.ndarray:
        """The 0–100 ensemble risk: ``review_points`` at ``review_probability``, ``block_points``
        at ``block_probability``, linear in log-odds between, exponential tails outside."""
        self._check_fitted()
        x = self.design(fired, rule_names, iso_risk, ae_risk)
        return log_odds_points(
            self.intercept_ + x @ self.coef_,
            _logit(self.review_probability),
            _logit(self.block_probability),
            review_points,
            block_points,
        )

    def weights(self) -> dict[str, float]:
        """Fitted weight per input (log-odds per unit), for model cards and metadata."""
        self._check_fitted()
        return dict(zip(self.inputs, self.coef_.tolist(), strict=True)) | {
            "intercept": self.intercept_
        }

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "format_version": FORMAT_VERSION,
            "l2": self.penalty_.l2,  # the penalty the weights were fitted with
            "penalty": self.penalty_.to_dict(),
            "review_probability": self.review_probability,
            "block_probability": self.block_probability,
            "rule_names": list(self.rule_names_),
            "intercept": self.intercept_,
            "coef": self.coef_.tolist(),
            "prior": self.prior_.tolist(),
            "n_samples": self.n_samples_,
            "n_frauds": self.n_frauds_,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StackedCombiner:
        version = int(data.get("format_version", 1))
        if version > FORMAT_VERSION:
            raise ValueError(
                f"combiner format {version} is newer than this code's {FORMAT_VERSION}"
            )
        combiner = cls(
            float(data["l2"]),
            float(data.get("review_probability", REVIEW_PROBABILITY)),
            float(data.get("block_probability", BLOCK_PROBABILITY)),
        )
        penalty = data.get("penalty")  # absent before version 2: a fixed penalty
        combiner.penalty_ = (
            PenaltyChoice.from_dict(penalty)
            if penalty
            else PenaltyChoice(float(data["l2"]), "fixed")
        )
        combiner.rule_names_ = tuple(data["rule_names"])
        combiner.intercept_ = float(data["intercept"])
        combiner.coef_ = np.asarray(data["coef"], dtype=np.float64)
        combiner.prior_ = np.asarray(data["prior"], dtype=np.float64)
        combiner.n_samples_ = int(data["n_samples"])
        combiner.n_frauds_ = int(data["n_frauds"])
        return combiner

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise RuntimeError("StackedCombiner is not fitted; call fit(...) first")


def default_unless_clearly_beaten(
    row_losses: Mapping[float, np.ndarray], method: str
) -> PenaltyChoice:
    """The candidate with the smallest mean held-out loss if it beats the default ``L2``'s
    by more than one standard error of their per-row difference (paired rows); else ``L2``."""
    if L2 not in row_losses:
        raise ValueError(f"the default penalty {L2:g} must be among the candidates")
    means = {l2: float(losses.mean()) for l2, losses in row_losses.items()}
    best = min(means, key=lambda l2: (means[l2], -l2))
    difference = row_losses[L2] - row_losses[best]
    margin = float(np.std(difference) / np.sqrt(difference.size))
    chosen = best if means[L2] - means[best] > margin else L2
    return PenaltyChoice(chosen, method, means, margin)


def _out_of_fold_losses(
    x: np.ndarray, y: np.ndarray, prior: np.ndarray, grid: Sequence[float]
) -> dict[float, np.ndarray]:
    """Each row's log loss under a fit without its fold, per penalty (stratified folds,
    fixed shuffle: the same rows always give the same folds)."""
    rng = np.random.default_rng(CV_SEED)
    fold = np.empty(y.size, dtype=np.int64)
    for label in (0.0, 1.0):
        rows = np.flatnonzero(y == label)
        fold[rng.permutation(rows)] = np.arange(rows.size) % CV_FOLDS
    losses = {l2: np.empty(y.size) for l2 in grid}
    for part in range(CV_FOLDS):
        held = fold == part
        for l2 in grid:
            theta = _fit_logistic(x[~held], y[~held], prior, l2)
            losses[l2][held] = _row_log_loss(theta, x[held], y[held])
    return losses


def _row_log_loss(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    z = theta[0] + x @ theta[1:]
    return np.logaddexp(0.0, z) - y * z  # log(1 + e^z) − y·z, stable for large |z|


def _fit_logistic(x: np.ndarray, y: np.ndarray, prior: np.ndarray, l2: float) -> np.ndarray:
    """Intercept and weights minimising the log loss plus ``l2/2·‖w − prior‖²`` (L-BFGS)."""
    from scipy.optimize import minimize

    rate = y.mean()
    start = np.r_[np.log(rate / (1 - rate)), prior]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] + x @ theta[1:]
        nll = float(np.sum(np.logaddexp(0.0, z) - y * z))
        gap = theta[1:] - prior
        residual = _sigmoid(z) - y
        gradient = np.r_[residual.sum(), x.T @ residual + l2 * gap]
        return nll + 0.5 * l2 * float(gap @ gap), gradient

    result = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return np.asarray(result.x, dtype=np.float64)


def log_odds_points(
    z: np.ndarray, z_review: float, z_block: float, review_points: float, block_points: float
) -> np.ndarray:
    """Strictly increasing map of log-odds onto (0, 100) through two anchors.

    Between the anchors the map is linear; below ``z_review`` it decays as
    ``review_points · e^{k(z − z_review)}`` and above ``z_block`` it rises as
    ``100 − (100 − block_points) · e^{−k'(z − z_block)}``, with k, k' chosen so
    the slope is continuous at the anchors.
    """
    z = np.asarray(z, dtype=np.float64)
    slope = (block_points - review_points) / (z_block - z_review)
    middle = review_points + slope * (z - z_review)
    low = review_points * np.exp(np.minimum(z - z_review, 0.0) * slope / max(review_points, 1e-9))
    top = 100.0 - block_points
    high = 100.0 - top * np.exp(-np.maximum(z - z_block, 0.0) * slope / max(top, 1e-9))
    return np.where(z < z_review, low, np.where(z > z_block, high, middle))


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))
