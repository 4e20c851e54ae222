"""The README's command-line backfills against the running system, checked in ClickHouse."""

from __future__ import annotations

import json
import re

import pytest

from fraud_assets_tests.e2e.harness import (
    IN_PROCESS,
    SCORING_JOB,
    VENV_BIN,
    System,
    hour_counts,
    hour_key,
    wait_for,
)

pytestmark = pytest.mark.e2e


def test_asset_materialize_scores_a_partition_range_in_one_run(system: System):
    hours = system.plan.hours(9, 8)
    system.run_command(
        str(VENV_BIN / "dagster"),
        "asset",
        "materialize",
        "--select",
        "extract_transactions*,quarantined_transactions",
        "--partition-range",
        f"{hour_key(hours[0])}...{hour_key(hours[-1])}",
        "-m",
        "fraud_assets.definitions",
        "--config-json",
        json.dumps(IN_PROCESS),
        timeout_s=300,
    )
    counts = hour_counts(system, hours)
    assert all(c.complete for c in counts.values()), counts
    runs = system.runs(
        tags=[{"key": "dagster/asset_partition_range_start", "value": hour_key(hours[0])}]
    )
    assert [run["status"] for run in runs] == ["SUCCESS"], runs


def test_job_backfill_queues_one_run_per_hour_for_the_daemon(system: System):
    hours = system.plan.hours(11, 10)
    result = system.run_command(
        str(VENV_BIN / "dagster"),
        "job",
        "backfill",
        "-w",
        "workspace.yaml",
        "-j",
        SCORING_JOB,
        "--from",
        hour_key(hours[0]),
        "--to",
        hour_key(hours[-1]),
        "--noprompt",
    )
    launched = re.search(r"Launched backfill job `(\w+)`", result.stdout)
    assert launched, result.stdout[-2000:]
    backfill_id = launched.group(1)
    tagged = [{"key": "dagster/backfill", "value": backfill_id}]

    def finished():
        runs = system.runs(tags=tagged)
        return len(runs) == len(hours) and all(
            r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs
        )

    wait_for(finished, 300 * len(hours), f"backfill {backfill_id}'s runs", 3, system.log_tail)
    runs = system.runs(tags=tagged)
    failed = [r["runId"] for r in runs if r["status"] != "SUCCESS"]
    assert not failed, "\n".join(system.run_failures(run_id) for run_id in failed)
    partitions = sorted(
        tag["value"] for run in runs for tag in run["tags"] if tag["key"] == "dagster/partition"
    )
    assert partitions == [hour_key(h) for h in hours]
    counts = hour_counts(system, hours)
    assert all(c.complete for c in counts.values()), counts
