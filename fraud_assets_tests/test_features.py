"""The feature pipeline on hand-built histories with exact expected values, the
partition-edge property, the label-leakage guard, the scaler and the ClickHouse
loader against the embedded engine."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from fraud_assets.features import (
    FEATURE_CATALOG,
    FEATURE_COLUMNS,
    FeatureScaler,
    catalog_markdown,
    extract_features,
    load_feature_inputs,
)
from fraud_assets.features.catalog import GEO_VELOCITY_CAP_KMH, NO_PREVIOUS_TX_MINUTES
from fraud_assets.reference import COUNTRY_LOCATIONS, CURRENCIES, DEVICE_TYPES, TRANSACTION_TYPES

T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)  # a Monday
EMPTY = pl.DataFrame()


def tx(
    transaction_id: str,
    at: timedelta | datetime,
    *,
    user: str = "u1",
    amount: float = 100.0,
    country: str = "US",
    device: str = "mobile_ios",
    wallet: str = "w1",
    kind: str = "buy",
) -> dict:
    return {
        "transaction_id": transaction_id,
        "timestamp": at if isinstance(at, datetime) else T0 + at,
        "user_id": user,
        "amount": amount,
        "currency": "BTC",
        "transaction_type": kind,
        "user_avg_amount": 100.0,
        "user_total_transactions": 10,
        "user_account_age_days": 365,
        "wallet_address": wallet,
        "wallet_age_days": 30,
        "wallet_total_volume": 5000.0,
        "ip_country": country,
        "device_type": device,
    }


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows).with_columns(pl.col("timestamp").dt.cast_time_unit("us"))


def label(transaction_id: str, labeled_at: datetime, *, user="u1", wallet="w1", is_fraud=1):
    return {
        "transaction_id": transaction_id,
        "is_fraud": is_fraud,
        "fraud_type": "account_takeover",
        "labeled_at": labeled_at,
        "source": "analyst",
        "user_id": user,
        "wallet_address": wallet,
    }


def features_of(rows: list[dict], history: list[dict] | None = None, labels=None) -> dict:
    """Features keyed by transaction id, as plain Python values."""
    out = extract_features(
        frame(rows),
        frame(history) if history else EMPTY,
        pl.DataFrame(labels) if labels else EMPTY,
    )
    return {row["transaction_id"]: row for row in out.iter_rows(named=True)}


def random_transactions(
    n: int, n_users: int, start: datetime, span: timedelta, seed: int = 0
) -> pl.DataFrame:
    """Plausible transactions: users mostly keep their country, device and a few wallets."""
    rng = np.random.default_rng(seed)
    countries = np.array(list(COUNTRY_LOCATIONS))
    devices = np.array(DEVICE_TYPES)
    users = rng.integers(0, n_users, n)
    seconds = int(start.timestamp()) + rng.integers(0, int(span.total_seconds()), n)
    roaming = rng.random(n) < 0.1
    return pl.DataFrame(
        {
            "transaction_id": [f"t{seed}-{i:08d}" for i in range(n)],
            "timestamp": pl.Series(seconds * 1_000_000).cast(pl.Datetime("us", "UTC")),
            "user_id": [f"user{u:06d}" for u in users],
            "amount": np.round(rng.lognormal(5.0, 1.5, n), 2),
            "currency": np.array(CURRENCIES)[rng.integers(0, len(CURRENCIES), n)],
            "transaction_type": np.array(TRANSACTION_TYPES)[rng.integers(0, 4, n)],
            "user_avg_amount": rng.lognormal(5.0, 1.0, n),
            "user_total_transactions": rng.integers(0, 1000, n).astype(np.int32),
            "user_account_age_days": rng.integers(0, 2000, n).astype(np.int32),
            "wallet_address": [
                f"0x{(u * 3 + k) % (n_users * 2):08x}"
                for u, k in zip(users, rng.integers(0, 3, n), strict=True)
            ],
            "wallet_age_days": rng.integers(0, 500, n).astype(np.int32),
            "wallet_total_volume": rng.lognormal(8.0, 2.0, n),
            "ip_country": np.where(
                roaming, countries[rng.integers(0, len(countries), n)], countries[users % 30]
            ),
            "device_type": np.where(roaming, devices[rng.integers(0, 4, n)], devices[users % 4]),
        }
    )


def hour_with_history(window_start: datetime, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """32 days of history for 40 users, then an hour of theirs, and 80 fraud labels."""
    data = pl.concat(
        [
            random_transactions(
                3000, 40, window_start - timedelta(days=32), timedelta(days=32), seed
            ),
            random_transactions(300, 40, window_start, timedelta(hours=1), seed=seed + 1),
        ]
    )
    labels = data.sample(80, seed=6).select(
        "transaction_id",
        "user_id",
        "wallet_address",
        is_fraud=pl.lit(1, pl.UInt8),
        fraud_type=pl.lit("amount_spike"),
        labeled_at=pl.col("timestamp") + pl.duration(hours=2),
        source=pl.lit("analyst"),
    )
    return data, labels


# ----------------------------------------------------------------- catalog


def test_feature_columns_are_documented_unique_and_at_least_fifty():
    assert len(FEATURE_COLUMNS) >= 50
    assert len(set(FEATURE_COLUMNS)) == len(FEATURE_COLUMNS)
    assert set(FEATURE_COLUMNS) == set(FEATURE_CATALOG)
    assert all(FEATURE_CATALOG[name].strip() for name in FEATURE_COLUMNS)
    required_by_rules = {
        "amount",
        "amount_to_user_avg",
        "tx_count_5m",
        "tx_count_1h",
        "tx_count_24h",
        "wallet_age_days",
        "is_new_wallet_for_user",
        "country_changed",
        "is_new_country_for_user",
        "is_new_device_for_user",
        "geo_velocity_kmh",
        "minutes_since_last_tx",
    }
    assert required_by_rules <= set(FEATURE_COLUMNS)
    table = catalog_markdown()
    assert table.count("\n") == len(FEATURE_COLUMNS) + 2
    assert "`geo_velocity_kmh`" in table


# ----------------------------------------------------------------- hand-built histories


def test_velocity_counts_at_the_five_minute_boundary():
    rows = [
        tx("a", timedelta(0)),
        tx("b", timedelta(minutes=1)),
        tx("c", timedelta(minutes=5)),  # exactly 5 min after a: a is out of (t − 5 min, t]
        tx("d", timedelta(minutes=5, seconds=1)),
        tx("e", timedelta(minutes=59, seconds=59)),
        tx("f", timedelta(hours=1)),  # exactly 1 h after a: a is out of the hour
        tx("other", timedelta(minutes=2), user="u2"),
    ]
    f = features_of(rows)
    assert [f[t]["tx_count_5m"] for t in "abcdef"] == [1, 2, 2, 3, 1, 2]
    assert [f[t]["tx_count_1h"] for t in "abcdef"] == [1, 2, 3, 4, 5, 5]
    assert [f[t]["tx_count_24h"] for t in "abcdef"] == [1, 2, 3, 4, 5, 6]
    assert f["other"]["tx_count_5m"] == 1


def test_velocity_counts_history_before_the_window():
    history = [tx("h1", timedelta(minutes=-3)), tx("h2", timedelta(hours=-23))]
    f = features_of([tx("a", timedelta(0))], history)
    assert f["a"]["tx_count_5m"] == 2
    assert f["a"]["tx_count_1h"] == 2
    assert f["a"]["tx_count_24h"] == 3
    assert f["a"]["user_tx_count_30d"] == 2


def test_minutes_since_last_transaction():
    rows = [
        tx("a", timedelta(0)),
        tx("b", timedelta(minutes=1)),
        tx("c", timedelta(minutes=5)),
        tx("d", timedelta(minutes=5, seconds=1)),
    ]
    f = features_of(rows, [tx("old", timedelta(days=-31))])
    assert f["a"]["minutes_since_last_tx"] == NO_PREVIOUS_TX_MINUTES  # older than the look-back
    assert f["b"]["minutes_since_last_tx"] == 1.0
    assert f["c"]["minutes_since_last_tx"] == 4.0
    assert f["d"]["minutes_since_last_tx"] == pytest.approx(1 / 60)
    assert f["b"]["log_minutes_since_last_tx"] == pytest.approx(math.log(2.0))


def test_previous_transaction_among_summarised_history():
    history = [
        tx("h1", timedelta(days=-10), country="DE", amount=200.0),
        tx("h2", timedelta(days=-7), country="DE", amount=200.0, kind="withdraw"),
        tx("h3", timedelta(days=-5), country="US", amount=800.0),
    ]
    f = features_of([tx("a", timedelta(0), country="GB", amount=1200.0)], history)
    assert f["a"]["minutes_since_last_tx"] == 5 * 24 * 60
    assert f["a"]["country_changed"] == 1  # US → GB
    assert f["a"]["is_new_country_for_user"] == 1
    assert f["a"]["user_tx_count_30d"] == 3
    assert f["a"]["amount_to_user_avg"] == pytest.approx(3.0)
    assert f["a"]["user_same_type_share_30d"] == pytest.approx(2 / 3)
    assert f["a"]["tx_count_24h"] == 1
    de = features_of([tx("b", timedelta(0), country="DE")], history)
    assert de["b"]["is_new_country_for_user"] == 0


def test_previous_transaction_at_the_very_start_of_the_look_back():
    lookback_start = T0 - timedelta(days=30)
    history = [
        tx("h1", lookback_start, country="US"),  # summarised
        tx("h2", lookback_start, country="DE"),  # same second, later id: the previous one
    ]
    f = features_of([tx("a", timedelta(minutes=59), country="US")], history)
    assert f["a"]["country_changed"] == 1
    assert f["a"]["user_tx_count_30d"] == 2


def test_country_change_and_new_country():
    countries = ["US", "US", "DE", "DE", "US"]
    rows = [tx(f"t{i}", timedelta(hours=i), country=c) for i, c in enumerate(countries)]
    f = features_of(rows)
    assert [f[f"t{i}"]["country_changed"] for i in range(5)] == [0, 0, 1, 0, 1]
    assert [f[f"t{i}"]["is_new_country_for_user"] for i in range(5)] == [1, 0, 1, 0, 0]
    # changes inside the 24 h ending at each transaction: US→DE and DE→US
    assert f["t4"]["country_changes_24h"] == 2
    assert f["t0"]["user_has_history"] == 0
    assert f["t1"]["user_has_history"] == 1


def _great_circle_km(a: str, b: str) -> float:
    (lat1, lon1), (lat2, lon2) = COUNTRY_LOCATIONS[a], COUNTRY_LOCATIONS[b]
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def test_geo_velocity_between_two_known_cities():
    rows = [
        tx("ny", timedelta(0), country="US"),
        tx("london", timedelta(hours=2), country="GB"),
        tx("london2", timedelta(hours=3), country="GB"),
        tx("tokyo", timedelta(hours=3, minutes=1), country="JP"),
    ]
    f = features_of(rows)
    ny_london = _great_circle_km("US", "GB")
    assert 5_500 < ny_london < 5_650  # New York → London is about 5,570 km
    assert f["london"]["geo_distance_km"] == pytest.approx(ny_london, rel=1e-6)
    assert f["london"]["geo_velocity_kmh"] == pytest.approx(ny_london / 2, rel=1e-6)
    assert f["ny"]["geo_velocity_kmh"] == 0
    assert f["london2"]["geo_velocity_kmh"] == 0  # same country
    assert f["tokyo"]["geo_velocity_kmh"] == GEO_VELOCITY_CAP_KMH  # 9,500 km in a minute


def test_new_device_and_device_change():
    devices = ["mobile_ios", "mobile_ios", "api", "mobile_ios"]
    rows = [tx(f"t{i}", timedelta(minutes=10 * i), device=d) for i, d in enumerate(devices)]
    f = features_of(rows)
    assert [f[f"t{i}"]["is_new_device_for_user"] for i in range(4)] == [1, 0, 1, 0]
    assert [f[f"t{i}"]["device_changed"] for i in range(4)] == [0, 0, 1, 1]
    assert f["t0"]["device_mobile_ios"] == 1 and f["t2"]["device_api"] == 1


def test_amount_against_the_users_own_history():
    history = [
        tx("h1", timedelta(days=-2), amount=100.0),
        tx("h2", timedelta(days=-1), amount=300.0),
        tx("ancient", timedelta(days=-40), amount=1_000_000.0),  # outside the look-back
    ]
    f = features_of([tx("a", timedelta(0), amount=1000.0)], history)
    assert f["a"]["amount"] == 1000.0
    assert f["a"]["amount_to_user_avg"] == pytest.approx(5.0)
    assert f["a"]["user_tx_count_30d"] == 2
    first = features_of([tx("first", timedelta(0), amount=1000.0, user="new")])
    assert first["first"]["amount_to_user_avg"] == 1.0
    assert first["first"]["amount_log_zscore_user"] == 0.0


def test_wallet_features_across_users():
    history = [
        tx("h1", timedelta(hours=-2), user="u2", wallet="shared"),
        tx("h2", timedelta(hours=-1), user="u1", wallet="mine"),
    ]
    rows = [
        tx("a", timedelta(0), user="u1", wallet="shared"),
        tx("b", timedelta(minutes=1), user="u1", wallet="mine"),
        tx("c", timedelta(minutes=2), user="u3", wallet=""),
    ]
    f = features_of(rows, history)
    assert f["a"]["is_new_wallet_for_user"] == 1
    assert f["a"]["wallet_tx_count_30d"] == 1
    assert f["a"]["wallet_other_users_tx_30d"] == 1
    assert f["a"]["wallet_tx_count_24h"] == 2
    assert f["b"]["is_new_wallet_for_user"] == 0
    assert f["b"]["wallet_other_users_tx_30d"] == 0
    assert f["c"]["is_new_wallet_for_user"] == 0  # no wallet, nothing to be new
    assert f["c"]["wallet_tx_count_24h"] == 0


def test_labels_are_used_only_once_known():
    at = T0 + timedelta(hours=1)
    history = [
        tx("fraud1", timedelta(days=-3), wallet="bad"),
        tx("fraud2", timedelta(days=-2), wallet="bad"),
        tx("fraud3", timedelta(days=-10), wallet="bad"),
        tx("fine", timedelta(days=-1), wallet="bad"),
    ]
    labels = [
        label("fraud1", at - timedelta(seconds=1), wallet="bad"),  # known: counted
        label("fraud2", at + timedelta(seconds=1), wallet="bad"),  # known a second later
        label("fraud3", at - timedelta(days=8), wallet="bad"),  # outside 7 d, inside 30 d
        label("fine", at - timedelta(hours=5), wallet="bad", is_fraud=0),
    ]
    rows = [
        tx("now", at, wallet="w9"),
        tx("victim", at, user="u7", wallet="bad"),
        tx("exact", at - timedelta(seconds=1), user="u8", wallet="bad"),
    ]
    f = features_of(rows, history, labels)
    assert f["now"]["user_fraud_labels_7d"] == 1
    assert f["now"]["user_fraud_labels_30d"] == 2
    assert f["now"]["wallet_fraud_labels_30d"] == 0  # w9 is clean
    assert f["victim"]["wallet_fraud_labels_7d"] == 1
    assert f["victim"]["wallet_fraud_labels_30d"] == 2
    assert f["victim"]["user_fraud_labels_30d"] == 0
    # a label made at the very second of the transaction is not yet known
    assert f["exact"]["wallet_fraud_labels_7d"] == 0


def test_relabelled_transaction_counts_from_its_latest_label():
    history = [tx("x", timedelta(days=-3))]
    labels = [
        label("x", T0 - timedelta(days=2), is_fraud=0),
        label("x", T0 - timedelta(days=1), is_fraud=1),
    ]
    f = features_of([tx("a", timedelta(0)), tx("b", timedelta(days=-1, hours=-1))], history, labels)
    assert f["a"]["user_fraud_labels_7d"] == 1
    assert f["b"]["user_fraud_labels_7d"] == 0


def test_same_second_transactions_are_ordered_by_transaction_id():
    rows = [
        tx("b", timedelta(seconds=30), country="DE"),
        tx("a", timedelta(seconds=30), country="US"),
        tx("c", timedelta(0), country="US"),
    ]
    for ordering in (rows, rows[::-1]):
        f = features_of(ordering)
        assert [f[t]["tx_count_5m"] for t in "cab"] == [1, 2, 3]
        assert f["a"]["minutes_since_last_tx"] == 0.5
        assert f["b"]["minutes_since_last_tx"] == 0.0
        assert f["b"]["country_changed"] == 1 and f["a"]["country_changed"] == 0


# ----------------------------------------------------------------- whole-frame properties


def test_output_is_one_row_per_input_in_order_without_nulls_or_infinities():
    data = random_transactions(3000, 80, T0 - timedelta(days=3), timedelta(days=4), seed=3)
    shuffled = data.sample(fraction=1.0, shuffle=True, seed=1)
    labels = data.sample(50, seed=2).select(
        "transaction_id",
        "user_id",
        "wallet_address",
        is_fraud=pl.lit(1, pl.UInt8),
        labeled_at=pl.col("timestamp") + pl.duration(hours=6),
    )
    out = extract_features(shuffled, EMPTY, labels)
    assert out.height == shuffled.height
    assert out.get_column("transaction_id").to_list() == shuffled["transaction_id"].to_list()
    assert out.columns == ["transaction_id", "timestamp", "user_id", *FEATURE_COLUMNS]
    assert out.schema["timestamp"] == pl.Datetime("us", "UTC")
    matrix = out.select(FEATURE_COLUMNS).to_numpy()
    assert out.select(FEATURE_COLUMNS).null_count().sum_horizontal().item() == 0
    assert np.isfinite(matrix).all()
    assert all(out.schema[c] in (pl.Float32, pl.Float64) for c in FEATURE_COLUMNS)


def test_partition_edge_identity_hour_versus_thirty_day_window():
    """A transaction's features do not depend on the window it is computed in."""
    window_start = datetime(2025, 3, 1, tzinfo=UTC)
    data = random_transactions(
        30_000, 400, window_start - timedelta(days=31), timedelta(days=34), seed=7
    )
    labels = data.sample(300, seed=5).select(
        "transaction_id",
        "user_id",
        "wallet_address",
        is_fraud=pl.lit(1, pl.UInt8),
        labeled_at=pl.col("timestamp") + pl.duration(hours=3),
    )
    in_window = pl.col("timestamp") >= window_start
    monthly = extract_features(data.filter(in_window), data.filter(~in_window), labels)

    for hour_start in (window_start, window_start + timedelta(days=2, hours=7)):
        hour_end = hour_start + timedelta(hours=1)
        hour = data.filter(pl.col("timestamp").is_between(hour_start, hour_end, closed="left"))
        before = data.filter(pl.col("timestamp") < hour_start)
        hourly = extract_features(hour, before, labels)
        expected = monthly.filter(
            pl.col("timestamp").is_between(hour_start, hour_end, closed="left")
        )
        assert hourly.height == expected.height > 20
        assert hourly.sort("transaction_id").equals(expected.sort("transaction_id"))

        # history overlapping the window (or holding it all) changes nothing
        overlapping = extract_features(hour, data, labels)
        assert overlapping.sort("transaction_id").equals(expected.sort("transaction_id"))


