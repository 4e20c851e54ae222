"""The weekly training graph: the seed's ``train_ensemble_models`` DAG as assets.

Seed task → asset (same dependency shape):

    extract_training_data → feature_engineering_train (+ feature_scaler)
        → [train_isolation_forest, train_autoencoder] → calculate_thresholds
        → validate_models → [register_models, a_b_test, replay_backtest]
        → promote_to_production

``replay_backtest`` (not in the seed) replays the last weeks of traffic with
the candidate and the active bundle side by side; promotion needs its pass.

Each weekly partition (Sunday 02:00 → Sunday 02:00 UTC) trains on the 30 days
of traffic before the partition's end. Frames go to the intermediate store,
models to the model volume, registry rows to ClickHouse. TensorFlow is
imported only inside ``train_autoencoder``.
"""

import time
from datetime import timedelta

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from fraud_assets import registry
from fraud_assets.assets.replay_steps import (
    active_bundle,
    fit_score_scale,
    replay_chunks,
    replay_gate,
    split_by_rows,
)
from fraud_assets.assets.training_steps import (
    ab_test_verdict,
    artifact_ref,
    combiner_table,
    fit_combiner,
    label_and_split,
    model_version,
    read_labels,
    training_rows,
    validation_metrics_of_run,
    validation_report,
)
from fraud_assets.bundle import JsonReport, ModelThresholds, ScoringBundle
from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets.clickhouse.errors import CLICKHOUSE_RETRY_POLICY, retry_transient_only
from fraud_assets.detectors.calibration import ScoreCalibrator
from fraud_assets.detectors.thresholds import ThresholdStrategy, fit_threshold
from fraud_assets.evaluation.replay import Tolerances
from fraud_assets.evaluation.tables import scenario_table
from fraud_assets.features import FeatureScaler, extract_features
from fraud_assets.features.history import load_feature_inputs, load_transactions
from fraud_assets.metadata_charts import line_chart, markdown_image
from fraud_assets.notify import NotifierResource
from fraud_assets.notify.message import Notification, model_promoted_notification
from fraud_assets.partitions import weekly_partitions
from fraud_assets.validation import split_valid

GROUP = "training"
INTERMEDIATE = "intermediate_io_manager"
MODELS = "model_io_manager"
_common = {"partitions_def": weekly_partitions, "group_name": GROUP, "owners": ["team:fraud-ml"]}
_retried = {"retry_policy": CLICKHOUSE_RETRY_POLICY}  # transient ClickHouse faults only


class ExtractTrainingConfig(dg.Config):
    lookback_days: int = Field(30, description="Days of traffic before the partition end.")
    validation_fraction: float = Field(
        0.2, description="The latest share of the window held out for validation (time-ordered)."
    )


@dg.asset(
    **_common,
    **_retried,
    io_manager_key=INTERMEDIATE,
    kinds={"clickhouse", "polars"},
    description="Seed task 1: the last 30 days of transactions before the week's end, labelled "
    "with the fraud labels known by then and split in time: the oldest 80% (known frauds "
    "excluded) trains, the newest 20% (all rows) validates. Rows that scoring quarantines "
    "(validation.split_valid: corrupt amounts, duplicate ids, …) are left out: the models learn "
    "from the rows they will score.",
)
@retry_transient_only
def extract_training_data(
    context: dg.AssetExecutionContext, config: ExtractTrainingConfig, clickhouse: ClickHouseResource
) -> pl.DataFrame:
    end = context.partition_time_window.end
    start = end - timedelta(days=config.lookback_days)
    with clickhouse.get_client() as client:
        loaded = load_transactions(client, start, end)
        labels = read_labels(client, start, end, known_by=end)
    transactions, invalid = split_valid(loaded, start, end)
    frame = label_and_split(transactions, labels, end, config.validation_fraction)
    if frame.is_empty():
        raise dg.Failure(
            f"no transactions between {start} and {end}: generate or load data first "
            "(`fraud-assets generate --start ... --end ...`)"
        )
    counts = frame.group_by("split").agg(
        pl.len().alias("rows"), pl.col("is_fraud").sum().alias("known_frauds")
    )
    context.add_output_metadata(
        {
            "window": f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC",
            "splits": dg.MetadataValue.md(
                counts.sort("split").to_pandas().to_markdown(index=False)
            ),
            "known_frauds_excluded_from_training": int(
                frame.filter((pl.col("split") == "train") & (pl.col("is_fraud") == 1)).height
            ),
            "invalid_rows_left_out": invalid.height,
            "invalid_row_reasons": dg.MetadataValue.md(
                invalid.group_by("reason").len().sort("reason").to_pandas().to_markdown(index=False)
                if invalid.height
                else "none"
            ),
        }
    )
    return frame


