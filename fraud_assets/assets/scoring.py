"""The hourly scoring graph: the seed's ``ensemble_anomaly_detection`` DAG as assets.

Seed task → asset (same dependency shape):

    extract_transactions → feature_engineering
        → [statistical_layer, isolation_forest_prediction, autoencoder_prediction]
        → ensemble_decision
        → [store_results (table detected_anomalies_ensemble), send_alerts,
           update_metrics (table daily_model_performance)]

Every asset is hourly partitioned with a single-run backfill policy, so a
backfill over a day is one run that loads the models once. Intermediate frames
go to the intermediate store (the seed's XCom); results and quarantined rows go
to ClickHouse through the ClickHouse IO manager. The model version is resolved
once, in feature_engineering, and travels with the rows, so every layer of a
run scores with the same bundle even if a promotion happens meanwhile.
"""

import time

import dagster as dg
import polars as pl

from fraud_assets.assets import scoring_steps as steps
from fraud_assets.bundle_loader import prefetch_active_bundle, prefetch_bundle
from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets.clickhouse.errors import CLICKHOUSE_RETRY_POLICY, retry_transient_only
from fraud_assets.detectors.ensemble import EnsembleConfig
from fraud_assets.detectors.reasons import ReasonConfig
from fraud_assets.metadata_charts import histogram, markdown_image
from fraud_assets.notify import NotifierResource
from fraud_assets.partitions import hourly_partitions
from fraud_assets.validation import claimed_ids

INTERMEDIATE = "intermediate_io_manager"
SCORING_JOB_TAG = "fraud_assets/in_scoring_job"
CLICKHOUSE = "polars_io_manager"
# Steps that write scoring tables share one concurrency pool (limit 1 in the
# deployment), so two runs covering the same hour never interleave a slice's
# DELETE and INSERT: the later write replaces the earlier one whole.
WRITE_POOL = "fraud_scoring_writes"
_hourly = {"partitions_def": hourly_partitions, "backfill_policy": dg.BackfillPolicy.single_run()}
_retried = {"retry_policy": CLICKHOUSE_RETRY_POLICY}  # transient ClickHouse faults only
_writes = {**_retried, "pool": WRITE_POOL}
_owned = {"owners": ["team:fraud-ml"]}
_by_time = {"partition_expr": "timestamp"}


@dg.multi_asset(
    outs={
        "extract_transactions": dg.AssetOut(
            io_manager_key=INTERMEDIATE,
            group_name="ingestion",
            metadata=_by_time,
            kinds={"clickhouse", "polars"},
            owners=_owned["owners"],
            description="Seed task 1: the partition hour's transactions from crypto_transactions "
            "that pass validation.",
        ),
        "quarantined_transactions": dg.AssetOut(
            io_manager_key=CLICKHOUSE,
            group_name="ingestion",
            metadata=_by_time,
            kinds={"clickhouse"},
            owners=_owned["owners"],
            description="Transactions of the hour that could not be scored, each with its reason "
            "(kept, never dropped: input = scored + quarantined).",
        ),
    },
    **_hourly,
    **_writes,
)
@retry_transient_only
def extract_transactions(context: dg.AssetExecutionContext, clickhouse: ClickHouseResource):
    window = context.partition_time_window
    with clickhouse.get_client() as client:
        prefetch_active_bundle(client)  # the model imports overlap reading the hour
        raw = steps.read_transactions(client, window.start, window.end)
        claimed = claimed_ids(client, window.start, window.end)
    valid, quarantined = steps.validate(raw, window.start, window.end, context.run_id, claimed)
    reasons = quarantined.group_by("reason").len().sort("reason")
    yield dg.Output(
        valid,
        output_name="extract_transactions",
        metadata={
            "dagster/row_count": valid.height,
            "rows_read": raw.height,
            "rows_quarantined": quarantined.height,
        },
    )
    yield dg.Output(
        quarantined,
        output_name="quarantined_transactions",
        metadata={
            "reasons": dg.MetadataValue.md(steps.markdown(reasons) if reasons.height else "none"),
        },
    )


@dg.asset(
    **_hourly,
    **_owned,
    **_retried,
    group_name="features",
    io_manager_key=INTERMEDIATE,
    metadata=_by_time,
    deps=["production_models"],
    kinds={"polars"},
    description="Seed task 2: the shared feature pipeline (the same code as training), with the "
    "users' and wallets' history before the hour read from ClickHouse; tags every row with "
    "the active model version.",
)
@retry_transient_only
def feature_engineering(
    context: dg.AssetExecutionContext,
    clickhouse: ClickHouseResource,
    extract_transactions: pl.DataFrame,
) -> pl.DataFrame:
    window = context.partition_time_window
    started = time.perf_counter()
    with clickhouse.get_client() as client:
        version = steps.active_version_or_fail(client)
        prefetch_bundle(client, version)  # loaded already unless the run began here
        features = steps.features_for(client, extract_transactions, window.start, window.end)
    context.add_output_metadata(
        {
            "dagster/row_count": features.height,
            "model_version": version,
            "seconds": round(time.perf_counter() - started, 3),
        }
    )
    return features.with_columns(pl.lit(version).alias("model_version"))