def _reference_features(
    data: pl.DataFrame, labels: pl.DataFrame, since: datetime
) -> dict[str, dict]:
    """A few features straight from their catalog definitions, one row at a time."""
    rows = sorted(data.iter_rows(named=True), key=lambda r: (r["timestamp"], r["transaction_id"]))
    fraud = [r for r in labels.iter_rows(named=True) if r["is_fraud"] == 1]
    out = {}
    for i, row in enumerate(rows):
        t = row["timestamp"]
        if t < since:
            continue
        start = t.replace(minute=0, second=0, microsecond=0) - timedelta(days=30)
        earlier = [r for r in rows[:i] if r["timestamp"] >= start]
        mine = [r for r in earlier if r["user_id"] == row["user_id"]]
        upto = [*[r for r in rows[:i] if r["user_id"] == row["user_id"]], row]
        wallet = [r for r in earlier if r["wallet_address"] == row["wallet_address"]]
        out[row["transaction_id"]] = {
            "tx_count_5m": sum(r["timestamp"] > t - timedelta(minutes=5) for r in upto),
            "tx_count_1h": sum(r["timestamp"] > t - timedelta(hours=1) for r in upto),
            "tx_count_24h": sum(r["timestamp"] > t - timedelta(hours=24) for r in upto),
            "user_tx_count_30d": len(mine),
            "amount_to_user_avg": (
                row["amount"] / max(sum(r["amount"] for r in mine) / len(mine), 0.01)
                if mine
                else 1.0
            ),
            "minutes_since_last_tx": (
                (t - mine[-1]["timestamp"]).total_seconds() / 60 if mine else NO_PREVIOUS_TX_MINUTES
            ),
            "country_changed": int(bool(mine) and mine[-1]["ip_country"] != row["ip_country"]),
            "is_new_country_for_user": int(all(r["ip_country"] != row["ip_country"] for r in mine)),
            "is_new_device_for_user": int(
                all(r["device_type"] != row["device_type"] for r in mine)
            ),
            "is_new_wallet_for_user": int(
                all(r["wallet_address"] != row["wallet_address"] for r in mine)
            ),
            "wallet_tx_count_30d": len(wallet),
            "wallet_other_users_tx_30d": sum(r["user_id"] != row["user_id"] for r in wallet),
            "user_fraud_labels_30d": sum(
                start <= lab["labeled_at"] < t and lab["user_id"] == row["user_id"] for lab in fraud
            ),
            "wallet_fraud_labels_7d": sum(
                start + timedelta(days=23) <= lab["labeled_at"] < t
                and lab["wallet_address"] == row["wallet_address"]
                for lab in fraud
            ),
        }
    return out