@dg.multi_asset(
    outs={
        "feature_engineering_train": dg.AssetOut(
            io_manager_key=INTERMEDIATE,
            kinds={"polars"},
            owners=_common["owners"],
            description="Seed task 2: the shared feature pipeline over the training window "
            "(history before the window read from ClickHouse).",
        ),
        "feature_scaler": dg.AssetOut(
            io_manager_key=MODELS,
            kinds={"scikit-learn"},
            owners=_common["owners"],
            description="The scaler fitted on the training split, saved with the models.",
        ),
    },
    partitions_def=weekly_partitions,
    group_name=GROUP,
    ins={"extract_training_data": dg.AssetIn()},
    **_retried,
)
@retry_transient_only
def feature_engineering_train(
    context: dg.AssetExecutionContext,
    clickhouse: ClickHouseResource,
    extract_training_data: pl.DataFrame,
):
    window = extract_training_data
    start, end = window["timestamp"].min(), context.partition_time_window.end
    with clickhouse.get_client() as client:
        # The window's transactions are this asset's input: read only their history.
        inputs = load_feature_inputs(client, start, end, with_transactions=False)
    features = extract_features(
        window.drop(["is_fraud", "fraud_type", "split"]), inputs.history, inputs.labels
    )
    features = features.with_columns(window.select("split", "is_fraud", "fraud_type"))
    train = training_rows(features)
    scaler = FeatureScaler().fit(train)
    yield dg.Output(
        features,
        output_name="feature_engineering_train",
        metadata={"dagster/row_count": features.height, "features": len(scaler.columns)},
    )
    yield dg.Output(
        scaler,
        output_name="feature_scaler",
        metadata={
            "fitted_rows": train.height,
            "model_version": model_version(context.partition_key),
        },
    )


class IsolationForestConfig(dg.Config):
    n_estimators: int = 100
    contamination: float = 0.01
    max_features: float = 1.0
    random_state: int = 42


@dg.asset(
    **_common,
    io_manager_key=MODELS,
    kinds={"scikit-learn"},
    description="Seed task 3: an Isolation Forest on the normal training rows (n_estimators=100, "
    "contamination=0.01, max_features=1.0).",
)
def train_isolation_forest(
    context: dg.AssetExecutionContext,
    config: IsolationForestConfig,
    feature_engineering_train: pl.DataFrame,
    feature_scaler,
):
    from fraud_assets.detectors.isolation_forest import IsolationForestDetector

    x = feature_scaler.transform(training_rows(feature_engineering_train))
    started = time.perf_counter()
    detector = IsolationForestDetector(
        n_estimators=config.n_estimators,
        contamination=config.contamination,
        max_features=config.max_features,
        random_state=config.random_state,
    ).fit(x)
    return dg.Output(
        detector,
        metadata={
            "model_version": model_version(context.partition_key),
            "training_samples": len(x),
            "fit_seconds": round(time.perf_counter() - started, 2),
        },
    )


class AutoencoderConfig(dg.Config):
    epochs: int = 50
    batch_size: int = 32
    patience: int = 5
    steps_per_execution: int = 64
    random_state: int = 42


