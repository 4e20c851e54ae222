"""``extract_features``: the one feature implementation for training and scoring.

Pure (no I/O): the caller passes the rows to featurise, earlier rows of the
same users and wallets, and the fraud labels. Every history-dependent feature
looks only at rows of the same group (user, wallet, user × country, …) at or
before the transaction and inside a fixed look-back anchored at the start of
the transaction's hour, so a transaction gets the same values whether it is
featurised in a 1-hour window with a history frame or inside a 30-day window
(the partition-edge property). Meanings and fill values: ``catalog.py``.

The heavy lifting is polars (normalising, ordering, encodings) and vectorised
numpy over sorted arrays (:mod:`fraud_assets.features.timeline`); there is no
per-row Python. The timelines, and then the feature groups, do not depend on
each other, and numpy and polars release the GIL in their loops, so each set
runs on a small thread pool (the README's performance section has the
figures); the output does not depend on the number of threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from fraud_assets.features.catalog import (
    FEATURE_COLUMNS,
    GEO_VELOCITY_CAP_KMH,
    KEY_COLUMNS,
    LOOKBACK_DAYS,
    MIN_ELAPSED_HOURS_FOR_GEO,
    NEAR_LIMIT_RANGE_USD,
    NO_PREVIOUS_TX_MINUTES,
)
from fraud_assets.features.compaction import (
    HOUR_COS,
    HOUR_SIN,
    HOUR_VECTOR_QUANTUM,
    LOG_AMOUNT_QUANTUM,
    TYPE_AGGREGATES,
    compact,
    row_aggregates,
)
from fraud_assets.features.frames import (
    AGGREGATE_COLUMNS,
    HISTORY_COLUMNS,
    normalise_history,
    normalise_labels,
    normalise_transactions,
)
from fraud_assets.features.timeline import Timeline, Window
from fraud_assets.reference import COUNTRY_LOCATIONS, CURRENCIES, DEVICE_TYPES, TRANSACTION_TYPES

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
LOOKBACK_MS = LOOKBACK_DAYS * DAY_MS
LABEL_SHORT_WINDOW_MS = 7 * DAY_MS
RECENT_WINDOWS_MS = {"5m": 5 * MINUTE_MS, "1h": HOUR_MS, "24h": DAY_MS}
EARTH_RADIUS_KM = 6371.0088
FLOAT64_FEATURES = frozenset({"amount"})
THREADS = max(1, min(4, os.cpu_count() or 1))


def lookback_start(timestamp: pl.Expr) -> pl.Expr:
    """Start of a transaction's look-back: 30 days before the start of its UTC hour."""
    return timestamp.dt.truncate("1h") - pl.duration(days=LOOKBACK_DAYS)


def extract_features(
    transactions: pl.DataFrame, history: pl.DataFrame, labels: pl.DataFrame
) -> pl.DataFrame:
    """One row per input transaction, in input order: keys and every feature column.

    ``history`` may overlap ``transactions`` or be empty; only its rows inside
    a transaction's look-back matter. It may also hold summary rows (non-null
    ``agg_*`` columns, see ``compaction.py``), as ``load_feature_inputs``
    returns. ``labels`` are ``transaction_labels`` rows.
    """
    targets = normalise_transactions(transactions)
    if targets.height == 0:
        return _empty_output()
    span = _Span.of(targets)
    rows = _rows(targets, _relevant_history(normalise_history(history), targets, span), span)
    codes = _codes(rows.frame, normalise_labels(labels))

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        groups = _timeline_groups(codes)
        rows.timelines = dict(zip(groups, pool.map(rows.timeline, groups.values()), strict=True))
        parts = [
            pool.submit(_user_behaviour_features, rows, targets, codes),
            pool.submit(_amount_and_encoding_features, targets),
            pool.submit(_time_based_features, targets),
            pool.submit(_wallet_features, rows, codes),
            pool.submit(_feedback_features, rows, codes),
            pool.submit(_novelty_features, rows, codes),
        ]
        features: dict[str, np.ndarray] = {}
        for part in parts:
            features.update(part.result())
    return _assemble(targets, features)