def test_matches_a_row_by_row_reference_including_summarised_history():
    """Old history is summarised internally; the values still follow the definitions."""
    window_start = datetime(2025, 3, 1, tzinfo=UTC)
    data = pl.concat(
        [
            random_transactions(
                1200, 12, window_start - timedelta(days=33), timedelta(days=33), 21
            ),
            random_transactions(250, 12, window_start, timedelta(hours=6), seed=22),
        ]
    ).with_columns(  # same-second pairs and round amounts
        timestamp=pl.col("timestamp").dt.truncate("2m"), amount=pl.col("amount").round(0)
    )
    labels = data.sample(60, seed=4).select(
        "transaction_id",
        "user_id",
        "wallet_address",
        is_fraud=pl.lit(1, pl.UInt8),
        labeled_at=pl.col("timestamp") + pl.duration(hours=5),
    )
    in_window = pl.col("timestamp") >= window_start
    computed = extract_features(data.filter(in_window), data.filter(~in_window), labels)
    reference = _reference_features(data, labels, window_start)
    assert computed.height == 250
    for row in computed.iter_rows(named=True):
        expected = reference[row["transaction_id"]]
        for name, value in expected.items():
            assert row[name] == pytest.approx(value, rel=1e-6), (row["transaction_id"], name)


def test_empty_inputs():
    out = extract_features(frame([tx("a", timedelta(0))]).clear(), EMPTY, EMPTY)
    assert out.height == 0
    assert out.columns == ["transaction_id", "timestamp", "user_id", *FEATURE_COLUMNS]
    alone = extract_features(frame([tx("a", timedelta(0))]), EMPTY, EMPTY)
    assert alone.height == 1


