"""Behind the weekly graph's score scale (``calculate_thresholds``) and replay gate (``replay_backtest``).

Both score with ``ScoringBundle.score``, the same layers, calibration,
combiner and score mapping the hourly graph applies (``test_replay.py``
checks a replay against stored production decisions). The score scale is fit
on an in-memory subsample; the replay reads, scores and counts its window a
chunk (default a day, cut further at hour boundaries to at most a million
rows) at a time, so its memory follows the chunk, not the window.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from fraud_assets import registry
from fraud_assets.bundle import ScoringBundle
from fraud_assets.detectors.ensemble import EnsembleConfig
from fraud_assets.detectors.score_mapping import (
    ScoreMapping,
    capacity_cuts,
    capacity_mapping,
    fit_quantile_mapping,
)
from fraud_assets.evaluation import replay
from fraud_assets.metadata_charts import histogram, markdown_image

QUANTILES = (0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


def decide(bundle: ScoringBundle, features: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(total risk, decision) per row, with a single-threaded BLAS as the hourly graph runs."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        result = bundle.score(features)["ensemble"]
    return np.asarray(result.total_risk, dtype=np.float64), np.asarray(result.decision)


def active_bundle(client) -> ScoringBundle | None:
    from fraud_assets.bundle_loader import load_bundle

    active = registry.active_models(client).get("ensemble")
    return load_bundle(client, active.version) if active else None


def _shares(risk: np.ndarray) -> str:
    lines = EnsembleConfig()
    return (
        f"{np.mean(risk >= lines.approve_below) * 100:.2f}% flagged, "
        f"{np.mean(risk > lines.block_above) * 100:.3f}% blocked"
    )


def _chart(risk: np.ndarray, title: str) -> str:
    lines = EnsembleConfig()
    return markdown_image(
        histogram(
            risk.tolist(),
            edges=list(range(0, 105, 5)),
            title=title,
            x_label="risk (0–100)",
            markers={
                f"review ≥ {lines.approve_below:g}": lines.approve_below,
                f"block > {lines.block_above:g}": lines.block_above,
            },
        ),
        title,
    )


def fit_score_scale(
    candidate: ScoringBundle,
    active: ScoringBundle | None,
    features: pl.DataFrame,
    *,
    stable_scores: bool,
    review_capacity_per_hour: float | None,
    block_precision_target: float | None,
    max_rows: int,
) -> tuple[ScoreMapping | None, dict[str, Any]]:
    """The candidate's score mapping on the training window, and metadata showing its effect.

    Rows are an even subsample (every k-th) of the window, so rates and
    per-hour volumes keep their values (counts are scaled by k).
    """
    step = max(1, math.ceil(features.height / max_rows))
    rows = features.gather_every(step)
    raw, _ = decide(candidate, rows)
    mapping, notes = None, []
    reference = None
    if stable_scores and active is not None:
        reference, _ = decide(active, rows)
        mapping = fit_quantile_mapping(raw, reference)
        notes.append(f"risk quantiles mapped onto the active {active.version}'s")
    elif stable_scores:
        notes.append("no active bundle: the candidate's own risk scale is kept (identity)")
    if review_capacity_per_hour is not None or block_precision_target is not None:
        scaled = mapping.transform(raw) if mapping else raw
        span = rows["timestamp"].max() - rows["timestamp"].min()
        hours = max(span.total_seconds() / 3600.0, 1.0)
        lines = EnsembleConfig()
        cuts = capacity_cuts(
            scaled,
            rows["is_fraud"].to_numpy(),
            hours,
            review_capacity_per_hour=review_capacity_per_hour,
            block_precision_target=block_precision_target,
            review_line=lines.approve_below,
            block_line=lines.block_above,
            rows_per_row=features.height / rows.height,
        )
        capacity = capacity_mapping(cuts, lines.approve_below, lines.block_above)
        mapping = mapping.then(capacity) if mapping else capacity
        notes += list(cuts.notes)
    after = mapping.transform(raw) if mapping else raw
    table = ["| quantile | candidate before | candidate after | active (reference) |"]
    table.append("|---|---|---|---|")
    for q in QUANTILES:
        ref = f"{np.quantile(reference, q):.2f}" if reference is not None else "—"
        table.append(f"| {q:g} | {np.quantile(raw, q):.2f} | {np.quantile(after, q):.2f} | {ref} |")
    shares = f"| decisions | {_shares(raw)} | {_shares(after)} | " + (
        f"{_shares(reference)} |" if reference is not None else "— |"
    )
    table.append(shares)
    metadata = {
        "score_mapping": "; ".join(notes) if notes else "none (stable_scores off)",
        "score_distribution": "\n".join(table),
        "risk_before_mapping": _chart(raw, "Candidate risk before mapping"),
        "risk_after_mapping": _chart(after, "Candidate risk after mapping"),
        "score_mapping_rows": rows.height,
    }
    return mapping, metadata


def replay_window_features(client, start: datetime, end: datetime, known_by: datetime):
    """The window's features (history read once), with the labels known by ``known_by``.

    The rows are those the hourly graph scores: invalid and already-claimed
    transactions are left out as its validation quarantines them.
    """
    from fraud_assets.assets.training_steps import read_labels
    from fraud_assets.features import extract_features
    from fraud_assets.features.history import load_feature_inputs
    from fraud_assets.validation import claimed_ids, split_valid

    inputs = load_feature_inputs(client, start, end)
    valid, _ = split_valid(inputs.transactions, start, end, claimed_ids(client, start, end))
    known = read_labels(client, start, end, known_by=known_by)
    features = extract_features(valid, inputs.history, inputs.labels)
    return features.join(
        known.select("transaction_id", "is_fraud"), on="transaction_id", how="left"
    ).with_columns(pl.col("is_fraud").fill_null(0))


def replay_chunks(start: datetime, end: datetime, hours: int) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into consecutive ``hours``-long windows (the last one may be shorter)."""
    if isinstance(hours, bool) or not isinstance(hours, int) or hours < 1:
        raise ValueError(f"chunk_hours must be a whole number of hours ≥ 1, got {hours!r}")
    if end <= start:
        raise ValueError(f"empty replay window: {start} is not before {end}")
    step = timedelta(hours=hours)
    bounds = []
    while start < end:
        bounds.append((start, min(start + step, end)))
        start += step
    return bounds


