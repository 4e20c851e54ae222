"""Monitoring assets: drift against training-time references, matured-label performance, rollback.

* ``drift_reference`` (weekly, in the training job): histograms of every
  monitored feature and of the four stored scores on the training window's
  validation split, scored by the week's own bundle, in ``drift_reference``.
* ``feature_snapshots`` (hourly, after ``feature_engineering``): the hour's
  model features in ClickHouse, so drift is computed where the data lives.
* ``feature_drift`` / ``score_drift`` (asset checks): PSI and binned KS per
  column of each hour of the run, computed by ClickHouse against the reference
  of the version that scored the hour; WARN / ERROR by configurable PSI levels,
  and a notification on any breach.
* ``matured_label_performance`` (daily): precision / recall / FP rate of a
  day's stored decisions once its labels have matured, in
  ``model_performance_matured``; when the active bundle breached a floor on K
  consecutive days the registry rolls back to the previously active version,
  a notification says why and ``production_models`` records the change (the
  scoring graph resolves the active version at the start of each run, and
  ``model_promotion_sensor`` re-scores today's hours with it).
"""

import os
import time
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
from pydantic import Field

from fraud_assets import registry
from fraud_assets.assets.scoring import SCORING_JOB_TAG, WRITE_POOL
from fraud_assets.assets.training_steps import model_version
from fraud_assets.bundle import ModelThresholds, ScoringBundle
from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets.clickhouse.client import quote_identifier
from fraud_assets.clickhouse.errors import CLICKHOUSE_RETRY_POLICY, retry_transient_only
from fraud_assets.monitoring import drift, drift_sql, matured, snapshots
from fraud_assets.monitoring.histograms import DEFAULT_BINS
from fraud_assets.notify import NotifierResource
from fraud_assets.notify.message import Notification
from fraud_assets.partitions import daily_partitions, hourly_partitions, weekly_partitions

GROUP = "monitoring"
HOUR = timedelta(hours=1)
_retried = {"retry_policy": CLICKHOUSE_RETRY_POLICY}
_running = os.environ.get("FRAUD_AUTOMATION_DEFAULT", "stopped").lower() == "running"


# --------------------------------------------------------------------------- references


class DriftReferenceConfig(dg.Config):
    bins: int = Field(
        DEFAULT_BINS, description="Quantile bins per column (fewer when values repeat)."
    )


@dg.asset(
    partitions_def=weekly_partitions,
    group_name="training",  # runs in train_ensemble_models beside the models it describes
    owners=["team:fraud-ml"],
    kinds={"clickhouse"},
    **_retried,
    description="Drift references of the week's bundle: quantile-bin histograms of every "
    "monitored feature and of the four stored scores (statistical_risk, isolation_score, "
    "reconstruction_error, total_risk_score) on the validation split — the newest traffic "
    "before the week's end, unseen by the models — in drift_reference, keyed by model version.",
)
@retry_transient_only
def drift_reference(
    context: dg.AssetExecutionContext,
    config: DriftReferenceConfig,
    clickhouse: ClickHouseResource,
    feature_engineering_train: pl.DataFrame,
    feature_scaler,
    train_isolation_forest,
    train_autoencoder,
    calculate_thresholds: ModelThresholds,
) -> dg.MaterializeResult:
    version = model_version(context.partition_key)
    population = feature_engineering_train.filter(pl.col("split") == "validation")
    window = "validation split"
    if population.is_empty():
        population, window = feature_engineering_train, "whole training window"
    bundle = ScoringBundle(
        version=version,
        scaler=feature_scaler,
        isolation_forest=train_isolation_forest,
        autoencoder=train_autoencoder,
        thresholds=calculate_thresholds,
    )
    scored = bundle.score(population)
    scores = {
        "statistical_risk": scored["statistical_risk"],
        "isolation_score": scored["isolation"].raw,
        "reconstruction_error": scored["autoencoder"].raw,
        "total_risk_score": scored["ensemble"].total_risk,
    }
    features = snapshots.feature_references(population, config.bins)
    score_histograms = snapshots.score_references(scores, config.bins)
    first, last = population["timestamp"].min(), population["timestamp"].max()
    described = (
        f"{window}, {population.height} rows, {first:%Y-%m-%d %H:%M} → {last:%Y-%m-%d %H:%M} UTC"
    )
    with clickhouse.get_client() as client:
        drift_sql.write_reference(client, version, drift_sql.FEATURE, features, described)
        drift_sql.write_reference(client, version, drift_sql.SCORE, score_histograms, described)
    bins = pl.DataFrame(
        {
            "column": [*features, *score_histograms],
            "bins": [len(h.counts) for h in [*features.values(), *score_histograms.values()]],
        }
    )
    return dg.MaterializeResult(
        metadata={
            "model_version": version,
            "reference_rows": population.height,
            "reference_window": described,
            "features": len(features),
            "scores": len(score_histograms),
            "bins_per_column": dg.MetadataValue.md(
                bins.to_pandas().to_markdown(index=False) if bins.height else "none"
            ),
        }
    )