# ---------------------------------------------------------------- preparation


@dataclass(frozen=True)
class _Span:
    """The window's times in epoch ms: look-back starts per transaction and the extremes."""

    lookback_start_ms: np.ndarray
    earliest_lookback_ms: int
    latest_lookback_ms: int
    first_ms: int
    last_ms: int

    @classmethod
    def of(cls, targets: pl.DataFrame) -> _Span:
        starts = targets.select(lookback_start(pl.col("timestamp")).dt.epoch("ms")).to_series()
        times = targets.get_column("timestamp").dt.epoch("ms")
        return cls(
            lookback_start_ms=starts.to_numpy(),
            earliest_lookback_ms=int(starts.min()),
            latest_lookback_ms=int(starts.max()),
            first_ms=int(times.min()),
            last_ms=int(times.max()),
        )


def _relevant_history(history: pl.DataFrame, targets: pl.DataFrame, span: _Span) -> pl.DataFrame:
    """History inside some look-back, not repeating a target, with old rows summarised."""
    millis = pl.col("timestamp").dt.epoch("ms")
    history = history.filter(millis.is_between(span.earliest_lookback_ms, span.last_ms))
    # Only rows at or after the first target can be one of the targets.
    may_repeat = (millis >= span.first_ms) & pl.col("agg_rows").is_null()
    overlap = history.filter(may_repeat)
    if overlap.height:
        overlap = overlap.join(
            targets.select("transaction_id").unique(), on="transaction_id", how="anti"
        )
        history = pl.concat([history.filter(~may_repeat), overlap], how="vertical")
    return compact(history, span.latest_lookback_ms, span.first_ms - DAY_MS)


class _Memo:
    """Values computed once per key, also when several threads ask for one at once."""

    def __init__(self) -> None:
        self._values: dict = {}
        self._locks: dict = {}

    def get(self, key: tuple, compute: Callable[[], Any]) -> Any:
        with self._locks.setdefault(key, threading.Lock()):
            if key not in self._values:
                self._values[key] = compute()
            return self._values[key]


@dataclass
class _Rows:
    """Targets (first ``n_targets`` rows), then history rows, as numpy arrays.

    ``window`` and ``prefix`` are memoised: several feature groups use the same
    look-back of the same timeline, and each costs a pass over every row.
    """

    frame: pl.DataFrame
    n_targets: int
    time_ms: np.ndarray
    time_us: np.ndarray
    is_summary: np.ndarray
    span: _Span
    time_order: np.ndarray
    time_origin: int
    stride: int
    timelines: dict[str, Timeline] = field(default_factory=dict)  # by _timeline_groups' keys
    memo: _Memo = field(default_factory=_Memo)

    def timeline(self, group: np.ndarray) -> Timeline:
        """The rows ordered within each ``group`` (sorting is the cost: build each once)."""
        return Timeline(
            group,
            self.time_ms,
            self.time_us,
            self.time_order,
            self.frame.get_column("transaction_id"),
            self.is_summary,
            self.n_targets,
            self.time_origin,
            self.stride,
        )

    def column(self, name: str) -> np.ndarray:
        return self.frame.get_column(name).to_numpy()

    def window(self, key: str, since: str, *, inclusive_start: bool, include_self: bool) -> Window:
        """``timelines[key]``'s window up to each target, from ``since``: "30d" (the look-back
        start) or a ``RECENT_WINDOWS_MS`` name."""

        def search() -> Window:
            if since == "30d":
                start = self.span.lookback_start_ms
            else:
                start = self.target_time_ms - RECENT_WINDOWS_MS[since]
            return self.timelines[key].window(
                start, inclusive_start=inclusive_start, include_self=include_self
            )

        return self.memo.get(("window", key, since, inclusive_start, include_self), search)

    def prefix(self, key: str, column: str) -> np.ndarray:
        """``timelines[key]``'s prefix sums of a column."""
        return self.memo.get(
            ("prefix", key, column), lambda: self.timelines[key].prefix(self.column(column))
        )

    @property
    def target_time_ms(self) -> np.ndarray:
        return self.time_ms[: self.n_targets]