@dg.asset(
    **_common,
    io_manager_key=MODELS,
    kinds={"tensorflow", "keras"},
    description="Seed task 4: the autoencoder Input(n) → 30 → 10 (latent) → 30 → n on the "
    "normalised normal rows, early stopping (patience 5) on a validation split.",
)
def train_autoencoder(
    context: dg.AssetExecutionContext,
    config: AutoencoderConfig,
    feature_engineering_train: pl.DataFrame,
    feature_scaler,
):
    from fraud_assets.detectors.autoencoder import AutoencoderDetector

    x = feature_scaler.transform(training_rows(feature_engineering_train))
    started = time.perf_counter()
    detector = AutoencoderDetector(
        epochs=config.epochs,
        batch_size=config.batch_size,
        patience=config.patience,
        steps_per_execution=config.steps_per_execution,
        random_state=config.random_state,
    ).fit(x)
    history = detector.history_
    curve = pl.DataFrame(
        {
            "epoch": list(range(1, len(history["loss"]) + 1)),
            "loss": history["loss"],
            "val_loss": history.get("val_loss", [float("nan")] * len(history["loss"])),
        }
    )
    return dg.Output(
        detector,
        metadata={
            "model_version": model_version(context.partition_key),
            "training_samples": len(x),
            "epochs_run": curve.height,
            "fit_seconds": round(time.perf_counter() - started, 2),
            "training_curve": dg.MetadataValue.md(
                curve.to_pandas().to_markdown(index=False, floatfmt=".5f")
            ),
            "training_curve_plot": dg.MetadataValue.md(
                markdown_image(
                    line_chart(
                        {"loss": curve["loss"].to_list(), "val_loss": curve["val_loss"].to_list()},
                        title="Autoencoder training curve",
                        x_label="epoch",
                        y_label="reconstruction MSE",
                    ),
                    "training curve",
                )
            ),
            "final_val_loss": float(curve["val_loss"][-1]),
        },
    )


class ThresholdConfig(dg.Config):
    strategy: str = Field(
        "percentile", description="percentile | mean_std | f1_optimal | youden | max_alert_rate"
    )
    params: dict[str, float] = Field(default_factory=dict, description="e.g. {'q': 95}")
    fit_combiner: bool = Field(
        True,
        description="Fit the ensemble's combiner on the labelled training split (needs at least "
        "10 known frauds); otherwise the configured weighted sum combines the layers.",
    )
    combiner_l2: float | None = Field(
        None,
        description="The combiner's L2 pull toward its prior; unset, the validation split "
        "judges it: 20 unless another candidate's log loss there beats 20's by more than one "
        "standard error.",
    )
    stable_scores: bool = Field(
        True,
        description="Map the ensemble risk's quantiles on the training window onto the active "
        "bundle's on the same rows, so a risk means the same across versions (identity when "
        "no bundle is active).",
    )
    review_capacity_per_hour: float | None = Field(
        None,
        description="Reviews per hour analysts can handle: the review line moves so the "
        "training window would send about this many transactions an hour to review.",
    )
    block_precision_target: float | None = Field(
        None,
        description="Block only as far down the risk as the labelled training window's blocked "
        "transactions keep at least this precision (labels known at the week's end).",
    )
    score_mapping_rows: int = Field(
        200_000, description="Rows (an even subsample of the window) the score mapping is fit on."
    )


