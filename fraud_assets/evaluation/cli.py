"""``fraud-assets evaluate``: detection quality on the fraud simulation and on public data.

Prints two tables: the fraud-simulation check (every layer and the ensemble
on a simulated week scored by a bundle trained on the weeks before it) and
the public-data check (the detectors on the ADBench datasets beside the
published figures). Exit status 1 when a goal of either check fails.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction) -> None:
    from fraud_assets.evaluation.public_benchmarks import PROTOCOLS
    from fraud_assets.evaluation.simulation import SimulationSettings

    defaults = SimulationSettings()
    parser = commands.add_parser(
        "evaluate", help="detection quality: fraud simulation and public benchmark tables"
    )
    parser.add_argument("--users", type=int, default=defaults.users)
    parser.add_argument(
        "--days",
        type=int,
        default=defaults.days,
        help="days of traffic; the last 7 are scored, the 30 before them train",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="autoencoder epochs")
    parser.add_argument(
        "--public-seeds",
        type=int,
        default=2,
        help="seeds per public dataset (the published protocol uses 10); 0 skips the check",
    )
    parser.add_argument(
        "--public-protocols",
        nargs="*",
        default=["pyod", "semi_supervised"],
        choices=PROTOCOLS,
        help="public-data protocols to run (the goals are judged under the default two)",
    )
    parser.add_argument("--skip-simulation", action="store_true", help="only the public-data check")
    parser.add_argument(
        "--penalty-sweep",
        action="store_true",
        help="also refit the combiner with every candidate penalty: validation loss and goals",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    failed = False
    output: dict = {}
    if not args.skip_simulation:
        from fraud_assets.evaluation.simulation import (
            SimulationSettings,
            check_goals,
            format_report,
            run_simulation,
        )

        settings = SimulationSettings(
            users=args.users, days=args.days, seed=args.seed, epochs=args.epochs
        )
        print("== Fraud-simulation check", flush=True)
        result = run_simulation(settings, log=lambda line: print(f"   {line}", flush=True))
        print()
        print(format_report(result), flush=True)
        failed |= not all(check.passed for check in check_goals(result.test))
        output["simulation"] = result.to_dict()
        if args.penalty_sweep:
            from dataclasses import asdict

            from fraud_assets.evaluation.penalty_sweep import sweep, sweep_table

            rows, choice = sweep(result.frames)
            print("\nThe combiner with each candidate penalty (bold: the rule's choice):\n")
            print(sweep_table(rows, choice), flush=True)
            output["penalty_sweep"] = [asdict(row) for row in rows]
    if args.public_seeds > 0:
        print("\n== Public-data check", flush=True)
        public = _public_check(args.public_seeds, args.public_protocols)
        failed |= not all(summary.passed for summary in public.values())
        output["public"] = {
            protocol: {"rows": s.rows, "failures": s.failures} for protocol, s in public.items()
        }
    if args.json:
        args.json.write_text(json.dumps(output, indent=1, default=float))
    return 1 if failed else 0


def _public_check(seeds: int, protocols: list[str]):
    from fraud_assets.evaluation import public_benchmarks

    summaries = {}
    for protocol in protocols:
        results = public_benchmarks.run(protocol, range(seeds), verbose=True)
        summary = public_benchmarks.summarize(results)
        print()
        print(public_benchmarks.format_table(summary), flush=True)
        summaries[protocol] = summary
    return summaries
