"""``fraud-assets demo``: the whole system on the embedded default, end to end.

Generates a month of exchange traffic, trains the weekly models for the last
complete week, scores the following day hour by hour in one single-run
backfill, and prints what happened. Runs go to the Dagster instance in
DAGSTER_HOME (default ``.dagster_home``), so ``make dev`` shows them in the UI
afterwards.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta

from fraud_assets import settings

DEFAULT_USERS = 1500
DEFAULT_DAYS = 37
# The runs' own messages (promotion, drift, alerts, failures) without Dagster's per-event
# DEBUG lines: the full event log is in Dagit (`make dev`).
RUN_LOGGING = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def last_week_end(now: datetime) -> datetime:
    """The most recent Sunday 02:00 UTC at least one day before ``now`` (a closed week + a day)."""
    moment = (now - timedelta(days=1)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    moment = (
        moment.replace(hour=2) if moment.hour >= 2 else (moment - timedelta(days=1)).replace(hour=2)
    )
    return moment - timedelta(days=(moment.weekday() + 1) % 7)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("demo", help="generate, train, score and summarise (embedded)")
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    parser.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help="days of history to generate"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--epochs", type=int, default=15, help="autoencoder epochs (the seed's 50 for a real run)"
    )
    parser.set_defaults(func=run)


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def run(args: argparse.Namespace) -> int:
    home = os.environ.setdefault("DAGSTER_HOME", str(settings.PROJECT_ROOT / ".dagster_home"))
    import dagster as dg

    from fraud_assets.event_storage import ensure_local_instance

    ensure_local_instance(home)

    from fraud_assets.clickhouse import ClickHouseResource
    from fraud_assets.definitions import defs
    from fraud_assets.generator.config import GeneratorConfig
    from fraud_assets.generator.load import generate_into_clickhouse
    from fraud_assets.partitions import weekly_partitions

    week_end = last_week_end(datetime.now(UTC))
    start = week_end - timedelta(days=args.days)
    score_end = week_end + timedelta(days=1)
    clickhouse = ClickHouseResource()
    instance = dg.DagsterInstance.get()

    began = _step(
        f"1/4 generate {args.users} users, {start:%Y-%m-%d} → {score_end:%Y-%m-%d %H:%M} UTC"
    )
    summary = generate_into_clickhouse(
        clickhouse,
        GeneratorConfig(
            start=start.replace(hour=0), end=score_end, users=args.users, seed=args.seed
        ),
    )
    print(
        f"   {summary.rows:,} transactions, {summary.labels:,} labels ({time.perf_counter() - began:.1f}s)"
    )

    week_key = weekly_partitions.get_partition_key_for_timestamp(
        (week_end - timedelta(hours=1)).timestamp()
    )
    began = _step(
        f"2/4 train_ensemble_models for the week {week_key} (autoencoder epochs={args.epochs})"
    )
    training = defs.resolve_job_def("train_ensemble_models").execute_in_process(
        partition_key=week_key,
        instance=instance,
        run_config={
            "ops": {"train_autoencoder": {"config": {"epochs": args.epochs}}},
            **RUN_LOGGING,
        },
        raise_on_error=False,
    )
    print(
        f"   {'succeeded' if training.success else 'FAILED'} in {time.perf_counter() - began:.1f}s, run {training.run_id}"
    )
    if not training.success:
        return _failed(training)

    first, last = (
        week_end.strftime("%Y-%m-%d-%H:00"),
        (score_end - timedelta(hours=1)).strftime("%Y-%m-%d-%H:00"),
    )
    began = _step(f"3/4 ensemble_anomaly_detection for {first} … {last} (one single-run backfill)")
    scoring = defs.resolve_job_def("ensemble_anomaly_detection").execute_in_process(
        instance=instance,
        run_config=RUN_LOGGING,
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
        raise_on_error=False,
    )
    print(
        f"   {'succeeded' if scoring.success else 'FAILED'} in {time.perf_counter() - began:.1f}s, run {scoring.run_id}"
    )
    if not scoring.success:
        return _failed(scoring)

    _step("4/4 summary")
    with clickhouse.get_client() as client:
        print_summary(client, week_end, score_end, scoring)
    print(
        "\nWhere to look: `make dev` and open http://localhost:3000 (asset graph, runs, metadata);"
        f"\nClickHouse: embedded at {settings.clickhouse_url()} — tables detected_anomalies_ensemble,"
        " daily_model_performance, model_registry, quarantined_transactions."
    )
    return 0


def _failed(result) -> int:
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            print(
                f"   step {event.step_key} failed: {event.event_specific_data.error.message.strip()}"
            )
    return 1


_DECISIONS_SQL = """
SELECT final_decision, count() AS n, countIf(l.is_fraud = 1) AS frauds
FROM detected_anomalies_ensemble AS e
LEFT JOIN (SELECT transaction_id, argMax(is_fraud, labeled_at) AS is_fraud
           FROM transaction_labels GROUP BY transaction_id) AS l USING transaction_id
