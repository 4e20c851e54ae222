"""The history loader's daily projection (sql/056): used, and never changing a feature.

ClickHouse answers the whole days of the summarised history from the
``user_daily`` projection of ``crypto_transactions``; these tests hold the
loader to the features computed from every raw row, through late rows,
duplicate ids, a regenerated (deleted and re-inserted) range, parts without
the projection, reruns and rows whose amounts scoring would quarantine.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from fraud_assets.features import extract_features, load_feature_inputs
from fraud_assets.features import history as h
from fraud_assets.generator.store import delete_range, insert_frame
from fraud_assets_tests.test_features import hour_with_history, random_transactions

WINDOW = datetime(2025, 3, 1, 5, tzinfo=UTC)
END = WINDOW + timedelta(hours=1)


def _world() -> tuple[pl.DataFrame, pl.DataFrame]:
    return hour_with_history(WINDOW, seed=41)


def _from_raw_rows(data: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    hour = data.filter(pl.col("timestamp") >= WINDOW, pl.col("timestamp") < END)
    return extract_features(hour, data.filter(pl.col("timestamp") < WINDOW), labels).sort(
        "transaction_id"
    )


def _from_database(client) -> pl.DataFrame:
    inputs = load_feature_inputs(client, WINDOW, END)
    assert inputs.history.get_column("agg_rows").is_not_null().sum() > 0, "nothing summarised"
    return extract_features(*inputs).sort("transaction_id")


def _insert(client, data: pl.DataFrame, labels: pl.DataFrame | None = None) -> None:
    insert_frame(client, "crypto_transactions", data)
    if labels is not None:
        insert_frame(client, "transaction_labels", labels)


def _plan(client, sql: str) -> str:
    start, end = WINDOW, END
    summary_start = h._hour(end - timedelta(microseconds=1)) - timedelta(days=30)
    parameters = {
        "start": h._micros(start),
        "end": h._micros(end),
        "history_start": h._micros(summary_start),
        "summary_start": h._micros(summary_start),
        "summary_end": h._micros(start - h.VELOCITY_REACH),
        **h._day_split(summary_start, start - h.VELOCITY_REACH),
    }
    rows = client.query(
        f"EXPLAIN projections = 1 {sql}", parameters=parameters, settings=h.SUMMARY_SETTINGS
    ).result_rows
    return "\n".join(r[0] for r in rows)


def test_history_queries_read_the_daily_projection(clickhouse):
    """The projection's aggregates must match the loader's: else it silently goes unused."""
    data, labels = _world()
    with clickhouse.get_client() as client:
        _insert(client, data, labels)
        assert "ReadFromMergeTree (user_daily)" in _plan(client, h.SUMMARY_SQL)


def test_same_features_as_raw_rows_through_late_rows_duplicates_and_regeneration(clickhouse):
    data, labels = _world()
    # Late rows: a second insert into days already summarised (its own parts), one of
    # them a duplicate id of an earlier row and one each user's newest summarised row.
    late = random_transactions(400, 40, WINDOW - timedelta(days=29), timedelta(days=27), 43)
    duplicate = data.filter(pl.col("timestamp") < WINDOW - timedelta(days=3)).head(1)
    newest = random_transactions(40, 40, WINDOW - timedelta(hours=25), timedelta(minutes=30), 44)
    everything = pl.concat([data, late, duplicate, newest])
    with clickhouse.get_client() as client:
        _insert(client, data, labels)
        first = _from_database(client)
        _insert(client, pl.concat([late, duplicate, newest]))
        with_late_rows = _from_database(client)
        assert with_late_rows.equals(_from_database(client)), "a rerun reads the same"
        assert with_late_rows.equals(_from_raw_rows(everything, labels))
        assert not with_late_rows.equals(first), "the late rows count"

        # Regenerating a range: a lightweight delete rebuilds the projection of its parts.
        day = WINDOW - timedelta(days=10)
        delete_range(client, int(day.timestamp()), int((day + timedelta(days=2)).timestamp()))
        kept = everything.filter(
            (pl.col("timestamp") < day) | (pl.col("timestamp") >= day + timedelta(days=2))
        )
        assert _from_database(client).equals(
            _from_raw_rows(
                kept,
                labels.filter(pl.col("transaction_id").is_in(kept["transaction_id"].implode())),
            )
        )


def test_parts_without_the_projection_give_the_same_features(clickhouse):
    data, labels = _world()
    with clickhouse.get_client() as client:
        _insert(client, data, labels)
        with_projection = _from_database(client)
        client.command(
            "ALTER TABLE crypto_transactions CLEAR PROJECTION user_daily IN PARTITION 202502",
            settings={"mutations_sync": 2},
        )
        assert _from_database(client).equals(with_projection)
    assert with_projection.equals(_from_raw_rows(data, labels))


def _tied_user(data: pl.DataFrame) -> pl.DataFrame:
    """A user quiet for the last 3 days whose latest earlier transactions share one second
    under two keys (country, device, wallet): the one with the greater id is the latest."""
    template = data.head(1)
    tie = WINDOW - timedelta(days=3, minutes=7)
    rows = [
        ("tied-0", tie - timedelta(days=5), "DE", "api", "0xaaaa", 120.0, "buy"),
        ("tied-1", tie, "DE", "api", "0xaaaa", 250.5, "withdraw"),
        ("tied-2", tie, "BR", "mobile_ios", "0xbbbb", 75.25, "sell"),
        ("tied-3", WINDOW + timedelta(minutes=10), "BR", "desktop_web", "0xbbbb", 99.0, "buy"),
    ]
    return pl.concat(
        template.with_columns(
            transaction_id=pl.lit(ident),
            timestamp=pl.lit(at).cast(pl.Datetime("us", "UTC")),
            user_id=pl.lit("user-tied"),
            ip_country=pl.lit(country),
            device_type=pl.lit(device),
            wallet_address=pl.lit(wallet),
            amount=pl.lit(amount),
            transaction_type=pl.lit(kind),
        )
        for ident, at, country, device, wallet, amount, kind in rows
    )


def test_a_latest_time_shared_by_two_keys_takes_the_greater_id(clickhouse):
    data, labels = _world()
    everything = pl.concat([data, _tied_user(data)])
    with clickhouse.get_client() as client:
        _insert(client, everything, labels)
        from_database = _from_database(client)
    assert from_database.equals(_from_raw_rows(everything, labels))
    target = from_database.filter(pl.col("transaction_id") == "tied-3").row(0, named=True)
    # Its previous transaction is tied-2 (BR, mobile_ios), not tied-1 (DE, api).
    assert target["country_changed"] == 0.0 and target["device_changed"] == 1.0
    assert target["user_tx_count_30d"] == 3.0


def test_absurd_and_non_finite_amounts_in_history_are_capped_alike_on_both_paths(clickhouse):
    """Quarantined rows stay in the table: their amounts enter history sums capped to
    [0, MAX_AMOUNT_USD] (0 when not finite), from the projection, the rows and polars."""
    data, labels = _world()
    old = data.filter(pl.col("timestamp") < WINDOW - timedelta(days=3))
    recent = data.filter(pl.col("timestamp").is_between(WINDOW - timedelta(hours=20), WINDOW))
    amounts = [4.4e245, float("inf"), float("nan"), -5.0, 2e10, float("-inf")]
    bad = pl.concat(
        [
            old.head(3).with_columns(pl.Series("amount", amounts[:3])),
            old.tail(3).with_columns(pl.Series("amount", amounts[3:])),
            recent.head(3).with_columns(pl.Series("amount", amounts[:3])),
        ]
    ).with_columns(pl.col("transaction_id") + "-bad")
    everything = pl.concat([data, bad])
    users = set(bad["user_id"])
    with clickhouse.get_client() as client:
        _insert(client, everything, labels)
        assert "ReadFromMergeTree (user_daily)" in _plan(client, h.SUMMARY_SQL)
        from_database = _from_database(client)
        client.command(
            "ALTER TABLE crypto_transactions CLEAR PROJECTION user_daily IN PARTITION 202502",
            settings={"mutations_sync": 2},
        )
        assert _from_database(client).equals(from_database)
    from_raw_rows = _from_raw_rows(everything, labels)
    assert from_database.equals(from_raw_rows)
    affected = from_database.filter(pl.col("user_id").is_in(list(users)))
    assert affected.height > 0
    sums = affected.select("log_user_avg_amount_30d", "log_amount_sum_24h", "user_tx_count_30d")
    assert all(sums[c].is_finite().all() for c in sums.columns)
    # The capped rows count as transactions: each bad user has more history than without them.
    without = _from_raw_rows(data, labels).filter(pl.col("user_id").is_in(list(users)))
    assert (affected["user_tx_count_30d"] >= without["user_tx_count_30d"]).all()
    assert (affected["user_tx_count_30d"] > without["user_tx_count_30d"]).any()


@pytest.mark.parametrize(
    ("start", "end", "days", "head", "tail"),
    [
        # hour-aligned hourly scoring: a partial day at each end
        (
            datetime(2025, 1, 30, 6, tzinfo=UTC),
            datetime(2025, 2, 28, 5, 59, 59, 999999, tzinfo=UTC),
            (date(2025, 1, 31), date(2025, 2, 27)),
            (datetime(2025, 1, 30, 6, tzinfo=UTC), datetime(2025, 1, 31, tzinfo=UTC)),
            (datetime(2025, 2, 28, tzinfo=UTC), datetime(2025, 2, 28, 6, tzinfo=UTC)),
        ),
        # midnight to midnight: whole days only
        (
            datetime(2025, 1, 30, tzinfo=UTC),
            datetime(2025, 2, 1, tzinfo=UTC) - timedelta(microseconds=1),
            (date(2025, 1, 30), date(2025, 1, 31)),
            (datetime(2025, 1, 30, tzinfo=UTC), datetime(2025, 1, 30, tzinfo=UTC)),
            (datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)),
        ),
        # inside one day, and across one midnight without a whole day: all raw rows
        (
            datetime(2025, 1, 30, 6, tzinfo=UTC),
            datetime(2025, 1, 30, 20, tzinfo=UTC),
            None,
            (datetime(2025, 1, 30, 6, tzinfo=UTC), datetime(2025, 1, 30, 20, 0, 0, 1, tzinfo=UTC)),
            None,
        ),
        (
            datetime(2025, 1, 30, 6, tzinfo=UTC),
            datetime(2025, 1, 31, 5, tzinfo=UTC),
            None,
            (datetime(2025, 1, 30, 6, tzinfo=UTC), datetime(2025, 1, 31, 5, 0, 0, 1, tzinfo=UTC)),
            None,
        ),
    ],
)
def test_the_summarised_range_splits_into_whole_days_and_the_rest(start, end, days, head, tail):
    split = h._day_split(start, end)
    if days is None:
        assert split["first_day"] > split["last_day"], "no whole day"
        assert split["tail_start"] == split["tail_end"], "nothing after"
    else:
        assert (split["first_day"], split["last_day"]) == days
        assert (split["tail_start"], split["tail_end"]) == tuple(h._micros(t) for t in tail)
    assert (split["head_start"], split["head_end"]) == tuple(h._micros(t) for t in head)


def test_a_redelivered_batch_is_stored_once_and_counts_once_in_history(clickhouse):
    """A loader that retries an insert it saw no acknowledgement for sends the same
    blocks again: crypto_transactions drops them (sql/090), so the history features of
    a later hour are those of one delivery. A copy batched differently is not a
    repeated block: it is stored, and the features see it (the check is not vacuous)."""
    data, labels = _world()
    day = WINDOW - timedelta(days=3)
    batch = data.filter(pl.col("timestamp") >= day, pl.col("timestamp") < day + timedelta(days=1))
    assert batch.height > 10
    with clickhouse.get_client() as client:
        _insert(client, data.join(batch, on="transaction_id", how="anti"), labels)
        client.insert_arrow("crypto_transactions", batch.to_arrow())  # the loader's delivery
        once = _from_database(client)
        client.insert_arrow("crypto_transactions", batch.to_arrow())  # ... and its retry
        assert client.query("SELECT count() FROM crypto_transactions").result_rows == [
            (data.height,)
        ]
        assert _from_database(client).equals(once)
        assert once.equals(_from_raw_rows(data, labels))

        client.insert_arrow("crypto_transactions", batch.tail(batch.height - 1).to_arrow())
        assert client.query("SELECT count() FROM crypto_transactions").result_rows == [
            (data.height + batch.height - 1,)
        ]
        assert not _from_database(client).equals(once)


def _score_validation(client, start: datetime, end: datetime) -> int:
    """What scoring the window does to its input: validate it and quarantine the rest."""
    from fraud_assets.assets import scoring_steps as steps
    from fraud_assets.validation import claimed_ids

    raw = steps.read_transactions(client, start, end)
    _, quarantined = steps.validate(raw, start, end, "run", claimed_ids(client, start, end))
    insert_frame(client, "quarantined_transactions", quarantined)
    return quarantined.height


def test_a_copy_batched_differently_counts_once_its_hour_is_scored(clickhouse):
    """Copies of stored transactions sent in other blocks are stored; once their hours
    are scored, validation has quarantined them and history leaves them out, in the
    summarised days and in the last day's rows alike."""
    data, labels = _world()
    old_day = WINDOW - timedelta(days=3)  # summarised (whole day)
    recent = (WINDOW - timedelta(hours=10), WINDOW - timedelta(hours=4))  # kept as rows
    batches = [
        data.filter(pl.col("timestamp") >= start, pl.col("timestamp") < end)
        for start, end in [(old_day, old_day + timedelta(days=1)), recent]
    ]
    assert all(batch.height > 10 for batch in batches)
    with clickhouse.get_client() as client:
        _insert(client, data, labels)
        once = _from_database(client)
        assert once.equals(_from_raw_rows(data, labels))
        for batch in batches:  # redelivered with a row fewer: other blocks, stored
            client.insert_arrow("crypto_transactions", batch.tail(batch.height - 1).to_arrow())
        twice = _from_database(client)
        assert not twice.equals(once), "the copies count until their hours are scored"

        assert _score_validation(client, old_day, old_day + timedelta(days=1)) == (
            batches[0].height - 1
        )
        assert _score_validation(client, *recent) == batches[1].height - 1
        assert _from_database(client).equals(once)
        assert client.query("SELECT count() FROM crypto_transactions").result_rows == [
            (data.height + batches[0].height + batches[1].height - 2,)
        ], "the copies stay stored; only history leaves them out"


