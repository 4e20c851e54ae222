"""The logic behind the scoring assets, kept apart so the asset module reads like the seed's DAG."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import dagster as dg
import joblib
import numpy as np
import polars as pl
from clickhouse_connect.driver.client import Client
from threadpoolctl import threadpool_limits

from fraud_assets import registry
from fraud_assets.bundle_loader import load_component
from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets.detectors.ensemble import EnsembleCombiner, EnsembleConfig
from fraud_assets.detectors.reasons import ReasonConfig, reasons_for_rows
from fraud_assets.detectors.rules import (
    RULE_COLUMNS,
    RULE_NAMES,
    RuleConfig,
    RuleMatrix,
    StatisticalRules,
    rule_codes,
)
from fraud_assets.features import extract_features
from fraud_assets.features.catalog import FEATURE_COLUMNS
from fraud_assets.features.history import load_feature_inputs
from fraud_assets.notify import NotifierResource
from fraud_assets.notify.message import blocked_transactions_notification
from fraud_assets.validation import quarantine_rows, split_valid

DECISIONS = ("approved", "review", "blocked")
# The feature columns the rules and the ensemble read: those steps load only these
# from the hour's ~95-column feature frame.
STATISTICAL_INPUTS = list(
    dict.fromkeys(["transaction_id", "timestamp", *(c for cs in RULE_COLUMNS.values() for c in cs)])
)
ENSEMBLE_KEYS = ["transaction_id", "timestamp", "user_id", "amount", "model_version"]
# The reason codes read the model input of the rows they explain in full.
ENSEMBLE_INPUTS = list(dict.fromkeys([*ENSEMBLE_KEYS, *FEATURE_COLUMNS]))
TRANSACTION_COLUMNS = (
    "transaction_id", "timestamp", "user_id", "amount", "currency", "transaction_type",
    "user_avg_amount", "user_total_transactions", "user_account_age_days", "wallet_address",
    "wallet_age_days", "wallet_total_volume", "hour_of_day", "day_of_week", "ip_country",
    "device_type", "time_since_last_transaction", "transactions_last_hour",
    "transactions_last_24h",
)  # fmt: skip


def markdown(frame: pl.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *rows])


def read_transactions(client: Client, start: datetime, end: datetime) -> pl.DataFrame:
    columns = ", ".join(
        "toDateTime64(timestamp, 6, 'UTC') AS timestamp" if c == "timestamp" else c
        for c in TRANSACTION_COLUMNS
    )
    table = client.query_arrow(
        f"SELECT {columns} FROM crypto_transactions "  # noqa: S608
        "WHERE timestamp >= {start:DateTime('UTC')} AND timestamp < {end:DateTime('UTC')} "
        "ORDER BY timestamp, transaction_id",
        parameters={"start": start, "end": end},
        use_strings=True,
    )
    frame = pl.from_arrow(table)
    return frame.with_columns(pl.col(pl.Categorical).cast(pl.String))


def validate(
    raw: pl.DataFrame,
    start: datetime,
    end: datetime,
    run_id: str,
    claimed: pl.Series | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows to score, quarantine rows); ``claimed``: ids already seen before the window."""
    valid, invalid = split_valid(raw, start, end, claimed)
    return valid, quarantine_rows(invalid, start, end, run_id)


def active_version_or_fail(client: Client) -> str:
    try:
        return registry.active_version(client)
    except registry.NoActiveModelError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from None


def features_for(
    client: Client, transactions: pl.DataFrame, start: datetime, end: datetime
) -> pl.DataFrame:
    inputs = load_feature_inputs(client, start, end, with_transactions=False)
    return extract_features(transactions, inputs.history, inputs.labels)


def _version(features: pl.DataFrame) -> str:
    versions = features["model_version"].unique().to_list()
    if len(versions) != 1:
        raise dg.Failure(f"features of one run must carry one model version, found {versions}")
    return versions[0]


def _components(clickhouse: ClickHouseResource, version: str, *names: str) -> list:
    """Bundle pieces with one client (artifacts are cached per process; the lookup is not)."""
    with clickhouse.get_client() as client:
        return [load_component(client, version, name) for name in names]