def test_missing_required_column_is_reported():
    with pytest.raises(ValueError, match="ip_country"):
        extract_features(frame([tx("a", timedelta(0))]).drop("ip_country"), EMPTY, EMPTY)


# ----------------------------------------------------------------- scaler


def test_scaler_round_trips_through_plain_files(tmp_path):
    data = random_transactions(2000, 50, T0 - timedelta(days=2), timedelta(days=2), seed=11)
    features = extract_features(data, EMPTY, EMPTY)
    scaler = FeatureScaler().fit(features)
    scaled = scaler.transform(features)
    assert scaled.shape == (features.height, len(FEATURE_COLUMNS))
    assert scaled.dtype == np.float32
    assert np.abs(scaled).max() <= scaler.clip
    assert np.abs(np.median(scaled, axis=0)).max() < 1.0

    scaler.save(tmp_path / "scaler")
    assert sorted(p.suffix for p in (tmp_path / "scaler").iterdir()) == [".json"]
    loaded = FeatureScaler.load(tmp_path / "scaler")
    assert loaded.columns == FEATURE_COLUMNS
    np.testing.assert_array_equal(loaded.transform(features), scaled)

    whale = features.head(1).with_columns(amount=pl.lit(1e12))
    assert loaded.transform(whale)[0, FEATURE_COLUMNS.index("amount")] == scaler.clip


