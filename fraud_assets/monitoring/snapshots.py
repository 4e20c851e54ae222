"""Which model inputs are monitored for drift, and their hourly copy in ClickHouse.

Every model feature is monitored except the clock features: within one hour
they take a single value, so against a reference that spans every hour of a
week they would always read as drift without saying anything about the
traffic.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from clickhouse_connect.driver.client import Client

from fraud_assets.clickhouse.client import quote_identifier
from fraud_assets.monitoring import drift_sql
from fraud_assets.monitoring.histograms import DEFAULT_BINS, Histogram, reference_histogram

CLOCK_FEATURES = frozenset(
    {"hour_sin", "hour_cos", "dow_sin", "dow_cos", "is_weekend", "is_night_utc"}
)
SNAPSHOT_TABLE = drift_sql.TABLES[drift_sql.FEATURE]
KEY_COLUMNS = ("transaction_id", "timestamp", "model_version")


def monitored_features() -> list[str]:
    """The catalog's features minus the clock features, in catalog order (read at call time)."""
    from fraud_assets.features.catalog import FEATURE_COLUMNS

    return [name for name in FEATURE_COLUMNS if name not in CLOCK_FEATURES]


def snapshot_frame(features: pl.DataFrame) -> pl.DataFrame:
    """The hour's monitored features as Float32 beside the keys, ready for feature_snapshots."""
    names = [n for n in monitored_features() if n in features.columns]
    return features.select(
        pl.col("transaction_id").cast(pl.Utf8),
        pl.col("timestamp"),
        pl.col("model_version").cast(pl.Utf8),
        *(pl.col(n).cast(pl.Float32) for n in names),
    )


def ensure_feature_columns(client: Client, names: list[str]) -> list[str]:
    """Add a Float32 column to feature_snapshots for each feature it lacks; returns those added."""
    present = drift_sql.table_columns(client, SNAPSHOT_TABLE)
    missing = [n for n in names if n not in present]
    for name in missing:
        client.command(
            f"ALTER TABLE {SNAPSHOT_TABLE} ADD COLUMN IF NOT EXISTS {quote_identifier(name)} Float32"
        )
    return missing


def feature_references(features: pl.DataFrame, bins: int = DEFAULT_BINS) -> dict[str, Histogram]:
    """Reference histograms of the monitored features present in ``features``."""
    return {
        name: reference_histogram(features[name].to_numpy(), bins)
        for name in monitored_features()
        if name in features.columns
    }


def score_references(
    scores: dict[str, np.ndarray], bins: int = DEFAULT_BINS
) -> dict[str, Histogram]:
    return {name: reference_histogram(values, bins) for name, values in scores.items()}
