"""``fraud-assets generate``: simulated exchange transactions with labelled fraud, into ClickHouse.

Replaces ``[--start, --end)`` in ``crypto_transactions`` and its labels in
``transaction_labels``, continuing the history already recorded before
``--start``; running it twice leaves the same rows. Generate ranges in time
order: the behaviour columns of a range depend on what precedes it.
"""

from __future__ import annotations

import argparse
import datetime as dt

from fraud_assets import settings
from fraud_assets.clickhouse import ClickHouseResource, redact_dsn
from fraud_assets.generator.config import (
    DEFAULT_FRAUD_RATE,
    GeneratorConfig,
    parse_mix,
)
from fraud_assets.generator.load import generate_into_clickhouse


def _moment(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date or date-time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "generate",
        help="simulate crypto-exchange transactions with labelled fraud into ClickHouse",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    today = dt.datetime.combine(dt.datetime.now(dt.UTC).date(), dt.time(), tzinfo=dt.UTC)
    parser.add_argument(
        "--start", type=_moment, default=today - dt.timedelta(days=7),
        help="first instant, ISO date or date-time, UTC unless an offset is given "
        "(default: 7 days before today)",
    )  # fmt: skip
    parser.add_argument(
        "--end", type=_moment, default=today, help="end instant, exclusive (default: today 00:00)"
    )
    parser.add_argument("--users", type=int, default=2_000, help="customer accounts (default 2000)")
    parser.add_argument(
        "--seed", type=int, default=7, help="fixes customers and events (default 7)"
    )
    parser.add_argument(
        "--fraud-rate", type=float, default=DEFAULT_FRAUD_RATE,
        help=f"expected share of fraudulent transactions (default {DEFAULT_FRAUD_RATE})",
    )  # fmt: skip
    parser.add_argument(
        "--fraud-mix", type=parse_mix, default=None, metavar="NAME=W,...",
        help="relative weights of the fraud scenarios, e.g. account_takeover=2,structuring=1 "
        "(unnamed scenarios get 0; default: the built-in mix)",
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    extra = {"fraud_mix": args.fraud_mix} if args.fraud_mix is not None else {}
    try:
        config = GeneratorConfig(
            start=args.start,
            end=args.end,
            users=args.users,
            seed=args.seed,
            fraud_rate=args.fraud_rate,
            **extra,
        )
    except ValueError as exc:
        raise SystemExit(f"fraud-assets generate: {exc}") from None
    clickhouse = ClickHouseResource(
        dsn=settings.clickhouse_url(), database=settings.clickhouse_database()
    )
    summary = generate_into_clickhouse(clickhouse, config)
    print(
        f"{summary.rows} transactions for {config.users} users, {config.start.isoformat()} to "
        f"{config.end.isoformat()} (exclusive), seed {config.seed} → "
        f"{redact_dsn(clickhouse.dsn)} database {clickhouse.database} (range replaced)"
    )
    print(
        f"generated in {summary.generate_s:.2f}s ({summary.rows / max(summary.generate_s, 1e-9):,.0f} rows/s), "
        f"written in {summary.write_s:.2f}s ({summary.rows / max(summary.write_s, 1e-9):,.0f} rows/s)"
    )
    share = summary.fraud_total / summary.rows if summary.rows else 0.0
    print(f"fraud: {summary.fraud_total} transactions ({share:.2%}), {summary.labels} label rows")
    for scenario, rows in summary.fraud_rows.items():
        print(
            f"  {scenario:<22} {rows:>7} transactions in {summary.incidents[scenario]:>5} incidents"
        )
    return 0