def _matrix(scaler, features: pl.DataFrame) -> np.ndarray:
    """The scaled model input; the scaler reads the frame's columns without a copy."""
    return np.asarray(scaler.transform(features), dtype=np.float32)


def _lists_by_code(
    name: str, codes: np.ndarray, build: Callable[[int, int], list[str]]
) -> pl.Series:
    """A list-of-strings column built once per distinct code and gathered by row.

    Rows take few distinct values (combinations of a few rules and two models),
    so this replaces a per-row Python list, and polars' slow conversion of it,
    with one small table and a vectorised gather. ``build(code, first_row)``
    gives the list of the rows with that code.
    """
    distinct, first, row_index = np.unique(codes, return_index=True, return_inverse=True)
    table = pl.Series(
        name,
        [build(code, row) for code, row in zip(distinct.tolist(), first.tolist(), strict=True)],
        dtype=pl.List(pl.Utf8),
    )
    return table.gather(pl.Series(row_index.ravel(), dtype=pl.UInt32))


def _cores() -> int:
    """Cores this process may use: joblib counts CPU affinity and container CPU quotas,
    where ``os.cpu_count()`` would report the host's cores."""
    return max(1, joblib.cpu_count())


def _on_all_cores(model):
    """The Isolation Forest scoring on every core: its tree traversal releases the GIL.

    A shallow copy, so the cached model keeps its own settings.
    """
    model = copy.copy(model)
    model.n_jobs = _cores()
    return model


