"""The logic behind the training assets, kept apart so the asset module reads like the seed's DAG."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from fraud_assets import settings
from fraud_assets.bundle import ScoringBundle
from fraud_assets.detectors.stacking import MIN_FRAUDS, LabelledLayers, StackedCombiner
from fraud_assets.evaluation.metrics import (
    alert_metrics,
    per_scenario_recall,
    ranking_metrics,
    scenario_recall_at_budget,
)
from fraud_assets.evaluation.tables import SCENARIO_BUDGET, SCENARIO_KEY, layer_table


def model_version(partition_key: str) -> str:
    """``v{YYYYMMDD}_{git_commit}``: the day the weekly partition closes and the code version."""
    from fraud_assets.partitions import weekly_partitions

    end = weekly_partitions.time_window_for_partition_key(partition_key).end
    return f"v{end:%Y%m%d}_{settings.git_commit()}"


def label_and_split(
    transactions: pl.DataFrame, labels: pl.DataFrame, known_by: datetime, validation_fraction: float
) -> pl.DataFrame:
    """Attach the labels known at ``known_by`` and split the window in time (newest = validation)."""
    known = labels.filter(pl.col("labeled_at") < known_by).select(
        "transaction_id", pl.col("is_fraud").cast(pl.Int8), pl.col("fraud_type").cast(pl.Utf8)
    )
    frame = (
        transactions.sort("timestamp")
        .join(known, on="transaction_id", how="left")
        .with_columns(pl.col("is_fraud").fill_null(0), pl.col("fraud_type").fill_null(""))
    )
    if frame.is_empty():
        return frame.with_columns(pl.lit("train").alias("split"))
    cut = frame["timestamp"].quantile(1.0 - validation_fraction, interpolation="lower")
    return frame.with_columns(
        pl.when(pl.col("timestamp") > cut)
        .then(pl.lit("validation"))
        .otherwise(pl.lit("train"))
        .alias("split")
    )


_LABELS_SQL = """
SELECT l.transaction_id AS transaction_id,
       argMax(l.is_fraud, l.labeled_at) AS is_fraud,
       argMax(l.fraud_type, l.labeled_at) AS fraud_type,
       toInt64(max(l.labeled_at)) AS labeled_at_s
FROM transaction_labels AS l
WHERE l.labeled_at < {known_by:DateTime('UTC')}
  AND l.transaction_id IN (
    SELECT transaction_id FROM crypto_transactions
    WHERE timestamp >= {start:DateTime('UTC')} AND timestamp < {end:DateTime('UTC')}
  )