# ----------------------------------------------------------------- ClickHouse loader


def test_load_feature_inputs_reads_window_history_and_labels(clickhouse):
    start = T0
    end = T0 + timedelta(hours=1)
    rows = [
        tx("w-u1", timedelta(minutes=10), user="u1", wallet="shared"),
        tx("w-u2", timedelta(minutes=20), user="u2", wallet="w2"),
        tx("h-u1", timedelta(days=-2), user="u1", wallet="w1"),
        tx("h-u1-twin", timedelta(days=-2), user="u1", wallet="w1"),  # same second as h-u1
        tx("h-u1-recent", timedelta(hours=-3), user="u1", wallet="w1"),
        tx("h-u3", timedelta(days=-1, hours=-1), user="u3", wallet="shared"),  # via the wallet
        tx("h-u4", timedelta(days=-1), user="u4", wallet="w4"),  # unrelated
        tx("too-old", timedelta(days=-31), user="u1"),
        tx("later", timedelta(hours=2), user="u1"),
    ]
    labels = [
        label("h-u1", start - timedelta(hours=1), user="u1", wallet="w1"),
        label("h-u3", end + timedelta(minutes=1), user="u3", wallet="shared"),  # after end
        label("h-u4", start - timedelta(hours=1), user="u4", wallet="w4"),  # unrelated
    ]
    table = frame(rows)
    with clickhouse.get_client() as client:
        client.insert_arrow("crypto_transactions", table.to_arrow())
        client.insert_arrow("transaction_labels", pl.DataFrame(labels).to_arrow())
        inputs = load_feature_inputs(client, start, end)

    assert sorted(inputs.transactions["transaction_id"]) == ["w-u1", "w-u2"]
    # History older than a day is summarised per key; each user's latest transaction in it
    # stays a row as a stand-in (its time and keys, blank id, amount and type), whose count
    # is taken out of its key's summary: u1's two same-second rows leave one counted there.
    summaries = inputs.history.filter(pl.col("agg_rows").is_not_null())
    stand_ins = inputs.history.filter(
        pl.col("agg_rows").is_null() & (pl.col("transaction_id") == "")
    )
    assert sorted(inputs.history["transaction_id"]) == ["", "", "", "", "h-u1-recent"]
    assert sorted(stand_ins.select("user_id", "wallet_address", "amount").rows()) == [
        ("u1", "w1", 0.0),
        ("u3", "shared", 0.0),
    ]
    assert sorted(summaries.select("user_id", "wallet_address", "agg_rows").rows()) == [
        ("u1", "w1", 1),
        ("u3", "shared", 0),
    ]
    assert inputs.labels["transaction_id"].to_list() == ["h-u1"]
    assert inputs.transactions.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert inputs.transactions.schema["ip_country"] == pl.String

    f = {r["transaction_id"]: r for r in extract_features(*inputs).iter_rows(named=True)}
    assert f["w-u1"]["user_fraud_labels_7d"] == 1
    assert f["w-u1"]["user_tx_count_30d"] == 3
    assert f["w-u1"]["minutes_since_last_tx"] == 3 * 60 + 10
    assert f["w-u1"]["wallet_other_users_tx_30d"] == 1
    assert f["w-u1"]["is_new_wallet_for_user"] == 1
    assert f["w-u2"]["user_has_history"] == 0


