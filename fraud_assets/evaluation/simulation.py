"""Fraud-simulation check: train on simulated weeks, score the next week, measure every layer.

The evaluation runs the production code, not a copy of it:

1. the generator writes ``days`` of traffic for ``users`` customers with a
   fixed seed into a temporary embedded ClickHouse;
2. the weekly training graph (``extract_training_data`` … ``validate_models``)
   runs in-process for the week that ends ``test_days`` before the data ends,
   with the same assets, IO managers and configs as the schedule;
3. the last ``test_days`` (default a week) are featurised exactly as the hourly
   scoring graph does (``load_feature_inputs`` + ``extract_features``; a
   transaction's features do not depend on the window it is computed in) and
   scored by the trained ``ScoringBundle``;
4. every layer and the ensemble are measured against the *matured* ground
   truth (every label the simulation will ever emit, not only those known at
   scoring time).

``check_goals`` compares the result with the detection-quality goals; the CI
test runs a small setting and the README table comes from a larger one
(``fraud-assets evaluate``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from fraud_assets.evaluation.tables import (
    LAYERS,
    SCENARIO_BUDGET,
    SCENARIO_KEY,
    fmt,
    layer_table,
    scenario_table,
)

# A Sunday 02:00 UTC, so the training week is one weekly partition; the test week ends here.
DEFAULT_END = datetime(2026, 3, 1, 2, tzinfo=UTC)
TRAINING_ASSETS = (
    "extract_training_data",
    "feature_engineering_train",
    "feature_scaler",
    "train_isolation_forest",
    "train_autoencoder",
    "calculate_thresholds",
    "validate_models",
)


@dataclass(frozen=True)
class SimulationSettings:
    """One simulated evaluation. ``days`` includes the ``test_days`` scored at the end.

    The first ``warmup_days`` only give the training window a history, as a
    running exchange always has: without it the first training days would see
    every customer's device, country and wallet as new.
    """

    users: int = 3000
    days: int = 42
    seed: int = 7
    epochs: int = 15
    n_estimators: int = 100
    test_days: int = 7
    warmup_days: int = 7
    end: datetime = DEFAULT_END

    def __post_init__(self) -> None:
        if self.days < self.test_days + self.warmup_days + 21:
            raise ValueError(
                "need a warm-up and at least three weeks of training traffic before the test week"
            )
        if self.end.weekday() != 6 or self.end.hour != 2 or self.end.tzinfo is None:
            raise ValueError("end must be a Sunday 02:00 UTC (a weekly partition boundary)")

    @property
    def test_start(self) -> datetime:
        return self.end - timedelta(days=self.test_days)

    @property
    def training_days(self) -> int:
        """The training window (the graph's look-back), after the warm-up, at most 30 days."""
        return min(30, self.days - self.test_days - self.warmup_days)

    @property
    def start(self) -> datetime:
        return (self.end - timedelta(days=self.days)).replace(hour=0)


@dataclass(frozen=True)
class SimulationGoals:
    """The issue's goals for the ensemble on the scored week."""

    min_pr_auc: float = 0.5
    min_roc_auc: float = 0.95
    min_block_precision: float = 0.9
    min_recall_at_2pct: float = 0.8
    min_scenario_recall_at_2pct: float = 0.6
    ensemble_beats_layers_on_pr_auc: bool = True


@dataclass
class GoalCheck:
    goal: str
    value: float
    target: str
    passed: bool


@dataclass(frozen=True)
class TrainedWeek:
    bundle: Any
    training: pl.DataFrame
    scored: pl.DataFrame


@dataclass
class SimulationResult:
    settings: SimulationSettings
    test: dict[str, Any]  # per layer metrics on the scored week
    validation: dict[str, Any]  # validate_models' report (the training graph's own numbers)
    data: dict[str, Any]  # rows, frauds per scenario, incidents
    seconds: dict[str, float] = field(default_factory=dict)
    # In memory only (not in to_dict): what the numbers came from, for further looks
    # (``penalty_sweep``): the bundle, its training window's features (``split``, labels
    # known at the partition end) and the scored days' features (matured labels).
    frames: TrainedWeek | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        settings = asdict(self.settings)
        settings["end"] = self.settings.end.isoformat()
        return {
            "settings": settings,
            "test": self.test,
            "validation": self.validation,
            "data": self.data,
            "seconds": self.seconds,
        }


# ---------------------------------------------------------------- measuring


def measure(bundle, features: pl.DataFrame) -> dict[str, Any]:
    """Every metric of the check for labelled feature rows (``is_fraud``, ``fraud_type``)."""
    from fraud_assets.assets.training_steps import evaluate_bundle

    report = evaluate_bundle(bundle, features)
    report["rows"] = features.height
    report["frauds"] = int(features["is_fraud"].sum())
    return report


def check_goals(report: dict[str, Any], goals: SimulationGoals | None = None) -> list[GoalCheck]:
    """The ensemble's numbers against the goals (NaN never passes)."""
    goals = goals or SimulationGoals()
    ens = report["ensemble"]

    def at_least(goal: str, value: float, floor: float) -> GoalCheck:
        return GoalCheck(goal, value, f">= {floor}", bool(value >= floor))

    checks = [
        at_least("ensemble PR-AUC", ens["pr_auc"], goals.min_pr_auc),
        at_least("ensemble ROC-AUC", ens["roc_auc"], goals.min_roc_auc),
        at_least("block precision", ens["block_precision"], goals.min_block_precision),
        at_least("recall at a 2% review budget", ens["recall_at_2.0%"], goals.min_recall_at_2pct),
    ]
    for scenario, recall in ens[SCENARIO_KEY].items():
        checks.append(
            at_least(f"{scenario} recall at 2%", recall, goals.min_scenario_recall_at_2pct)
        )
    if goals.ensemble_beats_layers_on_pr_auc:
        best = max(report[name]["pr_auc"] for name in LAYERS if name != "ensemble")
        checks.append(
            GoalCheck(
                "ensemble PR-AUC above every single layer",
                ens["pr_auc"] - best,
                "> 0 (margin)",
                bool(ens["pr_auc"] > best),
            )
        )
    return checks


# ---------------------------------------------------------------- running


def local_resources(root: Path) -> dict[str, Any]:
    """The graphs' resources on an embedded ClickHouse and model/intermediate folders under ``root``."""
    from fraud_assets.clickhouse import ClickHouseResource
    from fraud_assets.io import ClickHousePandasIOManager, ClickHousePolarsIOManager, ModelIOManager
    from fraud_assets.io.intermediate import IntermediateFrameIOManager
    from fraud_assets.notify import NotifierResource

    dsn = f"chdb://{root / 'clickhouse'}"
    return {
        "clickhouse": ClickHouseResource(dsn=dsn),
        "polars_io_manager": ClickHousePolarsIOManager(dsn=dsn),
        "clickhouse_io_manager": ClickHousePandasIOManager(dsn=dsn),
        "model_io_manager": ModelIOManager(root=str(root / "models")),
        "intermediate_io_manager": IntermediateFrameIOManager(root=str(root / "intermediate")),
        "notifier": NotifierResource(),
    }


def train_bundle(settings: SimulationSettings, root: Path, resources: dict[str, Any]):
    """Run the training graph up to ``validate_models`` in-process; return (bundle, report)."""
    import dagster as dg

    from fraud_assets.assets import training
    from fraud_assets.bundle import ScoringBundle
    from fraud_assets.io.model_store import ModelStore

    job = dg.define_asset_job(
        "evaluation_training", selection=dg.AssetSelection.assets(*TRAINING_ASSETS)
    )
    defs = dg.Definitions.merge(training.defs, dg.Definitions(jobs=[job], resources=resources))
    key = training_partition(settings)
    result = defs.resolve_job_def("evaluation_training").execute_in_process(
        partition_key=key,
        instance=dg.DagsterInstance.ephemeral(),
        run_config={
            "ops": {
                "extract_training_data": {"config": {"lookback_days": settings.training_days}},
                "train_autoencoder": {"config": {"epochs": settings.epochs}},
                "train_isolation_forest": {"config": {"n_estimators": settings.n_estimators}},
            },
            "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
        },
        raise_on_error=False,
    )
    refs = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        metadata = materialization.metadata
        if "sha256" in metadata:
            refs[materialization.asset_key.to_user_string()] = (
                str(metadata["path"].value),
                str(metadata["sha256"].value),
            )
    missing = {
        "feature_scaler",
        "train_isolation_forest",
        "train_autoencoder",
        "calculate_thresholds",
        "validate_models",
    } - set(refs)
    if missing:
        errors = [
            f"{e.step_key}: {e.event_specific_data.error.message.strip()}"
            for e in result.all_events
            if e.event_type_value == "STEP_FAILURE"
        ]
        raise RuntimeError(f"training did not produce {sorted(missing)}: {'; '.join(errors)}")
    store = ModelStore(str(root / "models"))

    def load(name: str) -> Any:
        path, sha256 = refs[name]
        return store.load(path, expected_sha256=sha256)

    bundle = ScoringBundle(
        version=f"evaluation-{key}",
        scaler=load("feature_scaler"),
        isolation_forest=load("train_isolation_forest"),
        autoencoder=load("train_autoencoder"),
        thresholds=load("calculate_thresholds"),
    )
    return bundle, load("validate_models").data


def training_partition(settings: SimulationSettings) -> str:
    """The weekly partition that closes when the scored days begin."""
    from fraud_assets.partitions import weekly_partitions

    return weekly_partitions.get_partition_key_for_timestamp(
        (settings.test_start - timedelta(hours=1)).timestamp()
    )


def training_features(settings: SimulationSettings, resources: dict[str, Any]) -> pl.DataFrame:
    """The training graph's ``feature_engineering_train`` output, from its intermediate store."""
    store = Path(resources["intermediate_io_manager"].root) / "feature_engineering_train"
    return pl.read_parquet(store / f"{training_partition(settings)}.parquet")


def generate(settings: SimulationSettings, clickhouse):
    """The simulator's traffic for ``settings`` into ``clickhouse``; its summary."""
    from fraud_assets.generator.config import GeneratorConfig
    from fraud_assets.generator.load import generate_into_clickhouse

    config = GeneratorConfig(
        start=settings.start, end=settings.end, users=settings.users, seed=settings.seed
    )
    return generate_into_clickhouse(clickhouse, config)


def trained_and_scored_week(settings: SimulationSettings, root: Path):
    """Generate under ``root``, train on the weeks before the test days; return the bundle
    and the test days' features (with their labels), ready to score."""
    resources = local_resources(root)
    generate(settings, resources["clickhouse"])
    bundle, _ = train_bundle(settings, root, resources)
    return bundle, window_features(resources["clickhouse"], settings.test_start, settings.end)


def window_features(clickhouse, start: datetime, end: datetime) -> pl.DataFrame:
    """The scored window's features, as the scoring graph computes them, with matured labels."""
    from fraud_assets.assets.training_steps import read_labels
    from fraud_assets.features import extract_features
    from fraud_assets.features.history import load_feature_inputs

    with clickhouse.get_client() as client:
        inputs = load_feature_inputs(client, start, end)
        truth = read_labels(client, start, end, known_by=end + timedelta(days=3650))
    features = extract_features(inputs.transactions, inputs.history, inputs.labels)
    return features.join(
        truth.select("transaction_id", "is_fraud", "fraud_type"), on="transaction_id", how="left"
    ).with_columns(pl.col("is_fraud").fill_null(0), pl.col("fraud_type").fill_null(""))


def run_simulation(
    settings: SimulationSettings | None = None,
    workdir: Path | None = None,
    log: Callable[[str], None] = print,
) -> SimulationResult:
    """Generate, train, score the last week and measure it (see the module docstring)."""
    settings = settings or SimulationSettings()
    with tempfile.TemporaryDirectory(prefix="fraud_evaluation_", dir=workdir) as tmp:
        return _run(settings, Path(tmp), log)


def _run(settings: SimulationSettings, root: Path, log: Callable[[str], None]) -> SimulationResult:
    seconds: dict[str, float] = {}
    resources = local_resources(root)
    clickhouse = resources["clickhouse"]

    began = time.perf_counter()
    summary = generate(settings, clickhouse)
    seconds["generate"] = time.perf_counter() - began
    log(
        f"generated {summary.rows:,} transactions ({summary.fraud_total:,} fraudulent) "
        f"{settings.start:%Y-%m-%d} → {settings.end:%Y-%m-%d %H:%M} UTC, seed {settings.seed}"
    )

    began = time.perf_counter()
    bundle, validation = train_bundle(settings, root, resources)
    seconds["train"] = time.perf_counter() - began
    log(f"trained the week before {settings.test_start:%Y-%m-%d %H:%M} in {seconds['train']:.0f}s")

    began = time.perf_counter()
    features = window_features(clickhouse, settings.test_start, settings.end)
    test = measure(bundle, features)
    seconds["score"] = time.perf_counter() - began
    log(f"scored {features.height:,} transactions of the last {settings.test_days} days")
    return SimulationResult(
        settings=settings,
        test=test,
        validation=validation,
        frames=TrainedWeek(bundle, training_features(settings, resources), features),
        data={
            "transactions": summary.rows,
            "fraud_rows": summary.fraud_rows,
            "incidents": summary.incidents,
            "combiner": (
                bundle.thresholds.combiner.weights() if bundle.thresholds.combiner else None
            ),
            "combiner_l2": (
                bundle.thresholds.combiner.penalty_.describe()
                if bundle.thresholds.combiner
                else None
            ),
        },
        seconds=seconds,
    )


# ---------------------------------------------------------------- reporting


def goals_table(checks: list[GoalCheck]) -> str:
    lines = ["| goal | value | target | |", "|---|---|---|---|"]
    for c in checks:
        lines.append(
            f"| {c.goal} | {fmt(c.value)} | {c.target} | {'pass' if c.passed else 'FAIL'} |"
        )
    return "\n".join(lines)


def format_report(result: SimulationResult) -> str:
    s, test = result.settings, result.test
    decisions = test["decisions"]
    lines = [
        f"Fraud simulation: {s.users} users, {s.days} days (seed {s.seed}), trained on the "
        f"{s.training_days} days before {s.test_start:%Y-%m-%d %H:%M} UTC (autoencoder epochs "
        f"{s.epochs}), "
        f"scored {test['rows']:,} transactions of the next {s.test_days} days "
        f"({test['frauds']} fraudulent, matured labels).",
        "",
        layer_table(test),
        "",
        f"Decisions: {decisions['approved']:,} approved, {decisions['review']:,} review, "
        f"{decisions['blocked']:,} blocked.",
        "",
        f"Recall per scenario at a {SCENARIO_BUDGET:.0%} review budget:",
        "",
        scenario_table(test),
        "",
        goals_table(check_goals(test)),
    ]
    weights = result.data.get("combiner")
    if weights:
        fitted = ", ".join(f"{name} {weight:+.2f}" for name, weight in weights.items())
        lines += ["", f"Combiner (log-odds per unit, fitted on the training split): {fitted}."]
        lines += [f"Its L2 penalty toward the prior: {result.data.get('combiner_l2')}."]
    return "\n".join(lines)