@dg.asset(
    **_common,
    io_manager_key=MODELS,
    kinds={"scikit-learn"},
    description="Seed task 5: one alert threshold per model (95th percentile of the training "
    "scores unless configured), the calibration of each model's score to 0–100 risk, the "
    "ensemble combiner fitted on the labelled training split, and the map of the ensemble risk "
    "onto the active bundle's scale and the capacity-driven review and block lines.",
)
def calculate_thresholds(
    context: dg.AssetExecutionContext,
    config: ThresholdConfig,
    clickhouse: ClickHouseResource,
    feature_engineering_train: pl.DataFrame,
    feature_scaler,
    train_isolation_forest,
    train_autoencoder,
) -> dg.Output[ModelThresholds]:
    train = training_rows(feature_engineering_train)
    x = feature_scaler.transform(train)
    strategy = ThresholdStrategy(config.strategy, config.params)
    labels = None
    if strategy.kind in ("f1_optimal", "youden"):
        labelled = feature_engineering_train.filter(pl.col("split") == "validation")
        x = feature_scaler.transform(labelled)
        labels = labelled["is_fraud"].to_numpy()
    iso_scores = train_isolation_forest.anomaly_score(x)
    ae_scores = train_autoencoder.anomaly_score(x)
    thresholds = ModelThresholds(
        isolation_forest=fit_threshold(iso_scores, strategy, labels),
        autoencoder=fit_threshold(ae_scores, strategy, labels),
        isolation_calibrator=ScoreCalibrator().fit(iso_scores),
        autoencoder_calibrator=ScoreCalibrator().fit(ae_scores),
        strategy={"kind": strategy.kind, "params": dict(strategy.params)},
    )
    bundle = ScoringBundle(
        version=model_version(context.partition_key),
        scaler=feature_scaler,
        isolation_forest=train_isolation_forest,
        autoencoder=train_autoencoder,
        thresholds=thresholds,
    )
    if config.fit_combiner:
        thresholds.combiner = fit_combiner(bundle, feature_engineering_train, l2=config.combiner_l2)
    with clickhouse.get_client() as client:
        active = active_bundle(client) if config.stable_scores else None
    thresholds.score_mapping, scale = fit_score_scale(
        bundle,
        active,
        feature_engineering_train,
        stable_scores=config.stable_scores,
        review_capacity_per_hour=config.review_capacity_per_hour,
        block_precision_target=config.block_precision_target,
        max_rows=config.score_mapping_rows,
    )
    return dg.Output(
        thresholds,
        metadata={
            "model_version": model_version(context.partition_key),
            "isolation_forest_threshold": thresholds.isolation_forest,
            "autoencoder_threshold": thresholds.autoencoder,
            "strategy": f"{strategy.kind} {dict(strategy.params)}",
            "combiner": dg.MetadataValue.md(combiner_table(thresholds.combiner)),
        }
        | {
            key: dg.MetadataValue.md(value) if key.startswith(("score_dist", "risk_")) else value
            for key, value in scale.items()
        },
    )


@dg.asset(
    **_common,
    io_manager_key=MODELS,
    kinds={"scikit-learn"},
    description="Seed task 6: precision, recall, F1, ROC-AUC and PR-AUC of each model and the "
    "ensemble on the held-out newest 20% (labels include the frauds excluded from training), "
    "plus latency per 1k transactions.",
)
def validate_models(
    context: dg.AssetExecutionContext,
    feature_engineering_train: pl.DataFrame,
    feature_scaler,
    train_isolation_forest,
    train_autoencoder,
    calculate_thresholds: ModelThresholds,
) -> JsonReport:
    bundle = ScoringBundle(
        version=model_version(context.partition_key),
        scaler=feature_scaler,
        isolation_forest=train_isolation_forest,
        autoencoder=train_autoencoder,
        thresholds=calculate_thresholds,
    )
    validation = feature_engineering_train.filter(pl.col("split") == "validation")
    report, table = validation_report(bundle, validation)
    report["training_rows"] = training_rows(feature_engineering_train).height
    context.add_output_metadata(
        {
            "metrics": dg.MetadataValue.md(table),
            "recall_per_scenario_at_2pct": dg.MetadataValue.md(scenario_table(report)),
            "validation_rows": validation.height,
            "validation_frauds": int(validation["is_fraud"].sum()),
            "ensemble_pr_auc": report["ensemble"]["pr_auc"],
            "ensemble_roc_auc": report["ensemble"]["roc_auc"],
            "ensemble_recall_at_0.5pct": report["ensemble"]["recall_at_0.5%"],
            "ensemble_recall_at_1pct": report["ensemble"]["recall_at_1.0%"],
            "ensemble_recall_at_2pct": report["ensemble"]["recall_at_2.0%"],
            "ensemble_block_precision": report["ensemble"]["block_precision"],
            "ensemble_block_rate": report["ensemble"]["block_rate"],
            "ensemble_blocked": report["decisions"]["blocked"],
            "ensemble_review": report["decisions"]["review"],
            "latency_ms_per_1k": report["latency_ms_per_1k"],
        }
    )
    return JsonReport(report)