def test_only_copies_identical_to_a_stored_row_are_left_out():
    """Per (time, id): up to the quarantined number of copies, never the last of the
    rows identical in every history column."""
    at = [datetime(2025, 3, 1, h, tzinfo=UTC) for h in range(3)]
    rows = pl.DataFrame(
        {
            "transaction_id": ["a", "b", "a", "c", "a", "c", "c", "c"],
            "timestamp": [at[0], at[1], at[0], at[2], at[0], at[2], at[2], at[2]],
            "user_id": "u",
            "amount": [1.0, 2.0, 1.0, 4.0, 1.0, 4.0, 4.0, 9.0],
            "transaction_type": "buy",
            "ip_country": ["DE", "DE", "DE", "DE", "DE", "DE", "FR", "DE"],
            "device_type": "ios",
            "wallet_address": "w",
        }
    ).with_row_index("n")
    repeats = pl.DataFrame(
        {"timestamp": at, "transaction_id": ["a", "b", "c"], "copies": [2, 1, 5]}
    )
    # a: two of three; b: its only row; c: one of the two alike (4.0 in DE), not the others
    assert h._repeated_copies(rows, repeats)["n"].to_list() == [0, 2, 3]
    assert h._without_repeats(rows, repeats)["n"].to_list() == [1, 4, 5, 6, 7]
    assert h._without_repeats(rows, repeats.clear()).equals(rows)