# --------------------------------------------------------------------------- hourly snapshot


@dg.asset(
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    owners=["team:fraud-ml"],
    io_manager_key="polars_io_manager",
    metadata={"partition_expr": "timestamp"},
    kinds={"clickhouse"},
    tags={SCORING_JOB_TAG: "true"},
    pool=WRITE_POOL,
    **_retried,
    description="The hour's model features (all but the clock features, Float32) with the "
    "model version, in ClickHouse table feature_snapshots, so ClickHouse bins them for the "
    "feature drift check. "
    "Re-scoring an hour replaces exactly that hour.",
)
@retry_transient_only
def feature_snapshots(
    context: dg.AssetExecutionContext,
    clickhouse: ClickHouseResource,
    feature_engineering: pl.DataFrame,
) -> pl.DataFrame:
    frame = snapshots.snapshot_frame(feature_engineering)
    with clickhouse.get_client() as client:
        added = snapshots.ensure_feature_columns(
            client, [c for c in frame.columns if c not in snapshots.KEY_COLUMNS]
        )
    context.add_output_metadata(
        {
            "dagster/row_count": frame.height,
            "features": frame.width - len(snapshots.KEY_COLUMNS),
            "columns_added": ", ".join(added) or "none",
        }
    )
    return frame


# --------------------------------------------------------------------------- drift checks


class DriftCheckConfig(dg.Config):
    warn_psi: float = Field(0.1, description="PSI at or above which a column is a warning.")
    error_psi: float = Field(0.25, description="PSI at or above which a column is an error.")
    min_rows: int = Field(
        500, description="Rows a window needs to be judged (an hour is widened back to reach it)."
    )
    max_window_hours: int = Field(
        24, description="The widest window, in hours, ending with the hour."
    )
    notify: bool = Field(True, description="Send a notification when a column breaches.")


def run_hours(context: dg.AssetCheckExecutionContext, table: str, clickhouse) -> list[datetime]:
    """The hours of the run's partition(s); without any, the latest hour ``table`` holds."""
    tags = context.run.tags
    start_key = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
    end_key = tags.get("dagster/asset_partition_range_end") or start_key
    if start_key:
        first = hourly_partitions.time_window_for_partition_key(start_key).start
        last = hourly_partitions.time_window_for_partition_key(end_key).start
        hours, hour = [], first
        while hour <= last:
            hours.append(hour.astimezone(UTC))
            hour += HOUR
        return hours
    with clickhouse.get_client() as client:
        # S608: the only interpolation is the table name, quoted as an identifier.
        (latest,) = client.query(
            f"SELECT max(toStartOfHour(timestamp)) FROM {quote_identifier(table)}"  # noqa: S608
        ).result_rows[0]
    return [latest.replace(tzinfo=UTC) if latest.tzinfo is None else latest.astimezone(UTC)]


def _drift_check(
    context: dg.AssetCheckExecutionContext,
    config: DriftCheckConfig,
    clickhouse: ClickHouseResource,
    notifier: NotifierResource,
    series: str,
) -> dg.AssetCheckResult:
    started = time.perf_counter()
    levels = drift.DriftLevels(warn=config.warn_psi, error=config.error_psi)
    hours = run_hours(context, drift_sql.TABLES[series], clickhouse)
    with clickhouse.get_client() as client:
        verdicts = drift.evaluate_hours(
            client, series, hours, levels, config.min_rows, config.max_window_hours
        )
    seconds = time.perf_counter() - started
    judged = [v for v in verdicts if v.series]
    level = drift.worst(v.level for v in judged)
    breaches = [(v, s) for v in judged for s in v.breaches]
    worst_psi = max((s.psi for v in judged for s in v.series), default=0.0)
    metadata = {
        "hours": len(verdicts),
        "hours_judged": len(judged),
        "max_psi": round(worst_psi, 4),
        "columns_breached": len({s.name for _, s in breaches}),
        "levels": f"warn ≥ {levels.warn}, error ≥ {levels.error}",
        "seconds": round(seconds, 3),
        "rows_judged": sum(v.rows for v in judged),
        "hours_table": dg.MetadataValue.md(_hours_table(verdicts)),
    }
    if breaches:
        metadata["breaches"] = dg.MetadataValue.md(_breach_table(breaches))
    if judged:
        metadata["latest_hour_top_psi"] = dg.MetadataValue.md(_top_table(judged[-1]))
    if breaches and config.notify:
        report = notifier.send(_drift_notification(series, level, breaches, levels), context.log)
        metadata |= report.as_metadata()
    return dg.AssetCheckResult(
        passed=level == drift.OK,
        severity=dg.AssetCheckSeverity.ERROR
        if level == drift.ERROR
        else dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=_describe(series, verdicts, breaches),
    )