class QualityGates(dg.Config):
    """Floors a candidate must reach on the labelled validation window to be registered.

    The validation labels are those known at the partition end, and labels
    arrive late (analysts within hours, customer reports in about a day,
    chargebacks in about a week): frauds of the window's last days still look
    legitimate. Precision there is a lower bound (a bundle that blocked only
    frauds measured 0.45 on immature labels and 1.00 once they had matured),
    so the precision floor is low and a label-free cap on the block rate keeps
    a broken combiner from blocking customers wholesale.
    """

    min_roc_auc: float = Field(0.90, description="Ensemble ROC-AUC.")
    min_recall_at_2pct: float = Field(
        0.50, description="Share of labelled frauds among the riskiest 2% of transactions."
    )
    min_block_precision: float = Field(
        0.30,
        description="Share of blocked transactions labelled fraud by the partition end (when "
        "any are blocked); a lower bound while labels mature.",
    )
    max_block_rate: float = Field(
        0.02, description="Largest share of validation transactions the bundle may block."
    )


@dg.asset_check(
    asset=validate_models,
    blocking=True,
    description="Quality gates before registration and promotion: minimum ensemble ROC-AUC, "
    "recall at a 2% review budget and block precision where labels exist, and a maximum "
    "block rate.",
)
def validation_quality_gates(
    context: dg.AssetCheckExecutionContext, config: QualityGates
) -> dg.AssetCheckResult:
    metrics = validation_metrics_of_run(context.instance, context.run.run_id)
    if metrics.get("validation_frauds", 0) == 0:
        return dg.AssetCheckResult(
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"note": "no labelled frauds in the validation window: gates not applicable"},
        )
    checks = {
        "ensemble_roc_auc": config.min_roc_auc,
        "ensemble_recall_at_2pct": config.min_recall_at_2pct,
        "ensemble_block_precision": config.min_block_precision,
    }
    if metrics.get("ensemble_blocked", 0) == 0:
        checks.pop("ensemble_block_precision")  # nothing blocked: precision is undefined
    failures = [
        f"{name} {metrics.get(name, float('nan')):.3f} < {floor}"
        for name, floor in checks.items()
        if not metrics.get(name, float("nan")) >= floor  # NaN fails too
    ]
    block_rate = metrics.get("ensemble_block_rate", 0.0)
    if not block_rate <= config.max_block_rate:
        failures.append(f"ensemble_block_rate {block_rate:.4f} > {config.max_block_rate}")
    return dg.AssetCheckResult(
        passed=not failures,
        metadata={name: float(metrics.get(name, float("nan"))) for name in checks}
        | {"ensemble_block_rate": float(block_rate), "failures": ", ".join(failures) or "none"},
    )