def test_a_copy_whose_contents_differ_stays_history(clickhouse):
    """Same id and time, another amount or country: validation scores one row and
    quarantines the other, and history keeps both, each a transaction of its own (only
    an exact copy can go without it mattering which one was scored)."""
    data, labels = _world()
    target = data.filter(pl.col("timestamp") >= WINDOW)[0]
    mine = data.filter(
        pl.col("timestamp") <= WINDOW - timedelta(hours=25),
        pl.col("user_id") == target["user_id"][0],
    ).sort("timestamp")
    twin_a, twin_b = mine[-1], mine[-2]  # the user's latest summarised row, and the one before
    other = next(c for c in data["ip_country"].unique().sort() if c != twin_b["ip_country"][0])
    copies = pl.concat(
        [
            twin_a.with_columns(amount=pl.col("amount") * 7),
            twin_b.with_columns(amount=pl.col("amount") * 5, ip_country=pl.lit(other)),
        ]
    )
    with clickhouse.get_client() as client:
        _insert(client, data, labels)
        _insert(client, copies)
        for twin in (twin_a, twin_b):
            hour = twin["timestamp"][0].replace(minute=0, second=0, microsecond=0)
            assert _score_validation(client, hour, hour + timedelta(hours=1)) == 1
        got = _from_database(client)
    assert not got.equals(_from_raw_rows(data, labels)), "the copies matter"
    assert got.equals(_from_raw_rows(pl.concat([data, copies]), labels))