def _rows(targets: pl.DataFrame, history: pl.DataFrame, span: _Span) -> _Rows:
    is_summary = pl.col("agg_rows").is_not_null()
    frame = pl.concat(
        [
            targets.select(HISTORY_COLUMNS).with_columns(row_aggregates()),
            history.filter(~is_summary).drop(AGGREGATE_COLUMNS).with_columns(row_aggregates()),
            history.filter(is_summary),
        ],
        how="vertical",
    )
    n_summaries = history.select(is_summary.sum()).item()
    summary_flags = np.zeros(frame.height, dtype=bool)
    if n_summaries:
        summary_flags[-n_summaries:] = True
    # By time, summary rows first among equal times: they are never a previous transaction.
    time_us = frame.get_column("timestamp").dt.epoch("us").to_numpy()
    order = pl.Series(time_us * 2 + ~summary_flags).arg_sort()
    return _Rows(
        frame=frame,
        n_targets=targets.height,
        time_ms=frame.get_column("timestamp").dt.epoch("ms").to_numpy(),
        time_us=time_us,
        is_summary=summary_flags,
        span=span,
        time_order=order.to_numpy().astype(np.int64),
        time_origin=span.earliest_lookback_ms,
        stride=span.last_ms - span.earliest_lookback_ms + 1,
    )


@dataclass
class _Codes:
    """Dense integer codes per row; label rows share the user and wallet codes."""

    user: np.ndarray
    wallet: np.ndarray
    has_wallet: np.ndarray
    country: np.ndarray
    device: np.ndarray
    fraud_labels: pl.DataFrame  # user_code, wallet_code, has_wallet, labeled_ms


def _dense(values: pl.Series) -> np.ndarray:
    """Small non-negative integer codes, equal exactly for equal values."""
    codes = values.cast(pl.Categorical).to_physical()
    if codes.len() and codes.max() >= codes.len():  # categories shared with other frames
        codes = codes.rank("dense") - 1
    return codes.cast(pl.Int64).to_numpy()


def _codes(frame: pl.DataFrame, labels: pl.DataFrame) -> _Codes:
    fraud = _confirmed_fraud(labels, frame)
    n = frame.height
    users = _dense(pl.concat([frame.get_column("user_id"), fraud.get_column("user_id")]))
    wallets = _dense(
        pl.concat([frame.get_column("wallet_address"), fraud.get_column("wallet_address")])
    )
    fraud_codes = pl.DataFrame(
        {
            "user_code": users[n:],
            "wallet_code": wallets[n:],
            "has_wallet": (fraud.get_column("wallet_address") != "").to_numpy(),
            "labeled_ms": fraud.get_column("labeled_at").dt.epoch("ms").to_numpy(),
        }
    )
    return _Codes(
        user=users[:n],
        wallet=wallets[:n],
        has_wallet=(frame.get_column("wallet_address") != "").to_numpy(),
        country=_dense(frame.get_column("ip_country")),
        device=_dense(frame.get_column("device_type")),
        fraud_labels=fraud_codes,
    )


