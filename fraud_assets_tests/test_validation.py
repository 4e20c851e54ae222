"""Input validation: every row is either scored or quarantined with a reason."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from fraud_assets.validation import split_valid

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 11, 1, 1, tzinfo=UTC)


def _frame(**overrides) -> pl.DataFrame:
    base = {
        "transaction_id": ["t1", "t2", "t3"],
        "timestamp": [datetime(2026, 11, 1, 0, m, tzinfo=UTC) for m in (1, 2, 3)],
        "user_id": ["u1", "u1", "u2"],
        "amount": [10.0, 20.0, 30.0],
        "currency": ["BTC", "ETH", "USDT"],
        "transaction_type": ["buy", "sell", "withdraw"],
        "wallet_address": ["w1", "w2", "w3"],
    }
    base.update(overrides)
    return pl.DataFrame(base)


def test_clean_rows_all_pass():
    valid, invalid = split_valid(_frame(), START, END)
    assert valid.height == 3 and invalid.height == 0


def test_each_problem_has_its_reason():
    frame = _frame(
        transaction_id=["t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", " "],
        timestamp=[datetime(2026, 11, 1, 0, 5, tzinfo=UTC)] * 7
        + [datetime(2026, 11, 1, 1, 0, tzinfo=UTC), datetime(2026, 11, 1, 0, 9, tzinfo=UTC)],
        user_id=["u"] * 9,
        amount=[float("nan"), float("inf"), -1.0, 0.0, 1e12, 5.0, 5.0, 5.0, 5.0],
        currency=["BTC"] * 5 + ["BTC", "DOGEZ", "BTC", "BTC"],
        transaction_type=["buy"] * 5 + ["teleport", "buy", "buy", "buy"],
        wallet_address=["w"] * 9,
    )
    valid, invalid = split_valid(frame, START, END)
    reasons = dict(invalid.select("transaction_id", "reason").iter_rows())
    assert valid.height == 0
    assert reasons == {
        "t1": "non_finite_amount",
        "t2": "non_finite_amount",
        "t3": "non_positive_amount",
        "t4": "non_positive_amount",
        "t5": "implausible_amount",
        "t6": "unknown_transaction_type",
        "t7": "unknown_currency",
        "t8": "timestamp_outside_partition",
        " ": "empty_identifier",
    }


def test_nulls_are_quarantined():
    frame = _frame(user_id=["u1", None, "u2"], amount=[None, 2.0, 3.0])
    valid, invalid = split_valid(frame, START, END)
    assert valid["transaction_id"].to_list() == ["t3"]
    assert set(invalid["reason"]) == {"null_required_column"}


def test_duplicates_keep_the_earliest_and_quarantine_the_rest():
    frame = _frame(
        transaction_id=["dup", "dup", "x"],
        timestamp=[datetime(2026, 11, 1, 0, m, tzinfo=UTC) for m in (30, 10, 20)],
    )
    valid, invalid = split_valid(frame, START, END)
    assert valid.sort("transaction_id")["timestamp"].to_list()[0].minute == 10
    assert invalid["reason"].to_list() == ["duplicate_transaction_id"]
    assert valid.height + invalid.height == frame.height


def test_every_read_scores_the_same_one_of_two_differing_copies(clickhouse):
    """Copies that share an id and a time but not their amount: whichever was stored
    first, the scoring graph's read and the training's read validate to the same copy,
    so a rerun scores what the run before it scored."""
    from datetime import timedelta

    from fraud_assets.assets.scoring_steps import read_transactions
    from fraud_assets.features.history import load_transactions
    from fraud_assets.generator.store import insert_frame
    from fraud_assets_tests.test_features import random_transactions

    rows = random_transactions(30, 5, START, timedelta(hours=1), seed=3)
    low, high = (rows[:1].with_columns(amount=pl.lit(a)) for a in (10.0, 20.0))
    scored = []
    for copies in ([low, high], [high, low]):
        with clickhouse.get_client() as client:
            client.command("TRUNCATE TABLE crypto_transactions")
            for batch in (rows[1:], *copies):  # each its own insert
                insert_frame(client, "crypto_transactions", batch)
            for read in (read_transactions, load_transactions):
                valid, invalid = split_valid(read(client, START, END), START, END)
                assert invalid["reason"].to_list() == ["duplicate_transaction_id"]
                copy = valid.filter(pl.col("transaction_id") == low["transaction_id"][0])
                scored.append(copy["amount"].item())
    assert scored == [10.0] * 4