def split_by_rows(
    chunks: list[tuple[datetime, datetime]], hourly_rows: dict[datetime, int], max_rows: int
) -> list[tuple[datetime, datetime]]:
    """``chunks`` cut further at hour boundaries so that none holds more than ``max_rows``
    rows (by ``hourly_rows``: hour start → rows). An hour busier than that stays one
    chunk: hours are the smallest unit. Chunks start on whole hours."""
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ValueError(f"max_chunk_rows must be a whole number ≥ 1, got {max_rows!r}")
    cut = []
    for chunk_start, chunk_end in chunks:
        start, rows, hour = chunk_start, 0, chunk_start
        while hour < chunk_end:
            hour_rows = hourly_rows.get(hour, 0)
            if rows and rows + hour_rows > max_rows:
                cut.append((start, hour))
                start, rows = hour, 0
            rows += hour_rows
            hour += timedelta(hours=1)
        cut.append((start, chunk_end))
    return cut


def hourly_rows(client, start: datetime, end: datetime) -> dict[datetime, int]:
    """Transactions per hour in [start, end), counted where they live."""
    result = client.query(
        "SELECT toStartOfHour(timestamp) AS hour, count() FROM crypto_transactions "
        "WHERE timestamp >= {start:DateTime('UTC')} AND timestamp < {end:DateTime('UTC')} "
        "GROUP BY hour",
        parameters={"start": start, "end": end},
    )
    return {
        (hour if hour.tzinfo else hour.replace(tzinfo=UTC)).astimezone(UTC): int(rows)
        for hour, rows in result.result_rows
    }