@dg.asset(
    **_common,
    **_retried,
    deps=[validate_models],
    kinds={"clickhouse"},
    description="Seed task 7: the bundle's rows in model_registry (one per model type, version "
    "v{YYYYMMDD}_{git_commit}, status 'testing', artifact paths and sha256).",
)
@retry_transient_only
def register_models(
    context: dg.AssetExecutionContext, clickhouse: ClickHouseResource, validate_models: JsonReport
) -> dg.MaterializeResult:
    version = model_version(context.partition_key)
    report = validate_models.data
    refs = {
        name: artifact_ref(context, name)
        for name in (
            "feature_scaler",
            "train_isolation_forest",
            "train_autoencoder",
            "calculate_thresholds",
        )
    }
    trained_at = context.partition_time_window.end
    samples = int(report["training_rows"])
    thresholds = report["thresholds"]
    records = []
    for model_type, asset_name, metrics_key in (
        ("isolation_forest", "train_isolation_forest", "isolation_forest"),
        ("autoencoder", "train_autoencoder", "autoencoder"),
        ("ensemble", "calculate_thresholds", "ensemble"),
    ):
        metrics = report[metrics_key]
        records.append(
            registry.ModelRecord(
                model_type=model_type,
                version=version,
                trained_at=trained_at,
                training_samples=samples,
                model_path=refs[asset_name].path,
                model_sha256=refs[asset_name].sha256,
                scaler_path=refs["feature_scaler"].path,
                scaler_sha256=refs["feature_scaler"].sha256,
                precision=np.nan_to_num(metrics["precision"]),
                recall=np.nan_to_num(metrics["recall"]),
                f1_score=np.nan_to_num(metrics["f1"]),
                threshold=thresholds.get(model_type, 0.0),
                partition_key=context.partition_key,
                metrics=metrics
                | (
                    {
                        "isolation_forest_path": refs["train_isolation_forest"].path,
                        "isolation_forest_sha256": refs["train_isolation_forest"].sha256,
                        "autoencoder_path": refs["train_autoencoder"].path,
                        "autoencoder_sha256": refs["train_autoencoder"].sha256,
                    }
                    if model_type == "ensemble"
                    else {}
                ),
            )
        )
    with clickhouse.get_client() as client:
        written = registry.register(client, records)
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "statuses": ", ".join(f"{r.model_type}={r.status}" for r in written),
        }
    )


class ABTestConfig(dg.Config):
    traffic_share: float = Field(
        0.10, description="Share of recent traffic routed to the candidate."
    )
    days: int = Field(7, description="Days of recent traffic the test replays.")
    max_alert_rate_increase: float = Field(
        0.5, description="Largest relative rise in review+block rate the candidate may bring."
    )
    max_recall_drop: float = Field(0.05, description="Largest absolute drop in labelled recall.")
    confidence_level: float = Field(
        0.95,
        description="Confidence of the one-sided harm tests, evaluated once at the fixed horizon "
        "(`days`): the candidate is rejected only when it is worse beyond a margin with this "
        "confidence.",
    )
    min_frauds: int = Field(
        5, description="Labelled frauds each arm needs before recall is judged."
    )


@dg.asset(
    **_common,
    **_retried,
    io_manager_key=MODELS,
    kinds={"clickhouse"},
    description="Seed task 8: the candidate scores a 10% slice of recent users (stable hash of "
    "user_id, so one user always sees one policy) and the active models an equal control slice; "
    "a fixed-horizon stopping rule (one-sided harm tests on alert rate and labelled recall at a "
    "stated confidence level) decides promote or rollback, with the statistics as the reason.",
)
@retry_transient_only
def a_b_test(
    context: dg.AssetExecutionContext,
    config: ABTestConfig,
    clickhouse: ClickHouseResource,
    feature_scaler,
    train_isolation_forest,
    train_autoencoder,
    calculate_thresholds: ModelThresholds,
    validate_models: JsonReport,
) -> JsonReport:
    candidate = ScoringBundle(
        version=model_version(context.partition_key),
        scaler=feature_scaler,
        isolation_forest=train_isolation_forest,
        autoencoder=train_autoencoder,
        thresholds=calculate_thresholds,
    )
    verdict = ab_test_verdict(context, clickhouse, candidate, config)
    context.add_output_metadata(
        {
            "decision": verdict["decision"],
            "reason": verdict["reason"],
            "comparison": dg.MetadataValue.md(verdict.get("table", "")),
            "stopping_rule": verdict.get("stopping_rule", "none: no comparison needed"),
        }
    )
    return JsonReport(verdict)