def test_loaded_inputs_give_the_same_features_as_raw_history(clickhouse):
    """Summaries computed in ClickHouse are exact: same features as from every raw row."""
    window_start = datetime(2025, 3, 1, 5, tzinfo=UTC)
    data, labels = hour_with_history(window_start, seed=31)
    with clickhouse.get_client() as client:
        client.insert_arrow("crypto_transactions", data.to_arrow())
        client.insert_arrow("transaction_labels", labels.to_arrow())
        inputs = load_feature_inputs(client, window_start, window_start + timedelta(hours=1))
    assert inputs.history.get_column("agg_rows").is_not_null().sum() > 0

    from_database = extract_features(*inputs)
    hour = data.filter(pl.col("timestamp") >= window_start)
    from_rows = extract_features(hour, data.filter(pl.col("timestamp") < window_start), labels)
    assert from_database.height == 300
    assert from_database.sort("transaction_id").equals(from_rows.sort("transaction_id"))


def test_generated_exchange_hours_match_their_day_and_show_the_fraud(clickhouse):
    """On the simulator's data: hourly loads give the window's values, and fraud stands out."""
    from fraud_assets.generator import GeneratorConfig, generate_into_clickhouse

    start = datetime(2026, 3, 1, tzinfo=UTC)
    end = start + timedelta(days=34)
    config = GeneratorConfig(start=start, end=end, users=200, seed=5, fraud_rate=0.08)
    generate_into_clickhouse(clickhouse, config)
    window_start = end - timedelta(days=3)
    with clickhouse.get_client() as client:
        window = extract_features(*load_feature_inputs(client, window_start, end))
        hourly = [
            extract_features(*load_feature_inputs(client, hour, hour + timedelta(hours=1)))
            for hour in (window_start, window_start + timedelta(days=1, hours=15))
        ]
        fraud = pl.from_arrow(
            client.query_arrow(
                "SELECT transaction_id, fraud_type FROM transaction_labels FINAL "
                "WHERE is_fraud = 1",
                use_strings=True,
            )
        )
    for features in hourly:
        assert features.height > 0
        expected = window.join(features.select("transaction_id"), on="transaction_id")
        assert features.sort("transaction_id").equals(expected.sort("transaction_id"))

    by_type = (
        window.join(fraud, on="transaction_id")
        .group_by("fraud_type")
        .agg(
            pl.col("geo_velocity_kmh").max(),
            pl.col("tx_count_5m").max(),
            pl.col("amount_just_below_10k").mean(),
        )
    )
    found = {row["fraud_type"]: row for row in by_type.iter_rows(named=True)}
    assert found["impossible_travel"]["geo_velocity_kmh"] > 1_500
    assert found["velocity_burst"]["tx_count_5m"] >= 5
    assert found["structuring"]["amount_just_below_10k"] > 0.5


