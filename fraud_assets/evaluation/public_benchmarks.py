"""Public-data check: the project's detectors on ten ADBench datasets beside published numbers.

The datasets and the published figures are described in
``shared/datasets/anomaly_benchmarks/README.md`` (PyOD benchmark [P1]/[P2],
DTE paper [DTE-U]/[DTE-S]). Three protocols:

* ``pyod``: the PyOD benchmark's. ``train_test_split(test_size=0.4,
  random_state=seed)``, z-score with the training part's statistics, fit on
  the (contaminated) 60 %, report on the 40 %. The IForest reference is the
  span of PyOD's two published tables ([P1] 2024 and [P0] 2019, e.g. optdigits
  0.702–0.725, whose split-to-split spread is ±0.05); campaign and mammography
  have no PyOD figure, so theirs is [DTE-U].
* ``semi_supervised``: DTE-S's. Fit on the first 50 % of the normal rows in
  file order, test on the other normals plus every anomaly (no shuffling, so
  letter/vowels reflect file order), z-scored with the training part's
  statistics; the seed only changes the models.
* ``dte_unsupervised``: DTE-U's. Every row z-scored with all rows' statistics
  (DTE scales before it samples), fit on a bootstrap resample of them (the
  seed draws it), report on every row.
  Under ``pyod``, campaign and mammography are judged against DTE-U figures
  for want of PyOD ones; this protocol checks them under DTE-U's own.

Per dataset: ROC-AUC and average precision of ``IsolationForestDetector``,
``AutoencoderDetector`` and the ensemble. The autoencoder runs the published
protocol's own configuration where there is one: under ``pyod`` PyOD 2.0.1's
AutoEncoder defaults, which produced [P1]/[P2] (see ``AUTOENCODER_PARAMS``);
under ``semi_supervised`` the exchange model's architecture; under
``dte_unsupervised`` PyOD's again (contaminated training, as there). The
detectors never see a label. DTE's references are a VAE's, whose figures are
those of a model-free score, each row's distance from the mean
(``distance_from_mean``): the table shows that score beside the autoencoder.

The ensemble is the exchange's where the protocol allows it. Under ``pyod``
the 60 % training split is labelled (PyOD's detectors ignore ``y_train``, and
so do ours), so the ensemble is the exchange's ``StackedCombiner`` fitted on
those labels as the weekly training fits it on ``transaction_labels``: each
model's risk calibrated on its own training scores, the combiner's prior
unchanged and its penalty chosen by the same rule (judged by cross-validation,
these rows having no time order), no rule inputs (there are no rules). The training rows'
risks are in-sample for both models, anomalies included: the detectors were
fitted on every training row (weekly training keeps its known frauds out of
the models' rows, so there only the normal rows are in-sample). Under ``semi_supervised`` every training row is normal:
there is nothing to fit a combiner on, and the ensemble is the label-free
``StandardizedScoreFusion`` (each model's score in standard deviations of its
own training scores, the autoencoder's in log space, summed). Under ``pyod``
the table shows that fusion beside the fitted ensemble. Under ``dte_unsupervised``
the combiner is fitted as under ``pyod``, on the sample's distinct rows (a row
drawn twice would otherwise sit in two cross-validation folds at once). Under
every protocol the table shows the
fallback ``EnsembleCombiner`` weighted sum of the two calibrated risks
("risk sum").

    python -m fraud_assets.evaluation.public_benchmarks --protocol pyod --seeds 10
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fraud_assets.settings import PROJECT_ROOT

DATASETS: tuple[str, ...] = (
    "5_campaign",
    "6_cardio",
    "20_letter",
    "23_mammography",
    "24_mnist",
    "26_optdigits",
    "28_pendigits",
    "31_satimage-2",
    "32_shuttle",
    "40_vowels",
)
PROTOCOLS = ("pyod", "semi_supervised", "dte_unsupervised")
ENSEMBLE_NAMES = {
    "pyod": "ENS: the exchange's StackedCombiner fitted on the training split's labels "
    "(the detectors never see them); fusion: the label-free StandardizedScoreFusion.",
    "semi_supervised": "ENS: the label-free StandardizedScoreFusion (every training row "
    "is normal, so there are no labels to fit a combiner on).",
    "dte_unsupervised": "ENS: the exchange's StackedCombiner fitted on the labels of the "
    "bootstrap sample's distinct rows (the detectors never see them); fusion: the label-free "
    "StandardizedScoreFusion.",
}
IF_TOLERANCE = 0.02
ENSEMBLE_TOLERANCE = 0.02  # per dataset, ROC-AUC below the better single detector

# PyOD 2.0.1 AutoEncoder defaults ([P1]): d → 64 → 32 → 64 → d, each hidden block
# Linear → BatchNorm → ReLU → Dropout(0.2), PyTorch's initial weights with the
# hidden kernels redrawn He-uniform (PyOD's LinearBlock),
# torch.optim.Adam(lr=1e-3, weight_decay=1e-5, eps=1e-8) (coupled L2 on every
# parameter), 10 epochs of full batches of 32 (DataLoader(drop_last=True)),
# BatchNorm1d's unbiased running variance, no early stopping.
PYOD_AUTOENCODER: dict[str, Any] = {
    "hidden_units": (64,),
    "latent_dim": 32,
    "activation": "relu",
    "latent_activation": "relu",
    "dropout": 0.2,
    "batch_norm": True,
    "initializer": "pyod",
    "weight_decay": 1e-5,
    "adam_epsilon": 1e-8,
    "drop_last_batch": True,
    "unbiased_running_variance": True,
    "epochs": 10,
    "batch_size": 32,
    "validation_fraction": 0.0,
}
AUTOENCODER_PARAMS: dict[str, dict[str, Any]] = {
    "pyod": PYOD_AUTOENCODER,
    "semi_supervised": {},  # the exchange model's: n → 30 → 10 → 30 → n, tanh, early stopping
    "dte_unsupervised": PYOD_AUTOENCODER,
}


@dataclass(frozen=True)
class Published:
    """Published ROC-AUC figures for one dataset (README table; DTE numbers as fractions)."""

    pyod_iforest: tuple[float, ...]  # [P1], [P0]
    pyod_ae: tuple[float, ...]  # [P1] AE, [P2] AE, [P2] VAE
    dte_u_iforest: float
    dte_u_vae: float
    dte_s_iforest: float
    dte_s_vae: float

    def iforest_range(self, protocol: str) -> tuple[float, float]:
        """Lowest and highest published IForest ROC-AUC under the protocol."""
        if protocol == "semi_supervised":
            figures: Sequence[float] = (self.dte_s_iforest,)
        elif protocol == "dte_unsupervised":
            figures = (self.dte_u_iforest,)
        else:
            figures = self.pyod_iforest or (self.dte_u_iforest,)
        return min(figures), max(figures)

    def iforest_gap(self, roc_auc: float, protocol: str) -> float:
        """Signed distance from the published range (0 inside it)."""
        low, high = self.iforest_range(protocol)
        return roc_auc - low if roc_auc < low else max(0.0, roc_auc - high)

    def ae_range(self, protocol: str) -> tuple[float, float]:
        """Lowest and highest published autoencoder-family ROC-AUC under the protocol."""
        if protocol == "semi_supervised":
            figures: Sequence[float] = (self.dte_s_vae,)
        elif protocol == "dte_unsupervised":
            figures = (self.dte_u_vae,)
        else:
            figures = self.pyod_ae or (self.dte_u_vae,)
        return min(figures), max(figures)

    def ae_is_dte_vae(self, protocol: str) -> bool:
        """Whether the autoencoder's reference is DTE's VAE (see ``distance_from_mean``)."""
        return protocol != "pyod" or not self.pyod_ae


PUBLISHED: dict[str, Published] = {
    "5_campaign": Published((), (), 0.7037, 0.7342, 0.7364, 0.7707),
    "6_cardio": Published((0.918, 0.921), (0.817, 0.785, 0.962), 0.9221, 0.9500, 0.9332, 0.9655),
    "20_letter": Published((0.638, 0.642), (0.814, 0.809, 0.588), 0.6156, 0.5245, 0.3204, 0.3023),
    "23_mammography": Published((), (), 0.8596, 0.8867, 0.8802, 0.8958),
    "24_mnist": Published((0.808, 0.816), (0.865, 0.857, 0.900), 0.8106, 0.8500, 0.8660, 0.9021),
    "26_optdigits": Published(
        (0.702, 0.725), (0.598, 0.512, 0.507), 0.6963, 0.5147, 0.8107, 0.5817
    ),
    "28_pendigits": Published(
        (0.950, 0.944), (0.782, 0.669, 0.927), 0.9469, 0.9366, 0.9722, 0.9450
    ),
    "31_satimage-2": Published(
        (0.994, 0.995), (0.929, 0.868, 0.995), 0.9928, 0.9851, 0.9912, 0.9898
    ),
    "32_shuttle": Published((0.997, 0.997), (0.990, 0.994, 0.995), 0.9971, 0.9898, 0.9965, 0.9935),
    "40_vowels": Published((0.756, 0.759), (0.924, 0.931, 0.749), 0.7626, 0.6208, 0.6183, 0.5212),
}


def data_dir() -> Path:
    default = PROJECT_ROOT.parent / "shared" / "datasets" / "anomaly_benchmarks"
    return Path(os.environ.get("FRAUD_ANOMALY_BENCHMARKS_DIR", default))


def load_dataset(name: str, directory: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    with np.load((directory or data_dir()) / f"{name}.npz", allow_pickle=False) as data:
        return data["X"].astype(np.float64), data["y"].astype(np.int64)


def split(
    X: np.ndarray, y: np.ndarray, protocol: str, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, X_test, y_train, y_test)`` under ``protocol`` (see the module docstring)."""
    if protocol == "pyod":
        from sklearn.model_selection import train_test_split

        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, random_state=seed)
        return _zscore(X_train, X_train), _zscore(X_test, X_train), y_train, y_test
    if protocol == "semi_supervised":
        normal = np.flatnonzero(y == 0)
        train = normal[: len(normal) // 2]
        test = np.setdiff1d(np.arange(len(y)), train)
        return _zscore(X[train], X[train]), _zscore(X[test], X[train]), y[train], y[test]
    if protocol == "dte_unsupervised":  # every row scaled, then a bootstrap sample to fit on
        scaled = _zscore(X, X)
        sample = _bootstrap(len(y), seed)
        return scaled[sample], scaled, y[sample], y
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")


def _zscore(X: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``X`` in standard deviations from ``reference``'s column means, by scikit-learn's
    ``StandardScaler`` as PyOD's benchmark and DTE scale: a column that is constant up to
    rounding keeps a scale of 1 (cardio's training normals hold one with a standard
    deviation of 1e-15, which would blow its few other values up to 1e13)."""
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit(reference).transform(X)


def distance_from_mean(X: np.ndarray) -> np.ndarray:
    """Squared distance of each z-scored row from the scaler's mean: no model at all.

    The DTE paper's VAE figures are this score's, to within 0.001 ROC-AUC on nine of
    the ten datasets under both of its protocols (satimage-2: 0.008 below the VAE's):
    rebuilt as DTE configures it (``fraud_assets_tests/benchmarks/dte_vae.py``), that
    VAE's decoder returns the same point whatever the input, so its reconstruction
    error ranks rows by their distance from the mean. The table shows it beside the
    autoencoder for that reason, and as a floor for any model.
    """
    return np.square(X).sum(axis=1)


def _bootstrap(n: int, seed: int) -> np.ndarray:
    """DTE-U's training rows: ``n`` indices drawn with replacement from ``range(n)``."""
    return np.random.default_rng(seed).integers(0, n, n)


@dataclass
class Scores:
    roc_auc: float
    average_precision: float


@dataclass
class DatasetResult:
    dataset: str
    protocol: str
    seed: int
    iforest: Scores
    autoencoder: Scores
    ensemble: Scores  # pyod: the fitted StackedCombiner; semi_supervised: the fusion
    seconds: float
    distance: Scores | None = None  # distance_from_mean: the model-free floor
    risk_sum: Scores | None = None  # EnsembleCombiner's weighted sum of calibrated risks
    fusion: Scores | None = None  # pyod: StandardizedScoreFusion beside the fitted ensemble
    ensemble_l2: float | None = None  # pyod: the penalty the fitted combiner chose


def _scores(y: np.ndarray, score: np.ndarray) -> Scores:
    from sklearn.metrics import average_precision_score, roc_auc_score

    return Scores(float(roc_auc_score(y, score)), float(average_precision_score(y, score)))


def fitted_combiner(iso_risk: np.ndarray, ae_risk: np.ndarray, labels: np.ndarray):
    """The exchange's ``StackedCombiner`` fitted as weekly training fits it
    (``training_steps.fit_combiner``): its default prior, on the models' calibrated
    0–100 risks of the labelled training rows, its penalty chosen on held-out rows.
    These rows have no time order, so no later split exists to choose it on as the
    weekly training does: cross-validation on the training split chooses it. There are
    no rules here, so it has no rule inputs; only the two model surprisals and the
    intercept."""
    from fraud_assets.detectors.stacking import StackedCombiner

    no_rules = np.zeros((len(labels), 0), dtype=bool)
    return StackedCombiner(l2=None).fit(no_rules, (), iso_risk, ae_risk, labels)


def run_one(
    name: str,
    protocol: str,
    seed: int,
    ae_params: dict[str, Any] | None = None,
    directory: Path | None = None,
) -> DatasetResult:
    """Fit both detectors on one split (without its labels) and score the held-out rows.

    Under ``pyod`` and ``dte_unsupervised`` the ensemble is the fitted combiner
    on the training rows' labels; under ``semi_supervised`` (all training rows
    normal) the fusion.
    """
    from fraud_assets.detectors import (
        AutoencoderDetector,
        EnsembleCombiner,
        EnsembleConfig,
        IsolationForestDetector,
        StandardizedScoreFusion,
    )

    start = time.perf_counter()
    X, y = load_dataset(name, directory)
    X_train, X_test, y_train, y_test = split(X, y, protocol, seed)
    params = {**AUTOENCODER_PARAMS[protocol], "random_state": seed, **(ae_params or {})}
    # Each detector's calibrator is fitted on its scores of X_train in fit(), as the
    # weekly training calibrates on its training rows; the labels never reach a detector.
    iforest = IsolationForestDetector(random_state=seed).fit(X_train)
    autoencoder = AutoencoderDetector(**params).fit(X_train)
    iso_train, ae_train = iforest.evaluate(X_train), autoencoder.evaluate(X_train)
    iso, ae = iforest.evaluate(X_test), autoencoder.evaluate(X_test)
    fusion = StandardizedScoreFusion(log_scale=(False, True)).fit(
        [iso_train.anomaly_score, ae_train.anomaly_score]
    )
    fused = _scores(y_test, fusion.combine([iso.anomaly_score, ae.anomaly_score]))
    ensemble, fusion_column, ensemble_l2 = fused, None, None
    if protocol in ("pyod", "dte_unsupervised"):
        # In-sample: the training rows' risks come from models fitted on those rows.
        rows: Any = slice(None)
        if protocol == "dte_unsupervised":  # each sampled row once, so no row is in two folds
            _, rows = np.unique(_bootstrap(len(y), seed), return_index=True)
        stacked = fitted_combiner(iso_train.risk[rows], ae_train.risk[rows], y_train[rows])
        no_rules = np.zeros((len(y_test), 0), dtype=bool)
        ensemble = _scores(y_test, stacked.predict_proba(no_rules, (), iso.risk, ae.risk))
        fusion_column, ensemble_l2 = fused, stacked.penalty_.l2
    combiner = EnsembleCombiner(EnsembleConfig(stat_weight=0.0, iso_weight=0.5, ae_weight=0.5))
    risk_sum = combiner.combine(
        np.zeros(len(y_test)), iso.risk, ae.risk, iso.prediction, ae.prediction
    )
    return DatasetResult(
        dataset=name,
        protocol=protocol,
        seed=seed,
        iforest=_scores(y_test, iso.anomaly_score),
        autoencoder=_scores(y_test, ae.anomaly_score),
        ensemble=ensemble,
        seconds=time.perf_counter() - start,
        distance=_scores(y_test, distance_from_mean(X_test)),
        risk_sum=_scores(y_test, risk_sum.total_risk),
        fusion=fusion_column,
        ensemble_l2=ensemble_l2,
    )


@dataclass(frozen=True)
class Check:
    kind: str  # "iforest" | "autoencoder" | "ensemble_dataset" | "ensemble_roc" | "ensemble_ap"
    passed: bool
    message: str


@dataclass
class Summary:
    """Mean over seeds per dataset, and the checks of the public-data goals."""

    protocol: str
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        return [c.message for c in self.checks if not c.passed]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def failed(self, kind: str) -> list[str]:
        return [c.message for c in self.checks if c.kind == kind and not c.passed]

    def mean(self, key: str) -> float:
        """Mean of one column over the datasets (NaN where a dataset lacks it)."""
        return float(np.mean([row.get(key, np.nan) for row in self.rows.values()]))


def summarize(
    results: Iterable[DatasetResult],
    if_tolerance: float = IF_TOLERANCE,
    ae_tolerance: float = 0.0,
    ensemble_tolerance: float = ENSEMBLE_TOLERANCE,
) -> Summary:
    """Average over seeds and check the goals: IF within ``if_tolerance`` of its reference
    on every dataset; the AE at or above the low end of the published range (less
    ``ae_tolerance``); the ensemble's ROC-AUC at most ``ensemble_tolerance`` below the
    better single detector's on every dataset; its mean ROC-AUC and mean AP over the
    datasets at least the better single detector's (each compared separately)."""
    by_dataset: dict[str, list[DatasetResult]] = {}
    protocols = set()
    for result in results:
        by_dataset.setdefault(result.dataset, []).append(result)
        protocols.add(result.protocol)
    if len(protocols) != 1:
        raise ValueError("summarize one protocol at a time")
    protocol = protocols.pop()
    summary = Summary(protocol)
    for name, runs in by_dataset.items():
        row: dict[str, float] = {"seeds": len(runs), "seconds": sum(r.seconds for r in runs)}
        for model in ("iforest", "autoencoder", "ensemble", "distance", "fusion", "risk_sum"):
            if any(getattr(r, model) is None for r in runs):
                continue
            roc = [getattr(r, model).roc_auc for r in runs]
            row[f"{model}_roc"] = float(np.mean(roc))
            row[f"{model}_roc_std"] = float(np.std(roc))
            row[f"{model}_ap"] = float(np.mean([getattr(r, model).average_precision for r in runs]))
        published = PUBLISHED[name]
        row["published_if_low"], row["published_if_high"] = published.iforest_range(protocol)
        row["published_ae_low"], row["published_ae_high"] = published.ae_range(protocol)
        row["iforest_gap"] = published.iforest_gap(row["iforest_roc"], protocol)
        summary.rows[name] = row
        summary.checks.append(
            Check(
                "iforest",
                abs(row["iforest_gap"]) <= if_tolerance,
                f"{name}: IForest ROC-AUC {row['iforest_roc']:.3f} is {row['iforest_gap']:+.3f} "
                f"from the published {_span(row['published_if_low'], row['published_if_high'])}",
            )
        )
        vae_note = ""
        if published.ae_is_dte_vae(protocol) and "distance_roc" in row:
            vae_note = f" (DTE's VAE; the distance from the mean scores {row['distance_roc']:.3f})"
        summary.checks.append(
            Check(
                "autoencoder",
                row["autoencoder_roc"] >= row["published_ae_low"] - ae_tolerance,
                f"{name}: autoencoder ROC-AUC {row['autoencoder_roc']:.3f} against the published "
                f"{_span(row['published_ae_low'], row['published_ae_high'])}{vae_note}",
            )
        )
        better = max(row["iforest_roc"], row["autoencoder_roc"])
        summary.checks.append(
            Check(
                "ensemble_dataset",
                row["ensemble_roc"] >= better - ensemble_tolerance,
                f"{name}: ensemble ROC-AUC {row['ensemble_roc']:.3f} against the better single "
                f"detector's {better:.3f}",
            )
        )
    for metric in ("roc", "ap"):
        means = {m: summary.mean(f"{m}_{metric}") for m in ("iforest", "autoencoder", "ensemble")}
        best_single = max(means["iforest"], means["autoencoder"])
        summary.checks.append(
            Check(
                f"ensemble_{metric}",
                means["ensemble"] >= best_single,
                f"ensemble mean {metric.upper()} {means['ensemble']:.3f} against the better "
                f"single detector's {best_single:.3f}",
            )
        )
    return summary


def _pair(row: dict[str, float], model: str) -> str:
    roc, ap = row.get(f"{model}_roc"), row.get(f"{model}_ap")
    return "–" if roc is None or np.isnan(roc) else f"{roc:.3f} / {ap:.3f}"


def _one(row: dict[str, float], model: str) -> str:
    roc = row.get(f"{model}_roc")
    return "–" if roc is None or np.isnan(roc) else f"{roc:.3f}"


def _span(low: float, high: float) -> str:
    return f"{low:.3f}" if low == high else f"{low:.3f}–{high:.3f}"


def format_table(summary: Summary) -> str:
    """A Markdown table: ours beside the published figures, then the means."""
    ref = {"pyod": "P1–P0 / DTE-U", "semi_supervised": "DTE-S", "dte_unsupervised": "DTE-U"}[
        summary.protocol
    ]
    lines = [
        f"Protocol: {summary.protocol}. {ENSEMBLE_NAMES[summary.protocol]}",
        "",
        f"| dataset | IF ROC | published IF ({ref}) | Δ | AE ROC | published AE range | "
        "‖z‖² ROC | ENS ROC | IF AP | AE AP | ENS AP | fusion ROC / AP | risk sum ROC / AP |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in summary.rows.items():
        lines.append(
            f"| {name} | {r['iforest_roc']:.3f}±{r['iforest_roc_std']:.3f} | "
            f"{_span(r['published_if_low'], r['published_if_high'])} | {r['iforest_gap']:+.3f} | "
            f"{r['autoencoder_roc']:.3f}±{r['autoencoder_roc_std']:.3f} | "
            f"{_span(r['published_ae_low'], r['published_ae_high'])} | {_one(r, 'distance')} | "
            f"{r['ensemble_roc']:.3f} | {r['iforest_ap']:.3f} | {r['autoencoder_ap']:.3f} | "
            f"{r['ensemble_ap']:.3f} | {_pair(r, 'fusion')} | {_pair(r, 'risk_sum')} |"
        )
    m = summary.mean
    means = {
        k: m(k) for k in ("distance_roc", "fusion_roc", "fusion_ap", "risk_sum_roc", "risk_sum_ap")
    }
    lines.append(
        f"| **mean** | {m('iforest_roc'):.3f} | | | {m('autoencoder_roc'):.3f} | | "
        f"{_one(means, 'distance')} | {m('ensemble_roc'):.3f} | {m('iforest_ap'):.3f} | "
        f"{m('autoencoder_ap'):.3f} | "
        f"{m('ensemble_ap'):.3f} | {_pair(means, 'fusion')} | {_pair(means, 'risk_sum')} |"
    )
    lines.append("")
    lines.append("All checks passed." if summary.passed else "Failed checks:")
    lines += [f"- {failure}" for failure in summary.failures]
    return "\n".join(lines)


def run(
    protocol: str = "pyod",
    seeds: Sequence[int] = range(10),
    datasets: Sequence[str] = DATASETS,
    ae_params: dict[str, Any] | None = None,
    directory: Path | None = None,
    verbose: bool = False,
) -> list[DatasetResult]:
    results = []
    for name in datasets:
        for seed in seeds:
            result = run_one(name, protocol, seed, ae_params, directory)
            if verbose:
                print(
                    f"{name:<16} seed {seed}: IF {result.iforest.roc_auc:.3f} "
                    f"AE {result.autoencoder.roc_auc:.3f} ENS {result.ensemble.roc_auc:.3f} "
                    + (f"fusion {result.fusion.roc_auc:.3f} " if result.fusion else "")
                    + (f"L2 {result.ensemble_l2:g} " if result.ensemble_l2 else "")
                    + f"({result.seconds:.0f} s)",
                    flush=True,
                )
            results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Detectors on public anomaly benchmarks.")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="pyod")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--epochs", type=int, default=None, help="autoencoder epochs override")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ae_params = {"epochs": args.epochs} if args.epochs else None
    results = run(args.protocol, range(args.seeds), args.datasets, ae_params, verbose=True)
    summary = summarize(results)
    print(format_table(summary))
    return 0 if summary.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
