"""Input frames brought to one schema: column set, types, UTC timestamps, no nulls.

``extract_features`` accepts frames straight from ClickHouse (dictionary
strings, second-resolution timestamps) or built by hand (naive datetimes are
taken as UTC), so the feature code itself sees one shape only.
"""

from __future__ import annotations

import polars as pl

TIMESTAMP = pl.Datetime("us", "UTC")

# Columns the window needs from a transaction row. Profile columns are the
# source system's own per-row values; when absent they take the fill value.
REQUIRED_COLUMNS: dict[str, pl.DataType] = {
    "transaction_id": pl.String(),
    "timestamp": TIMESTAMP,
    "user_id": pl.String(),
    "amount": pl.Float64(),
    "transaction_type": pl.String(),
    "wallet_address": pl.String(),
    "ip_country": pl.String(),
    "device_type": pl.String(),
}
PROFILE_COLUMNS: dict[str, tuple[pl.DataType, object]] = {
    "currency": (pl.String(), ""),
    "user_avg_amount": (pl.Float64(), 0.0),
    "user_total_transactions": (pl.Float64(), 0.0),
    "user_account_age_days": (pl.Float64(), 0.0),
    "wallet_age_days": (pl.Float64(), 0.0),
    "wallet_total_volume": (pl.Float64(), 0.0),
}
# History rows need only the required columns: everything a look-back reads.
HISTORY_COLUMNS: tuple[str, ...] = tuple(REQUIRED_COLUMNS)

# Additive per-row quantities every look-back sums (see compaction.py). A
# history row that carries them (non-null ``agg_rows``) is a summary of several
# transactions; a row without them is one transaction.
AGGREGATE_COLUMNS: tuple[str, ...] = (
    "agg_rows",
    "agg_cents",
    "agg_log_q",
    "agg_log_q2",
    "agg_hour_cos",
    "agg_hour_sin",
    "agg_type_buy",
    "agg_type_sell",
    "agg_type_withdraw",
    "agg_type_deposit",
)

LABEL_COLUMNS: dict[str, pl.DataType] = {
    "transaction_id": pl.String(),
    "is_fraud": pl.Int8(),
    "labeled_at": TIMESTAMP,
    "user_id": pl.String(),
    "wallet_address": pl.String(),
}


def _as_utc(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            expr = expr.dt.replace_time_zone("UTC")
        return expr.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    return expr.cast(TIMESTAMP)


def _coerce(frame: pl.DataFrame, name: str, dtype: pl.DataType, fill: object) -> pl.Expr:
    if name not in frame.columns:
        return pl.lit(fill, dtype=dtype).alias(name)
    source = frame.schema[name]
    if dtype == TIMESTAMP:
        return _as_utc(pl.col(name), source).alias(name)
    expr = pl.col(name).cast(dtype)
    if fill is not None:
        expr = expr.fill_null(fill)
        if dtype.is_float():
            expr = expr.fill_nan(fill)
    return expr.alias(name)


def _fill_for(dtype: pl.DataType) -> object:
    if dtype == pl.String():
        return ""
    if dtype == TIMESTAMP:
        return None
    return 0


def normalise_transactions(frame: pl.DataFrame, *, what: str = "transactions") -> pl.DataFrame:
    """Required + profile columns, typed, nulls filled; raises on a missing required column."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lack required columns {missing}")
    if frame.get_column("timestamp").null_count():
        raise ValueError(f"{what} have rows without a timestamp")
    exprs = [_coerce(frame, c, t, _fill_for(t)) for c, t in REQUIRED_COLUMNS.items()]
    exprs += [_coerce(frame, c, t, fill) for c, (t, fill) in PROFILE_COLUMNS.items()]
    return frame.select(exprs)


def normalise_history(frame: pl.DataFrame | None) -> pl.DataFrame:
    """History rows with the look-back columns and the (nullable) aggregate columns."""
    schema = {**REQUIRED_COLUMNS, **dict.fromkeys(AGGREGATE_COLUMNS, pl.Int64())}
    if frame is None or frame.width == 0 or frame.height == 0:
        return pl.DataFrame(schema=schema)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"history lacks required columns {missing}")
    exprs = [_coerce(frame, c, t, _fill_for(t)) for c, t in REQUIRED_COLUMNS.items()]
    exprs += [_coerce(frame, c, pl.Int64(), None) for c in AGGREGATE_COLUMNS]
    return frame.select(exprs).filter(pl.col("timestamp").is_not_null())


def normalise_labels(frame: pl.DataFrame | None) -> pl.DataFrame:
    """Label rows; ``user_id``/``wallet_address`` may be absent (filled from the transactions)."""
    if frame is None or frame.width == 0 or frame.height == 0:
        return pl.DataFrame(schema=LABEL_COLUMNS)
    missing = [c for c in ("transaction_id", "is_fraud", "labeled_at") if c not in frame.columns]
    if missing:
        raise ValueError(f"labels lack required columns {missing}")
    exprs = [_coerce(frame, c, t, _fill_for(t)) for c, t in LABEL_COLUMNS.items()]
    return frame.select(exprs).filter(pl.col("labeled_at").is_not_null())