def test_features_do_not_depend_on_the_thread_count(monkeypatch):
    """Timelines and feature groups run on a thread pool; one thread gives the same frame."""
    from fraud_assets.features import pipeline

    window_start = datetime(2025, 3, 1, 5, tzinfo=UTC)
    data, labels = hour_with_history(window_start, seed=53)
    hour = data.filter(pl.col("timestamp") >= window_start)
    history = data.filter(pl.col("timestamp") < window_start)
    monkeypatch.setattr(pipeline, "THREADS", 4)
    threaded = extract_features(hour, history, labels)
    monkeypatch.setattr(pipeline, "THREADS", 1)
    assert threaded.height == 300
    assert threaded.equals(extract_features(hour, history, labels))


def test_each_users_latest_row_is_found_by_time_then_greatest_id():
    """Single-row users skip the comparison; ties on a user's latest time go to the greater id."""
    from fraud_assets.features.compaction import latest_per_user

    rows = pl.DataFrame(
        {
            "user_id": ["solo", "u1", "u1", "u1", "u2", "u2", "other"],
            "transaction_id": ["s", "a", "c", "b", "x", "y", "o"],
            "timestamp": [
                T0,
                T0,
                T0 + timedelta(seconds=5),
                T0 + timedelta(seconds=5),
                T0,
                T0 - timedelta(days=1),
                T0,
            ],
        }  # fmt: skip
    )
    assert latest_per_user(rows).to_list() == [True, False, True, False, True, False, True]
    singles = rows.filter(pl.col("user_id").is_in(["solo", "other"]))
    assert latest_per_user(singles).to_list() == [True, True]


@pytest.mark.parametrize("largest_key", [7, 2**62])
def test_timeline_group_order_is_stable_packed_or_not(largest_key):
    """Keys small enough to pack with their position and keys too large give the same order."""
    from fraud_assets.features.timeline import _stable_order

    keys = np.random.default_rng(3).integers(0, 8, 5_000) * (largest_key // 7)
    assert np.array_equal(_stable_order(keys), np.argsort(keys, kind="stable"))
    assert _stable_order(np.zeros(0, dtype=np.int64)).shape == (0,)