def replay_gate(
    clickhouse,
    candidate: ScoringBundle,
    partition_key: str,
    end: datetime,
    *,
    weeks: int,
    label_delay_days: int,
    tolerances: replay.Tolerances,
    chunk_hours: int = 24,
    max_chunk_rows: int | None = None,
) -> dict[str, Any]:
    """Replay ``weeks`` of traffic before ``end`` with the candidate and the active bundle,
    ``chunk_hours`` (at most ``max_chunk_rows`` rows) at a time, compare them on matured
    labels and store the verdict in the registry."""
    start = end - timedelta(weeks=weeks)
    # A bad chunk size fails before anything is read.
    chunks = replay_chunks(start, end, chunk_hours)
    if max_chunk_rows is not None:
        split_by_rows(chunks, {}, max_chunk_rows)
    matured_before = end - timedelta(days=label_delay_days)
    verdict = registry.ReplayVerdict(
        version=candidate.version,
        partition_key=partition_key,
        active_version="",
        passed=True,
        reason="",
        window_start=start,
        window_end=end,
        label_delay_days=label_delay_days,
        report={"tolerances": asdict(tolerances)},
    )
    result: dict[str, Any] = {}
    with clickhouse.get_client() as client:
        active = registry.active_models(client).get("ensemble")
        if active is None:
            verdict.reason = "no active bundle: nothing to compare with, the gate passes"
        elif active.version == candidate.version:
            verdict.active_version = active.version
            verdict.reason = f"{candidate.version} is already the active bundle"
        else:
            verdict.active_version = active.version
            result = replay_outcomes(
                client,
                candidate,
                active_bundle(client),
                start,
                end,
                matured_before,
                chunk_hours=chunk_hours,
                max_chunk_rows=max_chunk_rows,
            )
            judged = replay.compare(result["candidate"], result["active"], tolerances)
            verdict.passed, verdict.reason = judged.passed, judged.reason
            verdict.report |= {
                "candidate": result["candidate"].as_dict(),
                "active": result["active"].as_dict(),
                "checks": [asdict(c) for c in judged.checks],
                "timing": result["timing"],
            }
            result["table"] = replay.markdown(result["candidate"], result["active"], judged)
        registry.record_replay(client, verdict)
    return {
        "passed": verdict.passed,
        "reason": verdict.reason,
        "active_version": verdict.active_version,
        "window": f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC",
        "matured_before": f"{matured_before:%Y-%m-%d %H:%M} UTC",
        "table": result.get("table", verdict.reason),
        "timing": result.get("timing", {}),
    }


def replay_outcomes(
    client,
    candidate: ScoringBundle,
    active: ScoringBundle,
    start: datetime,
    end: datetime,
    matured_before: datetime,
    *,
    chunk_hours: int = 24,
    max_chunk_rows: int | None = None,
) -> dict[str, Any]:
    """Both bundles' ``replay.Outcome`` on [start, end), read and scored one chunk at a time.

    Chunks are ``chunk_hours`` long; with ``max_chunk_rows``, a chunk holding more rows
    is cut at hour boundaries (a count per hour, read first), so a busy day cannot
    outgrow memory.

    Each chunk is featurised as a single-run backfill of its hours would be
    (its own history read, labels known at ``end``); only the counts are kept.
    """
    started = time.perf_counter()
    tallies = {"candidate": replay.Tally(), "active": replay.Tally()}
    reading = scoring = 0.0
    rows = largest = 0
    chunks = replay_chunks(start, end, chunk_hours)
    if max_chunk_rows is not None:
        chunks = split_by_rows(chunks, hourly_rows(client, start, end), max_chunk_rows)
    for chunk_start, chunk_end in chunks:
        began = time.perf_counter()
        features = replay_window_features(client, chunk_start, chunk_end, known_by=end)
        read = time.perf_counter()
        reading += read - began
        if features.height == 0:  # an hour range with no traffic: nothing to decide
            continue
        matured = (features["timestamp"] < matured_before).to_numpy()
        is_fraud, amount = features["is_fraud"].to_numpy(), features["amount"].to_numpy()
        for name, bundle in (("candidate", candidate), ("active", active)):
            _, decision = decide(bundle, features)
            tallies[name].add(decision, is_fraud, amount, matured)
        scoring += time.perf_counter() - read
        rows, largest = rows + features.height, max(largest, features.height)
        del features, matured, is_fraud, amount
    hours = (end - start).total_seconds() / 3600.0
    wall = time.perf_counter() - started
    return {
        "candidate": tallies["candidate"].outcome(candidate.version, hours),
        "active": tallies["active"].outcome(active.version, hours),
        "timing": {
            "rows": rows,
            "chunks": len(chunks),
            "chunk_hours": chunk_hours,
            "max_chunk_rows": max_chunk_rows,
            "largest_chunk_rows": largest,
            "features_seconds": round(reading, 2),
            "scoring_seconds": round(scoring, 2),
            "wall_seconds": round(wall, 2),
            "rows_per_second": round(rows / max(wall, 1e-9), 1),
        },
    }