def _confirmed_fraud(labels: pl.DataFrame, frame: pl.DataFrame) -> pl.DataFrame:
    """The latest label per transaction, kept when it says fraud.

    A label counts only from its ``labeled_at`` on. A transaction relabelled
    later counts from the relabelling (its earlier label is superseded, as in
    the ReplacingMergeTree table), which can only delay what a feature sees.
    Missing user or wallet on a label is taken from the transaction rows.
    """
    latest = labels.sort(["transaction_id", "labeled_at", "is_fraud"]).unique(
        subset="transaction_id", keep="last"
    )
    fraud = latest.filter(pl.col("is_fraud") == 1)
    if fraud.height and (
        (fraud.get_column("user_id") == "").any()
        or (fraud.get_column("wallet_address") == "").any()
    ):
        known = frame.select(
            "transaction_id",
            pl.col("user_id").alias("_user"),
            pl.col("wallet_address").alias("_wallet"),
        ).unique(subset="transaction_id", keep="first")
        fraud = fraud.join(known, on="transaction_id", how="left").with_columns(
            pl.when(pl.col("user_id") == "")
            .then(pl.col("_user").fill_null(""))
            .otherwise(pl.col("user_id"))
            .alias("user_id"),
            pl.when(pl.col("wallet_address") == "")
            .then(pl.col("_wallet").fill_null(""))
            .otherwise(pl.col("wallet_address"))
            .alias("wallet_address"),
        )
    return fraud.select("user_id", "wallet_address", "labeled_at")


