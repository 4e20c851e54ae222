"""Train and promote a model bundle for the end-to-end session (run as a module).

``python -m fraud_assets_tests.e2e.seed_models --week-end ISO --epochs N`` runs the
weekly training job in process on the instance in DAGSTER_HOME, so the run shows
up in the UI afterwards. The quality-gate floors are zeroed: the end-to-end tests
check that the system works as a whole, not how good a model trained on a week of
300 simulated customers is. Prints one JSON line: the run and the active version.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--week-end", type=datetime.fromisoformat, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    import dagster as dg

    from fraud_assets import registry
    from fraud_assets.clickhouse import ClickHouseResource
    from fraud_assets.definitions import defs
    from fraud_assets.partitions import weekly_partitions

    week = weekly_partitions.get_partition_key_for_timestamp(
        (args.week_end - timedelta(hours=1)).timestamp()
    )
    gates = {"min_roc_auc": 0.0, "min_recall_at_2pct": 0.0, "min_block_precision": 0.0}
    result = defs.resolve_job_def("train_ensemble_models").execute_in_process(
        partition_key=week,
        instance=dg.DagsterInstance.get(),
        run_config={
            "ops": {
                "train_autoencoder": {"config": {"epochs": args.epochs}},
                "validate_models_validation_quality_gates": {"config": gates},
            }
        },
        raise_on_error=False,
    )
    if not result.success:
        for event in result.all_events:
            if event.event_type_value == "STEP_FAILURE":
                print(event.step_key, event.event_specific_data.error.to_string(), file=sys.stderr)
        return 1
    with ClickHouseResource().get_client() as client:
        active = registry.active_models(client).get("ensemble")
    if active is None:
        print("training succeeded but no bundle is active", file=sys.stderr)
        return 1
    print(json.dumps({"run_id": result.run_id, "week": week, "version": active.version}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
