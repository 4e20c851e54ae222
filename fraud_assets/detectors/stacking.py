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
the labels keeps a sensible weight instead of an arbitrary one. The result
is a probability calibrated on the training window's fraud rate; the
ensemble reports ``100 ×`` it, so the seed's decision boundaries read as
"30 % / 70 % likely to be fraud".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

FORMAT_VERSION = 1
MODEL_INPUTS: tuple[str, ...] = ("isolation_forest", "autoencoder")
MAX_SURPRISAL = 10.0
MIN_FRAUDS = 10
PRIOR_MODEL_WEIGHT = 0.3
PRIOR_POINTS_SCALE = 20.0


def surprisal(risk_0_100: Any) -> np.ndarray:
    """``−log(1 − risk)`` of a 0–100 risk, clipped to [0, MAX_SURPRISAL] (NaN → 0)."""
    risk = np.nan_to_num(np.asarray(risk_0_100, dtype=np.float64) / 100.0, nan=0.0)
    survival = np.clip(1.0 - risk, np.exp(-MAX_SURPRISAL), 1.0)
    return -np.log(survival)


class StackedCombiner:
    """Logistic regression over rule flags and model surprisals, with a prior on the weights."""

    def __init__(self, l2: float = 1.0) -> None:
        if l2 <= 0:
            raise ValueError("l2 must be positive")
        self.l2 = l2

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
    ) -> StackedCombiner:
        from scipy.optimize import minimize

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
        rate = y.mean()
        start = np.r_[np.log(rate / (1 - rate)), prior]

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            z = theta[0] + x @ theta[1:]
            p = _sigmoid(z)
            # log(1 + e^z) − y·z, stable for large |z|
            nll = float(np.sum(np.logaddexp(0.0, z) - y * z))
            gap = theta[1:] - prior
            residual = p - y
            gradient = np.r_[residual.sum(), x.T @ residual + self.l2 * gap]
            return nll + 0.5 * self.l2 * float(gap @ gap), gradient

        result = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 500})
        self.intercept_ = float(result.x[0])
        self.coef_ = np.asarray(result.x[1:], dtype=np.float64)
        self.prior_ = prior
        self.n_samples_ = int(y.size)
        self.n_frauds_ = int(y.sum())
        return self

    def predict_proba(
        self, fired: np.ndarray, rule_names: Sequence[str], iso_risk: Any, ae_risk: Any
    ) -> np.ndarray:
        """P(fraud) per row."""
        self._check_fitted()
        x = self.design(fired, rule_names, iso_risk, ae_risk)
        return _sigmoid(self.intercept_ + x @ self.coef_)

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
            "l2": self.l2,
            "rule_names": list(self.rule_names_),
            "intercept": self.intercept_,
            "coef": self.coef_.tolist(),
            "prior": self.prior_.tolist(),
            "n_samples": self.n_samples_,
            "n_frauds": self.n_frauds_,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StackedCombiner:
        combiner = cls(float(data["l2"]))
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


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))