def _combine_codes(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    return major * (int(minor.max(initial=0)) + 1) + minor


def _timeline_groups(codes: _Codes) -> dict[str, np.ndarray]:
    """The groupings the feature groups look back over, by the key they use."""
    return {
        "user": codes.user,
        "wallet": codes.wallet,
        "user×country": _combine_codes(codes.user, codes.country),
        "user×device": _combine_codes(codes.user, codes.device),
        "user×wallet": _combine_codes(codes.user, codes.wallet),
    }


# ---------------------------------------------------------------- feature groups


def _amount_and_encoding_features(targets: pl.DataFrame) -> dict[str, np.ndarray]:
    exprs = {
        "amount": pl.col("amount"),
        "log_amount": pl.col("amount").clip(lower_bound=0).log1p(),
        "amount_is_round_100": (
            ((pl.col("amount") * 100).round() % 10_000 == 0) & (pl.col("amount") > 0)
        ),
        "amount_just_below_10k": pl.col("amount").is_between(9_000, 10_000, closed="left"),
        "amount_to_profile_avg": pl.when(pl.col("user_avg_amount") > 0)
        .then(pl.col("amount") / pl.col("user_avg_amount"))
        .otherwise(1.0),
        "log_user_account_age_days": pl.col("user_account_age_days").clip(lower_bound=0).log1p(),
        "log_user_total_transactions": pl.col("user_total_transactions")
        .clip(lower_bound=0)
        .log1p(),
        "wallet_age_days": pl.col("wallet_age_days").clip(lower_bound=0),
        "log_wallet_total_volume": pl.col("wallet_total_volume").clip(lower_bound=0).log1p(),
        "is_fresh_wallet": pl.col("wallet_age_days") < 1,
    }
    for value in TRANSACTION_TYPES:
        exprs[f"type_{value.lower()}"] = pl.col("transaction_type") == value
    for value in CURRENCIES:
        exprs[f"currency_{value.lower()}"] = pl.col("currency") == value
    for value in DEVICE_TYPES:
        exprs[f"device_{value.lower()}"] = pl.col("device_type") == value
    exprs["country_is_unknown"] = ~pl.col("ip_country").is_in(list(COUNTRY_LOCATIONS))
    out = targets.select([expr.cast(pl.Float64).alias(name) for name, expr in exprs.items()])
    return {name: out.get_column(name).to_numpy() for name in out.columns}


_HOUR_ANGLE = 2 * np.pi * np.arange(24) / 24
_DOW_ANGLE = 2 * np.pi * np.arange(7) / 7


def _time_based_features(targets: pl.DataFrame) -> dict[str, np.ndarray]:
    """Cyclic encodings of the UTC hour and weekday (table look-ups, so exact)."""
    parts = targets.select(
        hour=pl.col("timestamp").dt.hour().cast(pl.Int64),
        dow=pl.col("timestamp").dt.weekday().cast(pl.Int64) - 1,
    )
    hour = parts.get_column("hour").to_numpy()
    dow = parts.get_column("dow").to_numpy()
    return {
        "hour_sin": np.sin(_HOUR_ANGLE)[hour],
        "hour_cos": np.cos(_HOUR_ANGLE)[hour],
        "dow_sin": np.sin(_DOW_ANGLE)[dow],
        "dow_cos": np.cos(_DOW_ANGLE)[dow],
        "is_weekend": (dow >= 5).astype(np.float64),
        "is_night_utc": (hour < 6).astype(np.float64),
    }


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray, fill: float) -> np.ndarray:
    out = np.full(numerator.shape, fill, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _user_behaviour_features(rows: _Rows, targets: pl.DataFrame, codes: _Codes) -> dict:
    """Velocity, amount against the user's own history, and country/device changes."""
    n = rows.n_targets
    t = rows.target_time_ms

    user = rows.timelines["user"]
    w5m = rows.window("user", "5m", inclusive_start=False, include_self=True)
    w1h = rows.window("user", "1h", inclusive_start=False, include_self=True)
    w24h = rows.window("user", "24h", inclusive_start=False, include_self=True)
    w30d = rows.window("user", "30d", inclusive_start=True, include_self=False)

    def total(name: str, window: Window) -> np.ndarray:
        return user.to_targets(user.window_sum(rows.prefix("user", name), window)).astype(
            np.float64
        )

    count_30d = total("agg_rows", w30d)
    sum_30d = total("agg_cents", w30d) / 100.0
    sum_q = total("agg_log_q", w30d)
    sum_q2 = total("agg_log_q2", w30d)
    sum_1h = total("agg_cents", w1h) / 100.0
    sum_24h = total("agg_cents", w24h) / 100.0
    tx_1h = total("agg_rows", w1h)

    amount_t = targets.get_column("amount").to_numpy()
    log_amount_t = np.log1p(np.clip(amount_t, 0, None))
    avg_30d = _safe_divide(sum_30d, count_30d, 0.0)
    mean_log = _safe_divide(sum_q, count_30d, 0.0) / LOG_AMOUNT_QUANTUM
    mean_sq_log = _safe_divide(sum_q2, count_30d, 0.0) / LOG_AMOUNT_QUANTUM**2
    std_log = np.where(count_30d >= 2, np.sqrt(np.clip(mean_sq_log - mean_log**2, 0, None)), 0.0)
    zscore = np.where(
        count_30d >= 2, np.clip((log_amount_t - mean_log) / np.maximum(std_log, 0.1), -50, 50), 0.0
    )

    # Same type: the history count of this transaction's own type (0 for an unknown type).
    type_totals = np.stack([total(c, w30d) for c in TYPE_AGGREGATES.values()] + [np.zeros(n)])
    type_index = (
        targets.get_column("transaction_type")
        .replace_strict(list(TYPE_AGGREGATES), list(range(4)), default=4, return_dtype=pl.Int64)
        .to_numpy()
    )
    same_type = type_totals[type_index, np.arange(n)]
    hour = targets.get_column("timestamp").dt.hour().cast(pl.Int64).to_numpy()
    hour_similarity = (
        np.asarray(HOUR_COS, dtype=np.float64)[hour] * total("agg_hour_cos", w30d)
        + np.asarray(HOUR_SIN, dtype=np.float64)[hour] * total("agg_hour_sin", w30d)
    ) / float(HOUR_VECTOR_QUANTUM) ** 2

    previous = user.to_targets(user.previous_row(w30d))
    previous_safe = np.where(previous >= 0, previous, 0)
    has_previous = (previous >= 0) & ~rows.is_summary[previous_safe]
    elapsed_ms = np.where(has_previous, t - rows.time_ms[previous_safe], 0)
    minutes = np.where(
        has_previous,
        np.minimum(elapsed_ms / MINUTE_MS, NO_PREVIOUS_TX_MINUTES),
        NO_PREVIOUS_TX_MINUTES,
    )
    country_t = codes.country[:n]
    device_t = codes.device[:n]
    country_changed = has_previous & (codes.country[previous_safe] != country_t)
    device_changed = has_previous & (codes.device[previous_safe] != device_t)
    distance = _country_distance_km(rows.frame.get_column("ip_country"), previous_safe)
    distance = np.where(country_changed, distance, 0.0)
    hours = np.maximum(elapsed_ms / HOUR_MS, MIN_ELAPSED_HOURS_FOR_GEO)
    velocity = np.minimum(distance / hours, GEO_VELOCITY_CAP_KMH)

    def changes_24h(values: np.ndarray) -> np.ndarray:
        flags = user.prefix_sorted(user.changes_from_predecessor(values))
        return user.to_targets(user.pairs_sum(flags, w24h)).astype(np.float64)

    def prior_in_group(key: str) -> np.ndarray:
        timeline = rows.timelines[key]
        window = rows.window(key, "30d", inclusive_start=True, include_self=False)
        weights = rows.prefix(key, "agg_rows")
        return timeline.to_targets(timeline.window_sum(weights, window)).astype(np.float64)

    return {
        "amount_to_user_avg": np.where(count_30d > 0, amount_t / np.maximum(avg_30d, 0.01), 1.0),
        "amount_log_zscore_user": zscore,
        "amount_share_of_user_24h": _safe_divide(amount_t, sum_24h, 0.0),
        "user_tx_count_30d": count_30d,
        "user_has_history": (count_30d > 0).astype(np.float64),
        "log_user_avg_amount_30d": np.log1p(avg_30d),
        "user_log_amount_std_30d": std_log,
        "user_hour_affinity_30d": _safe_divide(hour_similarity, count_30d, 0.0),
        "user_same_type_share_30d": _safe_divide(same_type, count_30d, 0.0),
        "tx_count_5m": total("agg_rows", w5m),
        "tx_count_1h": tx_1h,
        "tx_count_24h": total("agg_rows", w24h),
        "log_amount_sum_1h": np.log1p(sum_1h),
        "log_amount_sum_24h": np.log1p(sum_24h),
        "withdraw_count_24h": total("agg_type_withdraw", w24h),
        "velocity_1h_vs_30d": tx_1h / (count_30d / (LOOKBACK_DAYS * 24) + 1.0),
        "minutes_since_last_tx": minutes,
        "log_minutes_since_last_tx": np.log1p(minutes),
        "country_changes_24h": changes_24h(codes.country),
        "device_changes_24h": changes_24h(codes.device),
        "country_changed": country_changed.astype(np.float64),
        "is_new_country_for_user": (prior_in_group("user×country") == 0).astype(np.float64),
        "geo_distance_km": distance,
        "geo_velocity_kmh": velocity,
        "device_changed": device_changed.astype(np.float64),
        "is_new_device_for_user": (prior_in_group("user×device") == 0).astype(np.float64),
    }


def _country_distance_km(countries: pl.Series, previous_rows: np.ndarray) -> np.ndarray:
    """Great-circle distance between each target's country and its previous row's country."""
    names = list(COUNTRY_LOCATIONS)
    lat = np.radians(np.array([COUNTRY_LOCATIONS[c][0] for c in names] + [np.nan]))
    lon = np.radians(np.array([COUNTRY_LOCATIONS[c][1] for c in names] + [np.nan]))
    index = (
        countries.replace_strict(names, list(range(len(names))), default=len(names))
        .cast(pl.Int64)
        .to_numpy()
    )
    here = index[: previous_rows.shape[0]]
    there = index[previous_rows]
    d_lat = lat[here] - lat[there]
    d_lon = lon[here] - lon[there]
    a = np.sin(d_lat / 2) ** 2 + np.cos(lat[here]) * np.cos(lat[there]) * np.sin(d_lon / 2) ** 2
    distance = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
    return np.nan_to_num(distance, nan=0.0)


def _wallet_features(rows: _Rows, codes: _Codes) -> dict:
    """Counterparty-wallet activity across all users, and the user's own use of the wallet."""
    has_wallet = codes.has_wallet[: rows.n_targets]

    wallet = rows.timelines["wallet"]
    w24h = rows.window("wallet", "24h", inclusive_start=False, include_self=True)
    w30d = rows.window("wallet", "30d", inclusive_start=True, include_self=False)
    wallet_rows = rows.prefix("wallet", "agg_rows")
    count_24h = wallet.to_targets(wallet.window_sum(wallet_rows, w24h)).astype(np.float64)
    cents = rows.prefix("wallet", "agg_cents")
    sum_24h = wallet.to_targets(wallet.window_sum(cents, w24h)) / 100.0
    count_30d = wallet.to_targets(wallet.window_sum(wallet_rows, w30d)).astype(np.float64)

    user_wallet = rows.timelines["user×wallet"]
    own = rows.window("user×wallet", "30d", inclusive_start=True, include_self=False)
    own_rows = user_wallet.window_sum(rows.prefix("user×wallet", "agg_rows"), own)
    own_30d = user_wallet.to_targets(own_rows).astype(np.float64)

    def only_with_wallet(values: np.ndarray) -> np.ndarray:
        return np.where(has_wallet, values, 0.0)

    return {
        "is_new_wallet_for_user": only_with_wallet((own_30d == 0).astype(np.float64)),
        "wallet_tx_count_24h": only_with_wallet(count_24h),
        "wallet_tx_count_30d": only_with_wallet(count_30d),
        "wallet_other_users_tx_30d": only_with_wallet(count_30d - own_30d),
        "log_wallet_amount_sum_24h": only_with_wallet(np.log1p(sum_24h)),
    }


def _feedback_features(rows: _Rows, codes: _Codes) -> dict:
    """Confirmed-fraud counts for the user and the wallet, only labels known before the transaction."""
    t = rows.target_time_ms
    start_30d = rows.span.lookback_start_ms
    start_7d = start_30d + (LOOKBACK_MS - LABEL_SHORT_WINDOW_MS)
    labels = codes.fraud_labels.filter(
        pl.col("labeled_ms").is_between(rows.time_origin, int(t.max()))
    )

    def counts(events: pl.DataFrame, code_column: str, target_codes: np.ndarray) -> tuple:
        label_codes = events.get_column(code_column).to_numpy()
        labeled_ms = events.get_column("labeled_ms").to_numpy()
        count_7d, count_30d = np.zeros(target_codes.shape[0]), np.zeros(target_codes.shape[0])
        # Only targets of a labelled user (wallet) can count one: search for those alone.
        which = np.flatnonzero(np.isin(target_codes, label_codes))
        keys = np.sort(label_codes * rows.stride + (labeled_ms - rows.time_origin))
        base = target_codes[which] * rows.stride - rows.time_origin
        before = np.searchsorted(keys, base + t[which], side="left")  # labeled_at < t
        since_7d = np.searchsorted(keys, base + start_7d[which], side="left")
        since_30d = np.searchsorted(keys, base + start_30d[which], side="left")
        count_7d[which] = before - since_7d
        count_30d[which] = before - since_30d
        return count_7d, count_30d

    n = rows.n_targets
    user_7d, user_30d = counts(labels, "user_code", codes.user[:n])
    wallet_7d, wallet_30d = counts(
        labels.filter(pl.col("has_wallet")), "wallet_code", codes.wallet[:n]
    )
    has_wallet = codes.has_wallet[:n]
    return {
        "user_fraud_labels_7d": user_7d,
        "user_fraud_labels_30d": user_30d,
        "wallet_fraud_labels_7d": np.where(has_wallet, wallet_7d, 0.0),
        "wallet_fraud_labels_30d": np.where(has_wallet, wallet_30d, 0.0),
    }


def _novelty_features(rows: _Rows, codes: _Codes) -> dict:
    """What is new to the user *today*: used in the last 24 h but never before in the look-back.

    ``is_new_*`` features see only the first transaction of an attack (the
    second one already finds the attacker's device in the history); these stay
    1 for every transaction of an incident while the user's own, older habits
    stay 0. History counts are "before t − 24 h": the look-back count minus the
    count of the last 24 h (summary rows are older than any 24-hour window).
    """
    n = rows.n_targets

    def before_last_day(key: str) -> np.ndarray:
        timeline = rows.timelines[key]
        prefix = rows.prefix(key, "agg_rows")
        whole = rows.window(key, "30d", inclusive_start=True, include_self=False)
        last_day = rows.window(key, "24h", inclusive_start=False, include_self=False)
        older = timeline.window_sum(prefix, whole) - timeline.window_sum(prefix, last_day)
        return timeline.to_targets(older).astype(np.float64)

    has_wallet = codes.has_wallet[:n]
    user_older = before_last_day("user")
    low, high = NEAR_LIMIT_RANGE_USD
    amount = rows.column("amount")
    is_withdrawal = rows.frame.select(pl.col("transaction_type") == "withdraw").to_series()
    near_limit = (
        is_withdrawal.to_numpy() & (amount >= low) & (amount < high) & ~rows.is_summary
    ).astype(np.int64)
    user = rows.timelines["user"]
    w24h = rows.window("user", "24h", inclusive_start=False, include_self=True)
    near_limit_24h = user.to_targets(user.window_sum(user.prefix(near_limit), w24h))
    return {
        "log_user_tx_count_before_24h": np.log1p(user_older),
        "is_recent_device_for_user": (before_last_day("user×device") == 0).astype(np.float64),
        "is_recent_country_for_user": (before_last_day("user×country") == 0).astype(np.float64),
        "is_recent_wallet_for_user": np.where(
            has_wallet,
            before_last_day("user×wallet") == 0,
            False,
        ).astype(np.float64),
        "near_limit_withdrawals_24h": near_limit_24h.astype(np.float64),
    }


# ---------------------------------------------------------------- output


def _assemble(targets: pl.DataFrame, features: dict[str, np.ndarray]) -> pl.DataFrame:
    missing = [name for name in FEATURE_COLUMNS if name not in features]
    if missing:
        raise RuntimeError(f"features not computed: {missing}")
    columns = {name: targets.get_column(name) for name in KEY_COLUMNS}
    for name in FEATURE_COLUMNS:
        dtype = np.float64 if name in FLOAT64_FEATURES else np.float32
        # Finite inputs can still overflow (a ratio to a tiny profile average): saturate at
        # the type's largest value instead of passing ±inf on to the scaler and the models.
        limit = np.finfo(dtype).max
        values = np.empty(features[name].shape, dtype=dtype)
        np.clip(features[name], -limit, limit, out=values, casting="same_kind")  # one pass
        columns[name] = pl.Series(name, values)
    return pl.DataFrame(columns)


def output_schema() -> dict[str, pl.DataType]:
    schema: dict[str, pl.DataType] = {
        "transaction_id": pl.String(),
        "timestamp": pl.Datetime("us", "UTC"),
        "user_id": pl.String(),
    }
    for name in FEATURE_COLUMNS:
        schema[name] = pl.Float64() if name in FLOAT64_FEATURES else pl.Float32()
    return schema


def _empty_output() -> pl.DataFrame:
    return pl.DataFrame(schema=output_schema())
