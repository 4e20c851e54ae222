"""The transaction generator: determinism, history-true behaviour columns, fraud patterns, labels.

Every behaviour column is recomputed here with a plain loop over the generated
history and must match exactly; every fraud scenario must show the pattern
that defines it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

import polars as pl
import pytest

from fraud_assets.generator import (
    DORMANT_AFTER_DAYS,
    REPORTING_LIMIT_USD,
    TRANSACTION_COLUMNS,
    GeneratedData,
    GeneratorConfig,
    build_profiles,
    generate,
)
from fraud_assets.generator.geography import COUNTRIES, DISTANCE_KM
from fraud_assets.generator.scenarios import MEAN_SIZE
from fraud_assets.reference import DEVICE_TYPES, FRAUD_SCENARIOS

START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
END = START + dt.timedelta(days=3)
USERS = 400
SEED = 11
# Equal incident counts per scenario (weights ∝ transactions per incident) and a
# high rate, so that a small population shows every scenario.
EVEN_MIX = {s: MEAN_SIZE[i] for i, s in enumerate(FRAUD_SCENARIOS)}


def small_config(**overrides) -> GeneratorConfig:
    values = {
        "start": START,
        "end": END,
        "users": USERS,
        "seed": SEED,
        "fraud_rate": 0.12,
        "fraud_mix": EVEN_MIX,
    }
    return GeneratorConfig(**(values | overrides))


@pytest.fixture(scope="module")
def data() -> GeneratedData:
    return generate(small_config())


@pytest.fixture(scope="module")
def rows(data: GeneratedData) -> pl.DataFrame:
    """Transactions with epoch seconds and their fraud incident (if any)."""
    return data.transactions.with_columns(ts=pl.col("timestamp").dt.epoch("s")).join(
        data.incidents, on="transaction_id", how="left"
    )


def test_same_seed_gives_identical_frames(data: GeneratedData) -> None:
    again = generate(small_config())
    assert again.transactions.equals(data.transactions)
    assert again.labels.equals(data.labels)
    assert again.incidents.equals(data.incidents)


def test_different_seed_gives_different_data(data: GeneratedData) -> None:
    other = generate(small_config(seed=SEED + 1))
    assert not other.transactions.equals(data.transactions)
    shared = set(other.transactions["transaction_id"]) & set(data.transactions["transaction_id"])
    assert not shared


def test_frame_has_the_table_columns_and_types(data: GeneratedData) -> None:
    frame = data.transactions
    assert tuple(frame.columns) == TRANSACTION_COLUMNS
    assert frame.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert frame["transaction_id"].n_unique() == frame.height
    assert frame.null_count().sum_horizontal().item() == 0
    stamps = frame["timestamp"]
    assert stamps.min() >= START and stamps.max() < END
    assert set(frame["transaction_type"]) == {"buy", "sell", "withdraw", "deposit"}
    assert set(frame["device_type"]) <= set(DEVICE_TYPES)
    assert set(frame["ip_country"]) <= set(COUNTRIES)
    assert frame["amount"].min() >= 1.0


def _recompute(rows: pl.DataFrame, seed: int, users: int) -> pl.DataFrame:
    """Every behaviour column, from the rows alone (and the accounts' opening dates)."""
    profiles = build_profiles(seed, users)
    signup = {f"user_{i:07d}": int(s) for i, s in enumerate(profiles.signup_s)}
    expected: dict[str, dict] = {}
    by_user: dict[str, list] = defaultdict(list)
    for row in rows.sort("user_id", "ts", "transaction_id").iter_rows(named=True):
        previous = by_user[row["user_id"]]
        t, cents = row["ts"], round(row["amount"] * 100)
        opened = signup[row["user_id"]]
        total = len(previous)
        expected[row["transaction_id"]] = {
            "user_total_transactions": total,
            "user_avg_amount": round(sum(c for _, c in previous) / total) / 100 if total else 0.0,
            "user_account_age_days": (t - opened) // 86_400,
            "time_since_last_transaction": (t - (previous[-1][0] if previous else opened)) / 60,
            "transactions_last_hour": sum(1 for p, _ in previous if t - p < 3_600),
            "transactions_last_24h": sum(1 for p, _ in previous if t - p < 86_400),
            "hour_of_day": (t % 86_400) // 3_600,
            "day_of_week": dt.datetime.fromtimestamp(t, dt.UTC).isoweekday(),
        }
        previous.append((t, cents))
    first_seen: dict[str, int] = {}
    volume: dict[str, int] = defaultdict(int)
    for row in rows.sort("ts", "transaction_id").iter_rows(named=True):
        wallet, t = row["wallet_address"], row["ts"]
        first_seen.setdefault(wallet, t)
        expected[row["transaction_id"]] |= {
            "wallet_age_days": (t - first_seen[wallet]) // 86_400,
            "wallet_total_volume": volume[wallet] / 100,
        }
        volume[wallet] += round(row["amount"] * 100)
    return pl.DataFrame([{"transaction_id": k, **v} for k, v in expected.items()])


BEHAVIOUR_COLUMNS = (
    "user_total_transactions",
    "user_avg_amount",
    "user_account_age_days",
    "time_since_last_transaction",
    "transactions_last_hour",
    "transactions_last_24h",
    "wallet_age_days",
    "wallet_total_volume",
    "hour_of_day",
    "day_of_week",
)


@pytest.mark.parametrize("column", BEHAVIOUR_COLUMNS)
def test_behaviour_column_matches_the_history(rows: pl.DataFrame, column: str) -> None:
    expected = _recompute(rows, SEED, USERS)
    both = rows.select("transaction_id", column).join(
        expected.select("transaction_id", pl.col(column).alias("expected")), on="transaction_id"
    )
    assert both.height == rows.height
    mismatches = both.filter(pl.col(column).cast(pl.Float64) != pl.col("expected").cast(pl.Float64))
    assert mismatches.is_empty(), mismatches.head()


def test_clickhouse_day_of_week_convention(clickhouse) -> None:
    with clickhouse.get_client() as client:
        monday, sunday = client.query(
            "SELECT toDayOfWeek(toDateTime('2026-03-02 12:00:00', 'UTC')), "
            "toDayOfWeek(toDateTime('2026-03-08 23:59:59', 'UTC'))"
        ).result_rows[0]
    assert (monday, sunday) == (1, 7)
    assert dt.date(2026, 3, 2).isoweekday() == 1


def test_legitimate_population_is_diverse(rows: pl.DataFrame) -> None:
    legit = rows.filter(pl.col("fraud_type").is_null())
    per_user = legit.group_by("user_id").agg(
        median=pl.col("amount").median(),
        devices=pl.col("device_type").n_unique(),
        countries=pl.col("ip_country").n_unique(),
    )
    assert per_user["median"].quantile(0.9) > 5 * per_user["median"].quantile(0.1)
    assert per_user.filter(pl.col("devices") > 1).height > 0
    assert per_user.filter(pl.col("countries") > 1).height > 0
    # Some legitimate bots place 5+ orders within five minutes: velocity alone is not fraud.
    assert legit.filter(pl.col("transactions_last_hour") >= 5).height > 0


def _incidents(rows: pl.DataFrame, scenario: str) -> list[pl.DataFrame]:
    """The scenario's incidents that lie wholly inside the range, each sorted by time."""
    found = []
    for (_,), incident in rows.filter(pl.col("fraud_type") == scenario).group_by(
        "incident", maintain_order=True
    ):
        if incident.height == incident["incident_rows"][0]:
            found.append(incident.sort("ts", "transaction_id"))
    return found


def test_every_scenario_is_present(data: GeneratedData) -> None:
    counts = data.incident_counts()
    assert all(counts[s] > 0 for s in FRAUD_SCENARIOS), counts


def test_account_takeover_new_device_and_country_then_withdrawals_to_a_fresh_wallet(
    rows: pl.DataFrame,
) -> None:
    profiles = build_profiles(SEED, USERS)
    incidents = _incidents(rows, "account_takeover")
    assert incidents
    for incident in incidents:
        user = int(incident["user_id"][0].removeprefix("user_"))
        own_devices = {DEVICE_TYPES[profiles.device[user]]}
        if profiles.second_device[user] >= 0:
            own_devices.add(DEVICE_TYPES[profiles.second_device[user]])
        own_countries = {COUNTRIES[profiles.home[user]], COUNTRIES[profiles.travel[user]]}
        assert not set(incident["device_type"]) & own_devices
        assert not set(incident["ip_country"]) & own_countries
        withdrawals = incident.filter(pl.col("transaction_type") == "withdraw")
        assert withdrawals.height >= 2
        assert withdrawals["wallet_address"].n_unique() == 1
        earlier = rows.filter(
            (pl.col("user_id") == incident["user_id"][0]) & (pl.col("ts") < incident["ts"].min())
        )
        assert withdrawals["wallet_address"][0] not in set(earlier["wallet_address"])
        assert incident["ts"].max() - incident["ts"].min() <= 3600


def test_velocity_burst_five_or_more_within_five_minutes(rows: pl.DataFrame) -> None:
    incidents = _incidents(rows, "velocity_burst")
    assert incidents
    for incident in incidents:
        assert incident.height >= 5
        assert incident["ts"].max() - incident["ts"].min() <= 300


def test_amount_spike_exceeds_ten_times_the_users_average(rows: pl.DataFrame) -> None:
    spikes = rows.filter(pl.col("fraud_type") == "amount_spike")
    assert spikes.height
    assert (spikes["amount"] > 10 * spikes["user_avg_amount"]).all()


def test_impossible_travel_is_faster_than_a_flight(rows: pl.DataFrame) -> None:
    by_user = rows.sort("user_id", "ts", "transaction_id").with_columns(
        previous_country=pl.col("ip_country").shift(1).over("user_id"),
        previous_ts=pl.col("ts").shift(1).over("user_id"),
    )
    # The customer's own transaction just before must be in the range too.
    incidents = [i for i in _incidents(by_user, "impossible_travel") if i["previous_ts"][0]]
    assert incidents
    for incident in incidents:
        first = incident.row(0, named=True)
        origin = COUNTRIES.index(first["previous_country"])
        here = COUNTRIES.index(first["ip_country"])
        hours = (first["ts"] - first["previous_ts"]) / 3600
        assert DISTANCE_KM[origin, here] / hours > 1000


def test_structuring_many_withdrawals_just_below_the_limit(rows: pl.DataFrame) -> None:
    incidents = _incidents(rows, "structuring")
    assert incidents
    for incident in incidents:
        assert incident.height >= 4
        assert (incident["transaction_type"] == "withdraw").all()
        assert incident["amount"].min() >= 0.8 * REPORTING_LIMIT_USD
        assert incident["amount"].max() < REPORTING_LIMIT_USD
        assert incident["ts"].max() - incident["ts"].min() < 86_400


def test_dormant_reactivation_follows_a_long_silence(rows: pl.DataFrame) -> None:
    dormant = rows.filter(pl.col("fraud_type") == "dormant_reactivation")
    firsts = dormant.sort("ts").group_by("incident", maintain_order=True).first()
    assert firsts.height
    assert (firsts["time_since_last_transaction"] >= DORMANT_AFTER_DAYS * 24 * 60).all()
    assert (dormant.group_by("incident").agg((pl.col("transaction_type") == "withdraw").any()))[
        "transaction_type"
    ].all()


def test_wallet_draining_escalates_to_several_new_wallets(rows: pl.DataFrame) -> None:
    incidents = _incidents(rows, "wallet_draining")
    assert incidents
    for incident in incidents:
        assert incident.height >= 4
        assert (incident["transaction_type"] == "withdraw").all()
        earlier = rows.filter(
            (pl.col("user_id") == incident["user_id"][0]) & (pl.col("ts") < incident["ts"].min())
        )
        new_wallets = set(incident["wallet_address"]) - set(earlier["wallet_address"])
        assert len(new_wallets) >= 2
        assert incident["ts"].max() - incident["ts"].min() <= 3 * 3600
        assert incident["amount"].is_sorted()


def test_labels_one_per_fraud_transaction_after_it_happened(data: GeneratedData) -> None:
    labels = data.labels
    assert labels["transaction_id"].n_unique() == labels.height
    fraud = labels.filter(pl.col("is_fraud") == 1)
    assert set(fraud["transaction_id"]) == set(data.incidents["transaction_id"])
    joined = labels.join(data.transactions, on="transaction_id", how="left")
    assert joined["timestamp"].null_count() == 0
    assert (joined["transaction_timestamp"] == joined["timestamp"]).all()
    assert (joined["user_id"] == joined["user_id_right"]).all()
    assert (joined["wallet_address"] == joined["wallet_address_right"]).all()
    delay = (joined["labeled_at"] - joined["timestamp"]).dt.total_seconds()
    assert delay.min() >= 3600
    assert delay.max() <= 15 * 86_400
    types = fraud.join(data.incidents, on="transaction_id")
    assert (types["fraud_type"] == types["fraud_type_right"]).all()
    assert set(labels["source"]) <= {"analyst", "customer_report", "chargeback"}
    reviewed = labels.filter(pl.col("is_fraud") == 0)
    assert reviewed.height > 0
    assert (reviewed["fraud_type"] == "").all()


def test_fraud_rate_and_mix_are_parameters() -> None:
    clean = generate(small_config(fraud_rate=0.0))
    assert clean.incidents.is_empty()
    assert clean.labels.filter(pl.col("is_fraud") == 1).is_empty()
    only = generate(small_config(fraud_mix={"structuring": 1.0}))
    assert set(only.incidents["fraud_type"]) == {"structuring"}
    default = generate(GeneratorConfig(start=START, end=END, users=2000, seed=SEED))
    share = default.incidents.height / default.transactions.height
    assert 0.003 < share < 0.015


def test_legitimate_events_do_not_depend_on_the_fraud_settings(data: GeneratedData) -> None:
    clean = generate(small_config(fraud_rate=0.0))
    legit = set(data.transactions["transaction_id"]) - set(data.incidents["transaction_id"])
    assert legit == set(clean.transactions["transaction_id"])


def test_users_keep_their_profiles_whatever_the_population() -> None:
    small, large = build_profiles(SEED, 50), build_profiles(SEED, 500)
    assert (small.signup_s == large.signup_s[:50]).all()
    assert (small.amount_mu == large.amount_mu[:50]).all()
    assert (small.home == large.home[:50]).all()


def test_a_range_is_the_union_of_its_parts() -> None:
    """Events do not depend on where a range is cut (behaviour columns need the history)."""
    middle = START + dt.timedelta(hours=31, minutes=17)
    first, second = generate(small_config(end=middle)), generate(small_config(start=middle))
    whole = generate(small_config())

    def comparable(data: GeneratedData) -> pl.DataFrame:
        # A spike's amount is relative to the user's recorded average, i.e. to the history.
        spikes = data.incidents.filter(pl.col("fraud_type") == "amount_spike")["transaction_id"]
        return data.transactions.drop(BEHAVIOUR_COLUMNS).with_columns(
            amount=pl.when(pl.col("transaction_id").is_in(spikes.implode()))
            .then(None)
            .otherwise(pl.col("amount"))
        )

    parts = pl.concat([comparable(first), comparable(second)])
    assert parts.sort("timestamp", "transaction_id").equals(comparable(whole))
    assert (
        pl.concat([first.incidents, second.incidents])
        .sort("transaction_id")
        .equals(whole.incidents.sort("transaction_id"))
    )


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="after start"):
        GeneratorConfig(start=END, end=START)
    with pytest.raises(ValueError, match="unknown fraud scenarios"):
        GeneratorConfig(start=START, end=END, fraud_mix={"phishing": 1.0})
    assert math.isclose(sum(GeneratorConfig(start=START, end=END).fraud_mix.values()), 1.0)