class ReplayConfig(dg.Config):
    weeks: int = Field(2, description="Weeks of traffic before the partition end to replay.")
    chunk_hours: int = Field(
        24,
        description="Hours of traffic read and scored at a time: memory follows the chunk, not "
        "the window; the verdict is the same for any chunk size.",
    )
    max_chunk_rows: int = Field(
        1_000_000,
        description="A chunk holding more transactions is cut at hour boundaries (peak memory "
        "is ~2.5–5 KiB per chunk row); an hour busier than this stays one chunk.",
    )
    label_delay_days: int = Field(
        5,
        description="Transactions older than this (at the partition end) have matured labels "
        "and count in the label metrics; as for matured_label_performance.",
    )
    max_caught_drop: float = Field(
        Tolerances.max_caught_drop,
        description="Largest relative drop in matured frauds caught (review or block).",
    )
    max_caught_amount_drop: float = Field(
        Tolerances.max_caught_amount_drop,
        description="Largest relative drop in the amount of the matured frauds caught.",
    )
    max_fp_rate_increase: float = Field(
        Tolerances.max_fp_rate_increase,
        description="Largest absolute rise in the false-positive rate (flagged legitimate share).",
    )
    max_review_increase: float = Field(
        Tolerances.max_review_increase, description="Largest relative rise in reviews per hour."
    )
    max_block_precision_drop: float = Field(
        Tolerances.max_block_precision_drop,
        description="Largest absolute drop in block precision (matured blocks).",
    )
    min_frauds: int = Field(
        Tolerances.min_frauds,
        description="Matured frauds the active bundle's replay needs before label metrics count.",
    )
    min_blocked: int = Field(
        Tolerances.min_blocked,
        description="Matured blocks each bundle needs before block precision is judged.",
    )

    def tolerances(self) -> Tolerances:
        return Tolerances(
            max_caught_drop=self.max_caught_drop,
            max_caught_amount_drop=self.max_caught_amount_drop,
            max_fp_rate_increase=self.max_fp_rate_increase,
            max_review_increase=self.max_review_increase,
            max_block_precision_drop=self.max_block_precision_drop,
            min_frauds=self.min_frauds,
            min_blocked=self.min_blocked,
        )


@dg.asset(
    **_common,
    **_retried,
    io_manager_key=MODELS,
    deps=[validate_models],
    kinds={"clickhouse"},
    description="Replay gate: the last 2 weeks of traffic in ClickHouse scored by the candidate "
    "and the active bundle side by side, a day at a time with only counts kept; compared on "
    "matured labels (frauds caught and their amount, false-positive rate, block precision) and "
    "reviews per hour. The candidate passes unless worse beyond the tolerances; the verdict and its reason "
    "go to model_replay_verdicts. Production tables are only read.",
)
@retry_transient_only
def replay_backtest(
    context: dg.AssetExecutionContext,
    config: ReplayConfig,
    clickhouse: ClickHouseResource,
    feature_scaler,
    train_isolation_forest,
    train_autoencoder,
    calculate_thresholds: ModelThresholds,
) -> JsonReport:
    end = context.partition_time_window.end
    try:
        chunks = replay_chunks(end - timedelta(weeks=config.weeks), end, config.chunk_hours)
        split_by_rows(chunks, {}, config.max_chunk_rows)
    except ValueError as exc:  # a bad configuration: no retry can fix it
        raise dg.Failure(str(exc), allow_retries=False) from None
    candidate = ScoringBundle(
        version=model_version(context.partition_key),
        scaler=feature_scaler,
        isolation_forest=train_isolation_forest,
        autoencoder=train_autoencoder,
        thresholds=calculate_thresholds,
    )
    verdict = replay_gate(
        clickhouse,
        candidate,
        context.partition_key,
        end,
        weeks=config.weeks,
        label_delay_days=config.label_delay_days,
        tolerances=config.tolerances(),
        chunk_hours=config.chunk_hours,
        max_chunk_rows=config.max_chunk_rows,
    )
    timing = verdict["timing"]
    context.add_output_metadata(
        {
            "passed": verdict["passed"],
            "reason": verdict["reason"],
            "active_version": verdict["active_version"] or "none",
            "window": verdict["window"],
            "labels_matured_before": verdict["matured_before"],
            "comparison": dg.MetadataValue.md(verdict["table"]),
        }
        | {f"replay_{key}": value for key, value in timing.items()}
    )
    return JsonReport(verdict)