@dg.asset(
    **_hourly,
    **_owned,
    group_name="scoring",
    io_manager_key=INTERMEDIATE,
    metadata=_by_time,
    ins={"feature_engineering": dg.AssetIn(metadata={"columns": steps.STATISTICAL_INPUTS})},
    kinds={"polars"},
    description="Seed task 3: fast rules with named flags and a 0–100 risk contribution (amount "
    "> 10x the user's average, 5+ transactions in 5 minutes, new wallet + high amount, "
    "impossible travel). Thresholds are in the bundle's rule config.",
)
def statistical_layer(
    context: dg.AssetExecutionContext, feature_engineering: pl.DataFrame
) -> pl.DataFrame:
    result = steps.statistical(feature_engineering)
    fired = result.select(pl.col("statistical_flags").list.len().gt(0).sum()).item()
    context.add_output_metadata({"dagster/row_count": result.height, "rows_with_flags": fired})
    return result


@dg.asset(
    **_hourly,
    **_owned,
    **_retried,
    group_name="scoring",
    io_manager_key=INTERMEDIATE,
    metadata=_by_time,
    kinds={"scikit-learn"},
    description="Seed task 4: the active Isolation Forest → isolation_score (higher = more "
    "anomalous), isolation_prediction (1 normal / -1 anomaly) and its calibrated 0–100 risk.",
)
@retry_transient_only
def isolation_forest_prediction(
    context: dg.AssetExecutionContext,
    clickhouse: ClickHouseResource,
    feature_engineering: pl.DataFrame,
) -> pl.DataFrame:
    result = steps.isolation(clickhouse, feature_engineering)
    context.add_output_metadata(
        {
            "dagster/row_count": result.height,
            "anomalies": int((result["isolation_prediction"] == -1).sum()),
        }
    )
    return result


@dg.asset(
    **_hourly,
    **_owned,
    **_retried,
    group_name="scoring",
    io_manager_key=INTERMEDIATE,
    metadata=_by_time,
    kinds={"keras"},
    description="Seed task 5: the active autoencoder → reconstruction_error, "
    "autoencoder_prediction, latent_features and its calibrated 0–100 risk. Runs as a numpy "
    "forward pass of the saved weights: scoring never imports TensorFlow.",
)
@retry_transient_only
def autoencoder_prediction(
    context: dg.AssetExecutionContext,
    clickhouse: ClickHouseResource,
    feature_engineering: pl.DataFrame,
) -> pl.DataFrame:
    result = steps.autoencoder(clickhouse, feature_engineering)
    context.add_output_metadata(
        {
            "dagster/row_count": result.height,
            "anomalies": int((result["autoencoder_prediction"] == -1).sum()),
        }
    )
    return result


class ReasonCodesConfig(dg.Config):
    """Run config of ``ensemble_decision``'s reason codes (defaults: ``ReasonConfig``)."""

    top_n: int = ReasonConfig.top_n
    min_points: float = ReasonConfig.min_points
    explain_top_fraction: float = ReasonConfig.explain_top_fraction
    max_explained_rows: int = ReasonConfig.max_explained_rows

    def reason_config(self) -> ReasonConfig:
        return ReasonConfig(
            top_n=self.top_n,
            min_points=self.min_points,
            explain_top_fraction=self.explain_top_fraction,
            max_explained_rows=self.max_explained_rows,
        )


@dg.asset(
    **_hourly,
    **_owned,
    **_retried,
    group_name="scoring",
    io_manager_key=INTERMEDIATE,
    metadata=_by_time,
    ins={"feature_engineering": dg.AssetIn(metadata={"columns": steps.ENSEMBLE_INPUTS})},
    kinds={"polars"},
    description="Seed task 6: the three layers on one 0–100 risk (seed: weighted sum; voting and "
    "sequential AE → IF selectable), decision approved (< 30) / review / blocked (> 70), with "
    "the layers behind each decision and its top reason codes in an analyst's words.",
)
@retry_transient_only
def ensemble_decision(
    context: dg.AssetExecutionContext,
    config: ReasonCodesConfig,
    clickhouse: ClickHouseResource,
    feature_engineering: pl.DataFrame,
    statistical_layer: pl.DataFrame,
    isolation_forest_prediction: pl.DataFrame,
    autoencoder_prediction: pl.DataFrame,
) -> pl.DataFrame:
    result = steps.ensemble(
        clickhouse,
        feature_engineering,
        statistical_layer,
        isolation_forest_prediction,
        autoencoder_prediction,
        config.reason_config(),
    )
    counts = steps.decision_counts(result)
    context.add_output_metadata(
        {"dagster/row_count": result.height}
        | {f"decisions/{k}": v for k, v in counts.items()}
        | {
            "decisions": dg.MetadataValue.md(
                steps.markdown(
                    pl.DataFrame({"decision": list(counts), "count": list(counts.values())})
                )
            ),
            "risk_distribution": dg.MetadataValue.md(risk_histogram(result)),
            "top_blocked_reasons": dg.MetadataValue.md(steps.top_reasons_markdown(result)),
        }
    )
    return result


