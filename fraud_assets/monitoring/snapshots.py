"""Which model inputs are monitored for drift, and their hourly copy in ClickHouse.

Every model feature is monitored except the clock features: within one hour
they take a single value, so against a reference that spans every hour of a
week they would always read as drift without saying anything about the
traffic. The copy holds every row of an hour up to ``SNAPSHOT_ROWS_PER_HOUR``
and a uniform sample of that many of a busier hour.
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
# Rows of an hour kept for the drift check: its quantile bins (10 by default) then
# hold ~10 000 rows each, far more than PSI needs, and the snapshot of a 1M-row hour
# is written in a tenth of the time.
SNAPSHOT_ROWS_PER_HOUR = 100_000


def monitored_features() -> list[str]:
    """The catalog's features minus the clock features, in catalog order (read at call time)."""
    from fraud_assets.features.catalog import FEATURE_COLUMNS

    return [name for name in FEATURE_COLUMNS if name not in CLOCK_FEATURES]


def snapshot_frame(
    features: pl.DataFrame, rows_per_hour: int = SNAPSHOT_ROWS_PER_HOUR
) -> pl.DataFrame:
    """The monitored features as Float32 beside the keys, ready for feature_snapshots.

    An hour with more than ``rows_per_hour`` rows keeps a uniform random sample
    of that many (seeded: a rerun writes the same rows), in the frame's order.
    """
    names = [n for n in monitored_features() if n in features.columns]
    frame = features.select(
        pl.col("transaction_id").cast(pl.Utf8),
        pl.col("timestamp"),
        pl.col("model_version").cast(pl.Utf8),
        *(pl.col(n).cast(pl.Float32) for n in names),
    )
    hour = pl.col("timestamp").dt.truncate("1h")
    if frame.height <= rows_per_hour or frame.group_by(hour).len()["len"].max() <= rows_per_hour:
        return frame
    return frame.filter(pl.int_range(pl.len()).shuffle(seed=0).over(hour) < rows_per_hour)


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