def _describe(series: str, verdicts: list[drift.HourDrift], breaches: list) -> str:
    judged = sum(1 for v in verdicts if v.series)
    if not judged:
        notes = {v.note for v in verdicts if v.note}
        return f"no hour judged: {'; '.join(sorted(notes)) or 'no rows'}"
    if not breaches:
        return f"{series} drift below the warning level in {judged} judged hour(s)"
    names = sorted({s.name for _, s in breaches})
    return f"{series} drift in {', '.join(names[:8])}{' …' if len(names) > 8 else ''}"


def _hours_table(verdicts: list[drift.HourDrift]) -> str:
    rows = [
        "| hour | version | window start | rows | max PSI | level | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        top = max((s.psi for s in v.series), default=float("nan"))
        start = f"{v.window_start:%Y-%m-%d %H:%M}" if v.window_start else "—"
        rows.append(
            f"| {v.hour:%Y-%m-%d %H:%M} | {v.version or '—'} | {start} | {v.rows} "
            f"| {top:.4f} | {v.level if v.series else '—'} | {v.note} |"
        )
    return "\n".join(rows)


def _breach_table(breaches: list) -> str:
    """One row per breached column: its worst hour and how many hours breached."""
    worst: dict[str, tuple] = {}
    hours: dict[str, int] = {}
    for v, s in breaches:
        hours[s.name] = hours.get(s.name, 0) + 1
        if s.name not in worst or s.psi > worst[s.name][1].psi:
            worst[s.name] = (v, s)
    rows = [
        "| column | worst PSI | KS there | worst hour | rows | hours breached | level |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (v, s) in sorted(worst.items(), key=lambda item: item[1][1].psi, reverse=True):
        rows.append(
            f"| {name} | {s.psi:.4f} | {s.ks:.4f} | {v.hour:%Y-%m-%d %H:%M} | {s.rows} "
            f"| {hours[name]} | {s.level} |"
        )
    return "\n".join(rows)


def _top_table(verdict: drift.HourDrift, limit: int = 10) -> str:
    rows = ["| column | PSI | KS | level |", "|---|---|---|---|"]
    for s in sorted(verdict.series, key=lambda s: s.psi, reverse=True)[:limit]:
        rows.append(f"| {s.name} | {s.psi:.4f} | {s.ks:.4f} | {s.level} |")
    return "\n".join(rows)


def _drift_notification(
    series: str, level: str, breaches: list, levels: drift.DriftLevels
) -> Notification:
    names = sorted({s.name for _, s in breaches})
    hours = sorted({v.hour for v, _ in breaches})
    top = sorted(breaches, key=lambda b: b[1].psi, reverse=True)[:5]
    lines = [
        f"• {s.name} in {v.hour:%Y-%m-%d %H:%M} UTC: PSI {s.psi:.3f}, KS {s.ks:.3f} ({s.rows} rows, {v.version})"
        for v, s in top
    ]
    return Notification(
        title=f"Drift ({series}): {len(names)} column{'s' if len(names) != 1 else ''} "
        f"{'above the error level' if level == drift.ERROR else 'above the warning level'}",
        text=f"PSI against the training-time reference (warn ≥ {levels.warn}, error ≥ "
        f"{levels.error}) in {len(hours)} hour(s):\n" + "\n".join(lines),
        severity="critical" if level == drift.ERROR else "warning",
        fields={"series": series, "columns": ", ".join(names[:20]), "hours": len(hours)},
    )


@dg.asset_check(
    asset=feature_snapshots,
    description="Feature drift: PSI (and KS at the reference bin edges) of every monitored "
    "feature in each hour of the run against the training-time reference of the version that "
    "scored it, from bin counts ClickHouse computes per hour. WARN / ERROR by configurable PSI "
    "levels; breaches notify.",
    **_retried,
)
@retry_transient_only
def feature_drift(
    context: dg.AssetCheckExecutionContext,
    config: DriftCheckConfig,
    clickhouse: ClickHouseResource,
    notifier: NotifierResource,
) -> dg.AssetCheckResult:
    return _drift_check(context, config, clickhouse, notifier, drift_sql.FEATURE)


@dg.asset_check(
    asset="detected_anomalies_ensemble",
    description="Score drift: PSI (and KS) of statistical_risk, isolation_score, "
    "reconstruction_error and total_risk_score in each hour of the run against the scores the "
    "same version gave its reference window, from bin counts ClickHouse computes per hour; "
    "breaches notify.",
    **_retried,
)
@retry_transient_only
def score_drift(
    context: dg.AssetCheckExecutionContext,
    config: DriftCheckConfig,
    clickhouse: ClickHouseResource,
    notifier: NotifierResource,
) -> dg.AssetCheckResult:
    return _drift_check(context, config, clickhouse, notifier, drift_sql.SCORE)


# --------------------------------------------------------------------------- matured labels


class MaturedPerformanceConfig(dg.Config):
    label_delay_days: int = Field(
        5,
        description="A day's labels count as matured this many days after it (the generator: "
        "94% of fraud labels within 5 days, 99% within 7). The partition is the day labels are "
        "known by; the day measured is label_delay_days earlier.",
    )
    consecutive_days: int = Field(
        2, description="K: roll back after the active version breached a floor K days in a row."
    )
    min_precision: float | None = Field(
        matured.Floors.min_precision, description="Floor on flagged (review+blocked) precision."
    )
    min_recall: float | None = Field(matured.Floors.min_recall, description="Floor on recall.")
    max_fp_rate: float | None = Field(
        matured.Floors.max_fp_rate, description="Ceiling on the false-positive rate."
    )
    min_decisions: int = Field(
        matured.Floors.min_decisions, description="Fewer decisions in a day: not judged."
    )
    min_frauds: int = Field(
        matured.Floors.min_frauds, description="Fewer labelled frauds in a day: not judged."
    )
    rollback: bool = Field(True, description="Roll back automatically (else only notify).")

    def floors(self) -> matured.Floors:
        return matured.Floors(
            min_precision=self.min_precision,
            min_recall=self.min_recall,
            max_fp_rate=self.max_fp_rate,
            min_decisions=self.min_decisions,
            min_frauds=self.min_frauds,
        )


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _performance_table(days: list[matured.DayPerformance]) -> str:
    rows = [
        "| version | decisions | flagged | frauds | precision | recall | FP rate | judged | breaches |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in days:
        rows.append(
            f"| {d.model_version} | {d.decisions} | {d.flagged} | {d.frauds} | {_fmt(d.precision)} "
            f"| {_fmt(d.recall)} | {_fmt(d.fp_rate)} | {'yes' if d.evaluable else 'no'} "
            f"| {', '.join(d.breaches) or 'none'} |"
        )
    return "\n".join(rows)


@dg.asset(
    partitions_def=daily_partitions,
    group_name=GROUP,
    owners=["team:fraud-ml"],
    kinds={"clickhouse"},
    **_retried,
    description="Precision, recall and FP rate of the decisions stored for the day "
    "label_delay_days before the partition, with the labels known by the partition's end, per "
    "model version, in model_performance_matured. When the active bundle breached a floor on "
    "K consecutive measured days, the registry rolls back to the previously active version "
    "(it becomes active, the current one rolled_back), a notification says why and "
    "production_models records the change.",
)
@retry_transient_only
def matured_label_performance(
    context: dg.AssetExecutionContext,
    config: MaturedPerformanceConfig,
    clickhouse: ClickHouseResource,
    notifier: NotifierResource,
) -> dg.MaterializeResult:
    as_of: date = context.partition_time_window.start.date()
    evaluated = as_of - timedelta(days=config.label_delay_days)
    floors = config.floors()
    with clickhouse.get_client() as client:
        days = [
            d.judge(floors)
            for d in matured.measure_day(client, evaluated, as_of, config.label_delay_days)
        ]
        matured.write_days(client, evaluated, days)
        active = registry.active_models(client).get("ensemble")
        history = (
            matured.breach_history(client, active.version, evaluated, config.consecutive_days)
            if active
            else {}
        )
    metadata: dict = {
        "evaluated_date": evaluated.isoformat(),
        "labels_known_by": f"{as_of + timedelta(days=1):%Y-%m-%d} 00:00 UTC",
        "performance": dg.MetadataValue.md(_performance_table(days) if days else "no decisions"),
        "active_version": active.version if active else "none",
    }
    ours = next((d for d in days if active and d.model_version == active.version), None)
    if ours is not None:
        metadata |= {
            "precision": ours.precision if ours.precision is not None else float("nan"),
            "recall": ours.recall if ours.recall is not None else float("nan"),
            "fp_rate": ours.fp_rate if ours.fp_rate is not None else float("nan"),
        }
    due = active is not None and matured.breached_every_day(
        history, evaluated, config.consecutive_days
    )
    if not due:
        metadata["action"] = _no_action(active, ours, history, evaluated, config)
        return dg.MaterializeResult(metadata=metadata)
    reason = (
        f"matured-label performance of {active.version} breached its floors on "
        f"{config.consecutive_days} consecutive day(s) up to {evaluated}: "
        + "; ".join(f"{d}: {', '.join(b)}" for d, b in sorted(history.items()))
    )
    metadata |= _roll_back(context, clickhouse, notifier, active.version, reason, config.rollback)
    return dg.MaterializeResult(metadata=metadata)


def _no_action(active, ours, history, evaluated: date, config: MaturedPerformanceConfig) -> str:
    if active is None:
        return "none: no active bundle"
    if ours is None:
        return (
            f"none: no decisions by the active version {active.version} on {evaluated} "
            "(its decisions have not matured yet)"
        )
    if not ours.evaluable:
        return f"none: {evaluated} had too few decisions or labelled frauds to judge"
    streak = 0
    while history.get(evaluated - timedelta(days=streak)):
        streak += 1
    return f"none: {streak} of {config.consecutive_days} consecutive breached day(s)"


def _roll_back(
    context: dg.AssetExecutionContext,
    clickhouse: ClickHouseResource,
    notifier: NotifierResource,
    current: str,
    reason: str,
    enabled: bool,
) -> dict:
    if not enabled:
        notification = Notification(
            f"Model performance breach: {current}",
            reason + "\nAutomatic rollback is off (rollback=false): nothing was changed.",
            severity="critical",
            fields={"version": current},
        )
        report = notifier.send(notification, context.log)
        return {"action": "notified only (rollback disabled)"} | report.as_metadata()
    previous, failure = None, ""
    with clickhouse.get_client() as client:
        try:
            previous = registry.rollback(client, reason)
        except registry.NoActiveModelError as exc:
            failure = str(exc)
        restored = registry.active_models(client).get("ensemble")
    if previous is None:
        notification = Notification(
            f"Model performance breach: {current}, no version to roll back to",
            f"{reason}\n{failure}.",
            severity="critical",
            fields={"version": current},
        )
        report = notifier.send(notification, context.log)
        return {"action": f"none: {failure}"} | report.as_metadata()
    message = f"rolled back {current} → {previous}: {reason}"
    context.log_event(
        dg.AssetMaterialization(
            asset_key="production_models",
            description=message,
            metadata={
                "version": previous,
                "rolled_back": current,
                "reason": reason,
                "model_path": restored.model_path if restored else "",
            },
        )
    )
    notification = Notification(
        f"Model rolled back: {current} → {previous}",
        f"{reason}\n{previous} is active again; {current} is rolled_back. The next scoring run "
        "uses it.",
        severity="critical",
        fields={"rolled_back": current, "active": previous},
    )
    report = notifier.send(notification, context.log)
    return {"action": message, "rolled_back": current, "restored": previous} | report.as_metadata()


monitor_matured_labels = dg.define_asset_job(
    "monitor_matured_labels",
    selection=[matured_label_performance],
    partitions_def=daily_partitions,
    description="Daily: matured-label performance of the stored decisions, rollback on breach.",
)

matured_label_schedule = dg.build_schedule_from_partitioned_job(
    monitor_matured_labels,
    name="matured_label_performance_daily",
    hour_of_day=3,
    minute_of_hour=15,
    description="03:15 UTC: measure the day whose labels matured with yesterday.",
    default_status=dg.DefaultScheduleStatus.RUNNING
    if _running
    else dg.DefaultScheduleStatus.STOPPED,
)

defs = dg.Definitions(
    assets=[drift_reference, feature_snapshots, matured_label_performance],
    asset_checks=[feature_drift, score_drift],
    jobs=[monitor_matured_labels],
    schedules=[matured_label_schedule],
)

__all__ = [
    "DriftCheckConfig",
    "MaturedPerformanceConfig",
    "defs",
    "drift_reference",
    "feature_drift",
    "feature_snapshots",
    "matured_label_performance",
    "score_drift",
]