GROUP BY l.transaction_id
"""


def read_labels(client, start: datetime, end: datetime, known_by: datetime) -> pl.DataFrame:
    """The latest label of each transaction in [start, end) that was known at ``known_by``."""
    table = client.query_arrow(
        _LABELS_SQL, parameters={"start": start, "end": end, "known_by": known_by}
    )
    return (
        pl.from_arrow(table)
        .with_columns(
            pl.from_epoch("labeled_at_s", "s").dt.replace_time_zone("UTC").alias("labeled_at"),
            pl.col("fraud_type").cast(pl.Utf8),
            pl.col("is_fraud").cast(pl.Int8),
        )
        .drop("labeled_at_s")
    )


def training_rows(features: pl.DataFrame) -> pl.DataFrame:
    """The rows models learn 'normal' from: the training split without known frauds."""
    return features.filter((pl.col("split") == "train") & (pl.col("is_fraud") == 0))


def fit_combiner(
    bundle: ScoringBundle,
    features: pl.DataFrame,
    min_frauds: int = MIN_FRAUDS,
    l2: float | None = None,
):
    """The ensemble's ``StackedCombiner`` fitted on the labelled training split, or None.

    The training split's labels are those known at the partition end; its
    known frauds were kept out of the models' training rows, so their model
    risks are out-of-sample. The validation split (the window's newest days,
    which no model trained on) chooses the penalty toward the prior when
    ``l2`` is None, and otherwise stays a held-out test of the whole bundle.
    None when fewer than ``min_frauds`` frauds are known (the bundle then
    combines with the configured strategy).
    """
    rows = features.filter(pl.col("split") == "train")
    labels = rows["is_fraud"].to_numpy().astype(bool)
    if labels.sum() < min_frauds or labels.all():
        return None
    held = features.filter(pl.col("split") == "validation")
    validation = layer_outputs(bundle, held) if l2 is None and held.height else None
    return StackedCombiner(l2=l2).fit(
        *layer_outputs(bundle, rows), bundle.rules.points, validation=validation
    )


def layer_outputs(bundle: ScoringBundle, rows: pl.DataFrame) -> LabelledLayers:
    """What the combiner reads of labelled rows: rule flags (and their names), the models'
    risks, and the labels."""
    x = bundle.matrix(rows)
    _, rules = bundle.statistical(rows)
    ae, _ = bundle.autoencoder_scores(x)
    labels = rows["is_fraud"].to_numpy().astype(bool)
    return LabelledLayers(rules.fired, rules.names, bundle.isolation(x).risk, ae.risk, labels)


def combiner_table(combiner) -> str:
    """The fitted weights beside their priors, as markdown."""
    if combiner is None:
        return "not fitted (too few labelled frauds): the configured weighted sum combines"
    rows = ["| input | weight (log-odds) | prior |", "|---|---|---|"]
    for name, weight, prior in zip(
        combiner.inputs, combiner.coef_.tolist(), combiner.prior_.tolist(), strict=True
    ):
        rows.append(f"| {name} | {weight:.2f} | {prior:.2f} |")
    rows.append(f"| intercept | {combiner.intercept_:.2f} | |")
    rows += ["", f"L2 penalty toward the prior: {combiner.penalty_.describe()}"]
    return "\n".join(rows)


def artifact_ref(context: dg.AssetExecutionContext, asset_name: str):
    """Path and sha256 of an artifact this partition stored in the model volume, from its metadata."""
    from fraud_assets.io import ArtifactRef

    event = context.instance.get_latest_materialization_event(dg.AssetKey(asset_name))
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(asset_name), asset_partitions=[context.partition_key]
        ),
        limit=1,
    ).records
    if records:
        event = records[0].event_log_entry
    if event is None or event.asset_materialization is None:
        raise dg.Failure(f"{asset_name} has no materialization for {context.partition_key}")
    metadata = event.asset_materialization.metadata
    return ArtifactRef(path=str(metadata["path"].value), sha256=str(metadata["sha256"].value))


def _layers(bundle: ScoringBundle, features: pl.DataFrame) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    # As the hourly scoring runs it: the autoencoder's small matrix products lose time
    # to OpenBLAS's own threads (see scoring_steps._by_row_blocks).
    with threadpool_limits(limits=1, user_api="blas"):
        scored = bundle.score(features)
    elapsed = time.perf_counter() - started
    ensemble = scored["ensemble"]
    decision = np.asarray(ensemble.decision)
    return {
        "elapsed": elapsed,
        "rules": (scored["statistical_risk"], scored["statistical_risk"] > 0),
        "isolation_forest": (scored["isolation"].raw, scored["isolation"].prediction == -1),
        "autoencoder": (scored["autoencoder"].raw, scored["autoencoder"].prediction == -1),
        "ensemble": (np.asarray(ensemble.total_risk), decision != "approved"),
        "blocked": decision == "blocked",
        "decision": decision,
    }


def evaluate_bundle(bundle: ScoringBundle, features: pl.DataFrame) -> dict[str, Any]:
    """Per-layer and ensemble metrics of a bundle on labelled feature rows."""
    labels = features["is_fraud"].to_numpy().astype(bool)
    fraud_types = features["fraud_type"].to_numpy()
    layers = _layers(bundle, features)
    report: dict[str, Any] = {}
    for name in ("rules", "isolation_forest", "autoencoder", "ensemble"):
        scores, alerts = layers[name]
        report[name] = alert_metrics(labels, alerts) | ranking_metrics(labels, scores)
        report[name]["scenario_recall"] = per_scenario_recall(fraud_types, labels, alerts)
        report[name][SCENARIO_KEY] = scenario_recall_at_budget(
            fraud_types, labels, scores, SCENARIO_BUDGET
        )
    blocked = alert_metrics(labels, layers["blocked"])
    report["ensemble"]["block_precision"] = blocked["precision"]
    report["ensemble"]["block_rate"] = blocked["alert_rate"]
    report["decisions"] = {
        d: int((layers["decision"] == d).sum()) for d in ("approved", "review", "blocked")
    }
    report["latency_ms_per_1k"] = 1000.0 * layers["elapsed"] / max(features.height, 1) * 1000.0
    report["frauds_by_scenario"] = {
        s: int(((fraud_types == s) & labels).sum()) for s in sorted(set(fraud_types[labels]) - {""})
    }
    return report


def metrics_table(report: dict[str, Any]) -> str:
    return layer_table(report)


def validation_report(
    bundle: ScoringBundle, validation: pl.DataFrame
) -> tuple[dict[str, Any], str]:
    report = evaluate_bundle(bundle, validation)
    report["validation_rows"] = validation.height
    report["validation_frauds"] = int(validation["is_fraud"].sum())
    report["thresholds"] = {
        "isolation_forest": bundle.thresholds.isolation_forest,
        "autoencoder": bundle.thresholds.autoencoder,
        "ensemble": float(bundle.ensemble.block_above),
    }
    return report, metrics_table(report)


def ab_slice(
    frame: pl.DataFrame, share: float, key: str = "user_id", offset: float = 0.0
) -> pl.DataFrame:
    """The rows whose ``key`` hashes into the arm [offset, offset + share) of the buckets.

    Keyed by user: one user is always in one arm (sees one policy), and every
    transaction of a user is in it, so per-user features stay exact.
    """
    from fraud_assets.monitoring.ab_test import arm_bounds, user_buckets

    low, high = arm_bounds(share, offset)
    buckets = user_buckets(frame[key])
    return frame.filter((buckets >= low) & (buckets < high))


def _arm_outcome(bundle: ScoringBundle, features: pl.DataFrame):
    """What one arm's bundle decided on its own users' transactions: a summary and, per user,
    (flagged, transactions) and (caught, labelled frauds) for the stopping rule."""
    from fraud_assets.monitoring.ab_test import Arm

    alerts = np.asarray(_layers(bundle, features)["ensemble"][1], dtype=bool)
    per_user = (
        features.select("user_id", pl.col("is_fraud").cast(pl.Boolean).alias("fraud"))
        .with_columns(pl.Series("flagged", alerts))
        .group_by("user_id")
        .agg(
            pl.len().alias("transactions"),
            pl.col("flagged").sum(),
            pl.col("fraud").sum().alias("frauds"),
            (pl.col("flagged") & pl.col("fraud")).sum().alias("caught"),
        )
    )
    summary = {
        "users": per_user.height,
        **{c: int(per_user[c].sum()) for c in ("transactions", "flagged", "frauds", "caught")},
    }
    alerts_arm = Arm.of(per_user["flagged"].to_numpy(), per_user["transactions"].to_numpy())
    recall_arm = Arm.of(per_user["caught"].to_numpy(), per_user["frauds"].to_numpy())
    return summary, alerts_arm, recall_arm


def ab_test_verdict(context, clickhouse, candidate: ScoringBundle, config) -> dict[str, Any]:
    """Replay the last ``days`` of traffic split by user between the two bundles and apply the
    fixed-horizon stopping rule of ``fraud_assets.monitoring.ab_test``: promote or rollback."""
    from fraud_assets import registry
    from fraud_assets.bundle_loader import load_bundle
    from fraud_assets.features import extract_features
    from fraud_assets.features.history import load_feature_inputs
    from fraud_assets.monitoring import ab_test

    end = context.partition_time_window.end
    start = end - timedelta(days=config.days)
    with clickhouse.get_client() as client:
        active = registry.active_models(client).get("ensemble")
        if active is None:
            return {
                "decision": "promote",
                "reason": "no active model: the first validated version is promoted directly",
            }
        if active.version == candidate.version:
            return {"decision": "promote", "reason": f"{candidate.version} is already active"}
        current = load_bundle(client, active.version)
        inputs = load_feature_inputs(client, start, end)
        known = read_labels(client, start, end, known_by=end).select(
            "transaction_id", "is_fraud", "fraud_type"
        )
    share = config.traffic_share
    both = ab_slice(inputs.transactions, min(2 * share, 1.0))
    if both.is_empty():
        return {
            "decision": "promote",
            "reason": "no recent traffic to compare on; validation gates passed",
        }
    features = extract_features(both, inputs.history, inputs.labels)
    features = features.join(known, on="transaction_id", how="left").with_columns(
        pl.col("is_fraud").fill_null(0), pl.col("fraud_type").fill_null("")
    )
    candidate_rows = ab_slice(features, share)
    control_rows = ab_slice(features, share, offset=share)
    if candidate_rows.is_empty() or control_rows.is_empty():
        return {
            "decision": "promote",
            "reason": "an arm had no recent traffic to compare on; validation gates passed",
        }
    c, c_alerts, c_recall = _arm_outcome(candidate, candidate_rows)
    a, a_alerts, a_recall = _arm_outcome(current, control_rows)
    decision, tests = ab_test.decide(
        alerts=(c_alerts, a_alerts),
        frauds_caught=(c_recall, a_recall),
        confidence=config.confidence_level,
        max_alert_rate_increase=config.max_alert_rate_increase,
        max_recall_drop=config.max_recall_drop,
        min_frauds=config.min_frauds,
    )
    rule = (
        f"fixed horizon {config.days} d, one-sided harm tests at {config.confidence_level:.0%} "
        f"confidence; arms of {share:.0%} of users each by hash of user_id "
        f"({c['users']} candidate / {a['users']} control users)"
    )
    worse = [t.metric for t in tests if t.verdict == ab_test.WORSE]
    headline = (
        f"{candidate.version} worse than {current.version} on {', '.join(worse)}"
        if worse
        else f"no harm shown against {current.version}"
    )
    arms_table = "\n".join(
        [
            "| arm | bundle | users | transactions | flagged | labelled frauds | caught |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {name} | {bundle.version} | {arm['users']} | {arm['transactions']} "
                f"| {arm['flagged']} | {arm['frauds']} | {arm['caught']} |"
                for name, arm, bundle in (("candidate", c, candidate), ("control", a, current))
            ),
        ]
    )
    return {
        "decision": decision,
        "reason": f"{headline} ({rule}): {ab_test.summary(tests)}",
        "table": arms_table + "\n\n" + ab_test.markdown(tests),
        "stopping_rule": rule,
        "arms": {"candidate": c, "control": a},
        "statistics": [t.as_dict() for t in tests],
    }


def validation_metrics_of_run(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """The numeric metadata validate_models recorded in this run (what the quality gates read)."""
    for record in instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records:
        materialization = record.event_log_entry.asset_materialization
        if materialization and materialization.asset_key == dg.AssetKey("validate_models"):
            return {
                key: float(value.value)
                for key, value in materialization.metadata.items()
                if isinstance(value.value, int | float)
            }
    raise dg.Failure("validate_models was not materialized in this run")