def risk_histogram(result: pl.DataFrame) -> str:
    """The hour's total risk scores in 5-point bins, with the review and block lines."""
    config = EnsembleConfig()
    return markdown_image(
        histogram(
            result["total_risk_score"].drop_nulls().to_numpy(),
            edges=list(range(0, 105, 5)),
            title="Total risk score",
            x_label="risk (0–100)",
            markers={
                f"review ≥ {config.approve_below:g}": config.approve_below,
                f"block > {config.block_above:g}": config.block_above,
            },
        ),
        "risk distribution",
    )


@dg.asset(
    **_hourly,
    **_owned,
    **_writes,
    name="detected_anomalies_ensemble",
    group_name="reporting",
    io_manager_key=CLICKHOUSE,
    metadata=_by_time,
    kinds={"clickhouse"},
    tags={"seed_task": "store_results"},
    description="Seed task 7 (store_results): one row per scored transaction in "
    "detected_anomalies_ensemble with every seed column, the run id and the model version. "
    "Re-scoring an hour replaces exactly that hour.",
)
@retry_transient_only
def store_results(
    context: dg.AssetExecutionContext, ensemble_decision: pl.DataFrame
) -> pl.DataFrame:
    rows = steps.result_rows(ensemble_decision, context.run_id)
    counts = steps.decision_counts(ensemble_decision)
    context.add_output_metadata({f"decisions/{k}": v for k, v in counts.items()})
    return rows


@dg.asset(
    **_hourly,
    **_owned,
    group_name="reporting",
    deps=["detected_anomalies_ensemble"],
    tags={"seed_task": "send_alerts"},
    kinds={"webhook", "email"},
    description="Seed task 8 (the branch): when the hour has blocked transactions, a summary "
    "notification (webhook, email, log); an hour with none sends nothing and says so.",
)
def send_alerts(
    context: dg.AssetExecutionContext, notifier: NotifierResource, ensemble_decision: pl.DataFrame
) -> dg.MaterializeResult:
    return steps.alert(context, notifier, ensemble_decision)


@dg.asset(
    **_hourly,
    **_owned,
    **_writes,
    name="daily_model_performance",
    group_name="reporting",
    deps=["detected_anomalies_ensemble"],
    kinds={"clickhouse"},
    tags={"seed_task": "update_metrics"},
    description="Seed task 9 (update_metrics): per model type per day, recomputed from the day's "
    "stored decisions and the labels known so far, so re-scoring an hour never double counts.",
)
@retry_transient_only
def update_metrics(
    context: dg.AssetExecutionContext, clickhouse: ClickHouseResource
) -> dg.MaterializeResult:
    window = context.partition_time_window
    with clickhouse.get_client() as client:
        table = steps.refresh_daily_metrics(client, window.start, window.end)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.height,
            "metrics": dg.MetadataValue.md(steps.markdown(table)),
        }
    )


ensemble_anomaly_detection = dg.define_asset_job(
    "ensemble_anomaly_detection",
    selection=dg.AssetSelection.assets(
        extract_transactions,
        feature_engineering,
        statistical_layer,
        isolation_forest_prediction,
        autoencoder_prediction,
        ensemble_decision,
        store_results,
        send_alerts,
        update_metrics,
    )
    # plus what other modules attach to every scoring run (monitoring.py: the hour's features
    # in ClickHouse for the hourly feature-drift check), selected by tag so this module's
    # definitions stand on their own
    | dg.AssetSelection.tag(SCORING_JOB_TAG, "true"),
    partitions_def=hourly_partitions,
    description="The seed's hourly scoring DAG, plus the feature snapshot its drift check reads.",
    # One process for the whole run: the steps are short and sequential by nature, so a
    # process per step would pay the imports and the model loads at every step (a 100k-row
    # hour measured 3x slower that way) and re-read the hour's features from disk in each.
    executor_def=dg.in_process_executor,
)

SCORING_ASSETS = [
    extract_transactions,
    feature_engineering,
    statistical_layer,
    isolation_forest_prediction,
    autoencoder_prediction,
    ensemble_decision,
    store_results,
    send_alerts,
    update_metrics,
]

defs = dg.Definitions(assets=SCORING_ASSETS, jobs=[ensemble_anomaly_detection])