WHERE e.timestamp >= {start:DateTime('UTC')} AND e.timestamp < {end:DateTime('UTC')}
GROUP BY final_decision ORDER BY final_decision
"""

_LAYERS_SQL = """
SELECT
    layer,
    countIf(flagged = 1 AND is_fraud = 1) / nullIf(countIf(flagged = 1), 0) AS precision,
    countIf(flagged = 1 AND is_fraud = 1) / nullIf(countIf(is_fraud = 1), 0) AS recall,
    countIf(flagged = 1) AS n_flagged
FROM (
    SELECT e.*, l.is_fraud AS is_fraud
    FROM detected_anomalies_ensemble AS e
    LEFT JOIN (SELECT transaction_id, argMax(is_fraud, labeled_at) AS is_fraud
               FROM transaction_labels GROUP BY transaction_id) AS l USING transaction_id
    WHERE e.timestamp >= {start:DateTime('UTC')} AND e.timestamp < {end:DateTime('UTC')}
)
ARRAY JOIN
    ['rules', 'isolation_forest', 'autoencoder', 'ensemble (review+block)', 'ensemble (block)'] AS layer,
    [toUInt8(length(statistical_flags) > 0), toUInt8(isolation_prediction = -1),
     toUInt8(autoencoder_prediction = -1), toUInt8(final_decision != 'approved'),
     toUInt8(final_decision = 'blocked')] AS flagged
GROUP BY layer ORDER BY layer
"""


_TOP_BLOCKED_SQL = """
SELECT transaction_id, total_risk_score, reason_codes
FROM detected_anomalies_ensemble
WHERE timestamp >= {start:DateTime('UTC')} AND timestamp < {end:DateTime('UTC')}
  AND final_decision = 'blocked'
ORDER BY total_risk_score DESC, transaction_id
LIMIT 3
"""


def print_summary(client, start: datetime, end: datetime, scoring) -> None:
    params = {"start": start, "end": end}
    print("   decisions (with the fraud labels known today):")
    for decision, n, frauds in client.query(_DECISIONS_SQL, parameters=params).result_rows:
        print(f"     {decision:<9} {n:>7,}   of which labelled fraud: {frauds:,}")
    print("   per layer against the labels:")
    for layer, precision, recall, flagged in client.query(
        _LAYERS_SQL, parameters=params
    ).result_rows:
        p = "n/a" if precision is None else f"{precision:.2f}"
        r = "n/a" if recall is None else f"{recall:.2f}"
        print(f"     {layer:<24} flagged {flagged:>6,}  precision {p:>5}  recall {r:>5}")
    top = client.query(_TOP_BLOCKED_SQL, parameters=params).result_rows
    if top:
        print("   riskiest blocked transactions and their reason codes:")
        for transaction_id, risk, reasons in top:
            print(f"     {transaction_id} risk {risk:.0f}: {'; '.join(reasons)}")
    blocked = [
        m
        for m in scoring.get_asset_materialization_events()
        if m.asset_key.to_user_string() == "send_alerts"
        and m.materialization.metadata.get("blocked")
        and m.materialization.metadata["blocked"].value
    ]
    sent = 1 if blocked else 0  # the demo scores its day in one single-run backfill
    print(
        f"   alerts: {sent} notification(s) sent (one per scoring run whose window had "
        "blocked transactions; see the run log or the configured channels)"
    )