@dg.asset(
    **_common,
    **_retried,
    deps=[register_models],
    kinds={"clickhouse"},
    description="Seed task 9: when validation passed its gates, the replay gate passed and the "
    "A/B test says promote, the new version becomes 'active' and the previous one 'archived' in "
    "one atomic registry write; a notification says what changed.",
)
@retry_transient_only
def promote_to_production(
    context: dg.AssetExecutionContext,
    clickhouse: ClickHouseResource,
    notifier: NotifierResource,
    a_b_test: JsonReport,
    replay_backtest: JsonReport,
) -> dg.MaterializeResult:
    version = model_version(context.partition_key)
    verdict = promotion_decision(a_b_test.data, replay_backtest.data)
    with clickhouse.get_client() as client:
        previous = registry.active_models(client).get("ensemble")
        if verdict["decision"] != "promote":
            registry.set_status(client, version, registry.REJECTED, verdict["reason"])
            message = f"{version} not promoted: {verdict['reason']}"
            notification = Notification("Model not promoted", message, severity="warning")
        else:
            archived = registry.promote(client, version, verdict["reason"])
            message = f"{version} promoted to production ({verdict['reason']})" + (
                f"; archived {', '.join(archived)}" if archived else ""
            )
            notification = model_promoted_notification(
                "fraud ensemble",
                version,
                previous.version if previous and previous.version != version else None,
            )
        active = registry.active_models(client).get("ensemble")
    delivery = notifier.send(notification, context.log)
    if active is not None and active.version == version:
        context.log_event(
            dg.AssetMaterialization(
                asset_key="production_models",
                description=message,
                metadata={"version": version, "model_path": active.model_path},
            )
        )
    return dg.MaterializeResult(
        metadata={"decision": verdict["decision"], "version": version, "message": message}
        | delivery.as_metadata()
    )


def promotion_decision(ab_verdict: dict, replay_verdict: dict) -> dict:
    """Promote only when the replay gate passed and the A/B test says promote."""
    if not replay_verdict["passed"]:
        return {"decision": "reject", "reason": f"replay gate: {replay_verdict['reason']}"}
    if ab_verdict["decision"] != "promote":
        return ab_verdict
    return {
        "decision": "promote",
        "reason": f"{ab_verdict['reason']}; replay gate: {replay_verdict['reason']}",
    }


production_models = dg.AssetSpec(
    "production_models",
    group_name="models",
    description="The active model bundle in model_registry. Materialized by promote_to_production "
    "(and by rollbacks); every hourly scoring asset depends on it, so lineage shows which "
    "models scored which hours.",
    kinds={"clickhouse"},
    owners=["team:fraud-ml"],
    deps=[promote_to_production],
)

train_ensemble_models = dg.define_asset_job(
    "train_ensemble_models",
    selection=dg.AssetSelection.groups(GROUP),
    partitions_def=weekly_partitions,
    description="The seed's weekly training DAG.",
)

weekly_training_schedule = dg.build_schedule_from_partitioned_job(
    train_ensemble_models,
    name="train_ensemble_models_weekly",
    description="Sunday 02:00 UTC: train on the week that just ended.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

defs = dg.Definitions(
    assets=[
        extract_training_data,
        feature_engineering_train,
        train_isolation_forest,
        train_autoencoder,
        calculate_thresholds,
        validate_models,
        register_models,
        a_b_test,
        replay_backtest,
        promote_to_production,
        production_models,
    ],
    asset_checks=[validation_quality_gates],
    jobs=[train_ensemble_models],
    schedules=[weekly_training_schedule],
)
