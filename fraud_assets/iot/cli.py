"""``fraud-assets generate-sensors``: the seed's generate_fresh_data.py for sensor readings.

Writes whole UTC days into ``sensor_data`` and their fault labels into
``sensor_fault_labels``, replacing what those days held, so running it twice
leaves the same rows. ``--csv`` writes files instead of touching ClickHouse.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from fraud_assets import settings
from fraud_assets.clickhouse import apply_migrations, connect, redact_dsn
from fraud_assets.generator.sensors import FaultRates, SensorFleet, generate_sensor_range
from fraud_assets.iot.evaluation import fault_events

_TABLES = ("sensor_data", "sensor_fault_labels")


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "generate-sensors",
        help="generate IoT sensor readings with labelled faults (whole UTC days)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    today = dt.datetime.now(dt.UTC).date()
    parser.add_argument(
        "--start",
        type=dt.date.fromisoformat,
        default=today - dt.timedelta(days=7),
        help="first day, YYYY-MM-DD (default: 7 days ago)",
    )
    parser.add_argument("--days", type=int, default=7, help="number of days (default 7)")
    parser.add_argument("--sensors", type=int, default=8, help="fleet size (default 8)")
    parser.add_argument("--interval", type=int, default=5, help="minutes between readings")
    parser.add_argument("--seed", type=int, default=7, help="fixes the site, sensors and faults")
    parser.add_argument("--no-faults", action="store_true", help="clean readings only")
    parser.add_argument(
        "--csv", type=Path, help="write PATH and PATH's .labels.csv sibling instead of ClickHouse"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.days < 1:
        raise SystemExit("--days must be at least 1")
    rates = FaultRates(0.0, 0.0, 0.0, 0.0) if args.no_faults else FaultRates()
    fleet = SensorFleet(args.sensors, args.interval, args.seed, rates)
    start = args.start
    end = start + dt.timedelta(days=args.days)
    batch = generate_sensor_range(start, end, fleet)
    events = fault_events(batch.labels)["fault_type"].value_counts().to_dict()
    faults = ", ".join(f"{kind} {n}" for kind, n in sorted(events.items())) or "none"
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        labels_path = args.csv.with_suffix(".labels.csv")
        batch.readings.to_csv(args.csv, index=False)
        batch.labels.to_csv(labels_path, index=False)
        target = f"{args.csv} and {labels_path}"
    else:
        dsn, database = settings.clickhouse_url(), settings.clickhouse_database()
        window = {
            "start": dt.datetime.combine(start, dt.time()),
            "end": dt.datetime.combine(end, dt.time()),
        }
        with connect(dsn, database) as client:
            apply_migrations(client)
            for table in _TABLES:
                client.command(
                    f"DELETE FROM {table} WHERE timestamp >= {{start:DateTime('UTC')}} "  # noqa: S608
                    "AND timestamp < {end:DateTime('UTC')}",
                    parameters=window,
                    settings={"lightweight_deletes_sync": 2},
                )
            client.insert_df("sensor_data", batch.readings)
            if not batch.labels.empty:
                client.insert_df("sensor_fault_labels", batch.labels)
        target = f"{redact_dsn(dsn)} database {database} (days replaced)"
    print(
        f"{len(batch.readings)} readings from {args.sensors} sensors, {start} to {end} "
        f"(exclusive), every {args.interval} min → {target}"
    )
    print(f"injected faults: {faults}; {len(batch.labels)} labelled readings")
    return 0