def _by_row_blocks(score: Callable[[np.ndarray], Any], x: np.ndarray) -> list:
    """``score`` of row blocks of ``x`` in order, one block per core, each with a
    single-threaded BLAS.

    The autoencoder's layers are small matrix products: OpenBLAS's own threads
    cost more than they give there (and spin on a busy machine, several times
    the CPU time), while row blocks on Python threads (NumPy releases the GIL)
    keep every core busy.
    """
    threads = min(_cores(), max(1, x.shape[0] // 50_000))
    bounds = np.linspace(0, x.shape[0], threads + 1, dtype=np.int64)
    with threadpool_limits(limits=1, user_api="blas"):
        if threads == 1:
            return [score(x)]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(lambda i: score(x[bounds[i] : bounds[i + 1]]), range(threads)))


def _keys(features: pl.DataFrame) -> pl.DataFrame:
    return features.select("transaction_id", "timestamp")


def _per_row_ms(started: float, rows: int) -> float:
    return 1000.0 * (time.perf_counter() - started) / max(rows, 1)


def statistical(features: pl.DataFrame) -> pl.DataFrame:
    started = time.perf_counter()
    rules = StatisticalRules(RuleConfig()).evaluate_matrix(features)
    names = rules.names
    flags = _lists_by_code(
        "statistical_flags",
        rule_codes(rules.fired),
        lambda code, _: [names[j] for j in range(len(names)) if (code >> j) & 1],
    )
    return _keys(features).with_columns(
        pl.Series("statistical_risk", np.asarray(rules.risk, dtype=np.float32)),
        flags,
        pl.lit(_per_row_ms(started, features.height), dtype=pl.Float32).alias("latency_ms"),
    )


def isolation(clickhouse: ClickHouseResource, features: pl.DataFrame) -> pl.DataFrame:
    if features.is_empty():
        return (
            _keys(features)
            .with_columns(
                pl.lit(None, pl.Float32).alias(c)
                for c in ("isolation_score", "isolation_risk", "latency_ms")
            )
            .with_columns(pl.lit(None, pl.Int8).alias("isolation_prediction"))
        )
    started = time.perf_counter()
    scaler, model, thresholds = _components(
        clickhouse, _version(features), "scaler", "isolation_forest", "thresholds"
    )
    score = np.asarray(_on_all_cores(model).anomaly_score(_matrix(scaler, features)))
    return _keys(features).with_columns(
        pl.Series("isolation_score", score.astype(np.float32)),
        pl.Series(
            "isolation_prediction",
            np.where(score > thresholds.isolation_forest, -1, 1).astype(np.int8),
        ),
        pl.Series(
            "isolation_risk",
            (100 * thresholds.isolation_calibrator.transform(score)).astype(np.float32),
        ),
        pl.lit(_per_row_ms(started, features.height), dtype=pl.Float32).alias("latency_ms"),
    )


def autoencoder(clickhouse: ClickHouseResource, features: pl.DataFrame) -> pl.DataFrame:
    if features.is_empty():
        return (
            _keys(features)
            .with_columns(
                pl.lit(None, pl.Float32).alias(c)
                for c in ("reconstruction_error", "autoencoder_risk", "latency_ms")
            )
            .with_columns(
                pl.lit(None, pl.Int8).alias("autoencoder_prediction"),
                pl.lit(None, pl.List(pl.Float32)).alias("latent_features"),
            )
        )
    started = time.perf_counter()
    scaler, model, thresholds = _components(
        clickhouse, _version(features), "scaler", "autoencoder", "thresholds"
    )
    x = _matrix(scaler, features)
    blocks = _by_row_blocks(model.error_and_latent, x)
    error = np.concatenate([e for e, _ in blocks])
    latent = np.concatenate([z for _, z in blocks])
    return _keys(features).with_columns(
        pl.Series("reconstruction_error", error.astype(np.float32)),
        pl.Series(
            "autoencoder_prediction",
            np.where(error > thresholds.autoencoder, -1, 1).astype(np.int8),
        ),
        pl.Series(
            "autoencoder_risk",
            (100 * thresholds.autoencoder_calibrator.transform(error)).astype(np.float32),
        ),
        pl.Series("latent_features", latent, dtype=pl.Array(pl.Float32, latent.shape[1])).cast(
            pl.List(pl.Float32)
        ),
        pl.lit(_per_row_ms(started, features.height), dtype=pl.Float32).alias("latency_ms"),
    )


def _side_by_side(base: pl.DataFrame, *layers: pl.DataFrame) -> pl.DataFrame:
    """The layers' columns next to ``base``'s rows, matched by transaction id.

    Every layer scores the feature frame's rows in its order, so the ids
    normally line up already: then the frames are put side by side without
    copying; otherwise (another order, a missing row) they are joined. Either way the
    rows stay in ``base``'s order (the reason codes read the feature rows by position).
    """
    keys = base.get_column("transaction_id")
    if all(layer.get_column("transaction_id").equals(keys) for layer in layers):
        return pl.concat(
            [base, *(layer.drop("transaction_id") for layer in layers)], how="horizontal"
        )
    joined = base
    for layer in layers:
        joined = joined.join(layer, on="transaction_id", how="left", maintain_order="left")
    return joined


def ensemble(
    clickhouse: ClickHouseResource,
    features: pl.DataFrame,
    stat: pl.DataFrame,
    iso: pl.DataFrame,
    ae: pl.DataFrame,
    reason_config: ReasonConfig | None = None,
) -> pl.DataFrame:
    started = time.perf_counter()
    joined = _side_by_side(
        features.select(ENSEMBLE_KEYS),
        stat.drop("timestamp").rename({"latency_ms": "stat_ms"}),
        iso.drop("timestamp").rename({"latency_ms": "iso_ms"}),
        ae.drop("timestamp").rename({"latency_ms": "ae_ms"}),
    )
    if joined.is_empty():
        return joined.with_columns(
            pl.lit(None, pl.Float32).alias("total_risk_score"),
            pl.lit(None, pl.Utf8).alias("final_decision"),
            pl.lit(None, pl.List(pl.Utf8)).alias("decision_reasons"),
            pl.lit(None, pl.List(pl.Utf8)).alias("reason_codes"),
            pl.lit(None, pl.List(pl.Float32)).alias("stage_latency_ms"),
        )
    stat_risk = joined["statistical_risk"].to_numpy()
    iso_pred = joined["isolation_prediction"].to_numpy()
    ae_pred = joined["autoencoder_prediction"].to_numpy()
    flags = joined["statistical_flags"]
    fired = np.column_stack(
        [flags.list.contains(name).fill_null(False).to_numpy() for name in RULE_NAMES]
    )
    # The bundle's combiner fitted at training (None: the configured weighted sum) and its
    # map onto the previous version's risk scale (None: none); the scaler and both models
    # for the reason codes.
    thresholds, scaler, forest, network = _components(
        clickhouse, _version(joined), "thresholds", "scaler", "isolation_forest", "autoencoder"
    )
    with threadpool_limits(limits=1, user_api="blas"):  # one small product: threads only wait
        result = EnsembleCombiner(
            EnsembleConfig(), thresholds.combiner, thresholds.score_mapping
        ).combine(
            stat_risk,
            joined["isolation_risk"].to_numpy(),
            joined["autoencoder_risk"].to_numpy(),
            iso_pred,
            ae_pred,
            RuleMatrix(risk=stat_risk, fired=fired, names=RULE_NAMES),
        )
    # A row's reasons follow from its fired rules and the two predictions alone.
    reason_key = rule_codes(fired) * 4 + (iso_pred == -1) + 2 * (ae_pred == -1)
    reasons = _lists_by_code("decision_reasons", reason_key, lambda _, row: result.reasons[row])
    decision = np.zeros(joined.height, dtype=np.uint32)
    for index, name in enumerate(DECISIONS):
        decision[result.decision == name] = index
    # The layers' rows are the feature rows in order (joined keeps the features' order).
    explained = reasons_for_rows(
        features,
        fired,
        RULE_NAMES,
        RuleConfig().points,
        result.decision,
        result.total_risk,
        joined["isolation_risk"].to_numpy(),
        joined["autoencoder_risk"].to_numpy(),
        scaler,
        forest,
        network,
        reason_config,
    )
    own_ms = _per_row_ms(started, joined.height)
    return joined.with_columns(
        pl.Series("total_risk_score", np.asarray(result.total_risk, dtype=np.float32)),
        pl.Series("final_decision", DECISIONS, dtype=pl.Utf8).gather(decision),
        reasons,
        explained.texts,
        _stage_latency(joined, own_ms),
    ).drop("stat_ms", "iso_ms", "ae_ms")


def _stage_latency(joined: pl.DataFrame, own_ms: float) -> pl.Series:
    """[statistical, isolation forest, autoencoder, total] ms per row.

    Built as a fixed-size array from one (rows, 4) matrix: polars' concat_list
    assembles the lists row by row, ~50x slower on a 1M-row hour.
    """
    layers = [joined.get_column(c).to_numpy() for c in ("stat_ms", "iso_ms", "ae_ms")]
    matrix = np.column_stack([*layers, layers[0] + layers[1] + layers[2] + own_ms])
    return pl.Series(
        "stage_latency_ms", matrix.astype(np.float32), dtype=pl.Array(pl.Float32, 4)
    ).cast(pl.List(pl.Float32))


def top_reasons_markdown(decisions: pl.DataFrame, rows: int = 10) -> str:
    """The hour's riskiest blocked transactions with their reason codes, as a markdown table."""
    blocked = decisions.filter(pl.col("final_decision") == "blocked")
    if blocked.is_empty():
        return "no blocked transactions"
    top = blocked.sort("total_risk_score", descending=True).head(rows)
    return markdown(
        top.select(
            "transaction_id",
            "user_id",
            pl.col("amount").round(2),
            pl.col("total_risk_score").round(1).alias("risk"),
            pl.col("reason_codes").list.join("; ").str.replace_all("|", "/", literal=True),
        )
    )


def decision_counts(frame: pl.DataFrame) -> dict[str, int]:
    counts = dict(frame.group_by("final_decision").len().iter_rows()) if frame.height else {}
    return {d: int(counts.get(d, 0)) for d in DECISIONS}


RESULT_COLUMNS = (
    "run_id", "transaction_id", "timestamp", "user_id", "amount", "statistical_risk",
    "statistical_flags", "isolation_score", "isolation_prediction", "isolation_risk",
    "reconstruction_error", "autoencoder_prediction", "autoencoder_risk", "latent_features",
    "total_risk_score", "final_decision", "decision_reasons", "reason_codes", "model_version",
    "stage_latency_ms",
)  # fmt: skip


def result_rows(decisions: pl.DataFrame, run_id: str) -> pl.DataFrame:
    return decisions.with_columns(pl.lit(run_id).alias("run_id")).select(RESULT_COLUMNS)


def alert(
    context: dg.AssetExecutionContext, notifier: NotifierResource, decisions: pl.DataFrame
) -> dg.MaterializeResult:
    blocked = decisions.filter(pl.col("final_decision") == "blocked")
    window = context.partition_time_window
    hour = f"{window.start:%Y-%m-%d %H:%M} → {window.end:%Y-%m-%d %H:%M} UTC"
    if blocked.is_empty():
        context.log.info(f"no blocked transactions in {hour}: no alert sent")
        return dg.MaterializeResult(
            metadata={"blocked": 0, "alert": "none sent: no blocked transactions"}
        )
    top = blocked.sort("total_risk_score", descending=True).head(10)
    notification = blocked_transactions_notification(
        partition_key=hour,
        blocked=blocked.height,
        total=decisions.height,
        flagged=int((decisions["final_decision"] != "approved").sum()),
        examples=[
            {
                "transaction_id": r["transaction_id"],
                "user_id": r["user_id"],
                "amount": round(float(r["amount"]), 2),
                "risk": round(float(r["total_risk_score"]), 1),
                "reasons": ", ".join(r["decision_reasons"] or []),
                # absent from intermediates written before reason codes existed
                "why": "; ".join(r.get("reason_codes") or []),
            }
            for r in top.iter_rows(named=True)
        ],
    )
    report = notifier.send(notification, context.log)
    return dg.MaterializeResult(
        metadata={"blocked": blocked.height, "alert": "sent" if report.ok else "partly failed"}
        | report.as_metadata()
    )


_DAILY_SQL = """
SELECT
    toDate(e.timestamp) AS date,
    model_type,
    count() AS total_predictions,
    countIf(flagged) AS anomalies_detected,
    countIf(flagged AND l.is_fraud = 0) AS false_positives,
    countIf(NOT flagged AND l.is_fraud = 1) AS false_negatives,
    avg(latency) AS avg_latency_ms,
    max(latency) AS max_latency_ms,
    argMax(e.model_version, e.timestamp) AS model_version
FROM detected_anomalies_ensemble AS e
LEFT JOIN (
    SELECT transaction_id, argMax(is_fraud, labeled_at) AS is_fraud
    FROM transaction_labels GROUP BY transaction_id
) AS l ON l.transaction_id = e.transaction_id
ARRAY JOIN
    ['statistical', 'isolation_forest', 'autoencoder', 'ensemble'] AS model_type,
    [length(e.statistical_flags) > 0, e.isolation_prediction = -1,
     e.autoencoder_prediction = -1, e.final_decision != 'approved'] AS flagged,
    arrayResize(e.stage_latency_ms, 4) AS latency
WHERE toDate(e.timestamp) >= {first:Date} AND toDate(e.timestamp) <= {last:Date}
GROUP BY date, model_type
ORDER BY date, model_type
"""


def refresh_daily_metrics(client: Client, start: datetime, end: datetime) -> pl.DataFrame:
    """Recompute the days the window touches from the stored decisions, replacing their rows."""
    first, last = start.date(), (end - timedelta(seconds=1)).date()
    result = client.query(_DAILY_SQL, parameters={"first": first, "last": last})
    rows = [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]
    thresholds: dict[str, dict[str, float]] = {}
    for row in rows:
        version = row["model_version"]
        if version not in thresholds:
            records = registry.get_version(client, version)
            thresholds[version] = {t: float(r.threshold) for t, r in records.items()}
        row["threshold_used"] = thresholds[version].get(row["model_type"], 0.0)
    columns = [
        "date", "model_type", "total_predictions", "anomalies_detected", "false_positives",
        "false_negatives", "avg_latency_ms", "max_latency_ms", "threshold_used",
    ]  # fmt: skip
    if rows:
        client.insert(
            "daily_model_performance", [[r[c] for c in columns] for r in rows], column_names=columns
        )
        client.command("OPTIMIZE TABLE daily_model_performance FINAL")
    return (
        pl.DataFrame([{c: r[c] for c in columns} for r in rows])
        if rows
        else pl.DataFrame({c: [] for c in columns})
    )
