"""The hourly scoring run as a deployment runs it: a fresh process, no TensorFlow, empty hours.

A small bundle is trained here (TensorFlow is imported in this process);
then a separate Python process loads the deployed definitions, scores three
hours in one single-run backfill (the last one without transactions) and
reports which heavy modules it imported. Scoring must never import
TensorFlow: the autoencoder is scored from its saved weights with NumPy.
"""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets.generator.config import GeneratorConfig
from fraud_assets.generator.load import generate_into_clickhouse
from fraud_assets.io import ClickHousePandasIOManager, ClickHousePolarsIOManager, ModelIOManager
from fraud_assets.io.intermediate import IntermediateFrameIOManager
from fraud_assets.notify import NotifierResource

REPO = Path(__file__).resolve().parents[1]
WEEK_KEY = "2026-10-25"  # Sunday 2026-10-25 02:00 → Sunday 2026-11-01 02:00 UTC
WEEK_END = datetime(2026, 11, 1, 2, tzinfo=UTC)
FIRST_HOUR, LAST_HOUR = "2026-11-01-02:00", "2026-11-01-04:00"  # the last hour has no traffic
NO_GATES = {"min_roc_auc": 0.0, "min_recall_at_2pct": 0.0, "min_block_precision": 0.0}

SCORING_PROCESS = """
import json, sys
import dagster as dg
from fraud_assets.definitions import defs
result = defs.resolve_job_def("ensemble_anomaly_detection").execute_in_process(
    instance=dg.DagsterInstance.ephemeral(),
    tags={"dagster/asset_partition_range_start": sys.argv[1],
          "dagster/asset_partition_range_end": sys.argv[2]},
    raise_on_error=False,
)
failures = [f"{e.step_key}: {e.event_specific_data.error.message}"
            for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
print(json.dumps({"success": result.success, "failures": failures, "heavy": heavy[:5]}))
"""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with a month of traffic and an active bundle, on the deployed env layout."""
    root = tmp_path_factory.mktemp("scoring_runtime")
    dsn = f"chdb://{root / 'clickhouse'}"
    clickhouse = ClickHouseResource(dsn=dsn)
    generate_into_clickhouse(
        clickhouse,
        GeneratorConfig(
            start=WEEK_END - timedelta(days=33), end=WEEK_END + timedelta(hours=2), users=250
        ),
    )
    from fraud_assets.assets import scoring, training

    defs = dg.Definitions.merge(
        training.defs,
        scoring.defs,
        dg.Definitions(
            resources={
                "clickhouse": clickhouse,
                "polars_io_manager": ClickHousePolarsIOManager(dsn=dsn),
                "clickhouse_io_manager": ClickHousePandasIOManager(dsn=dsn),
                "model_io_manager": ModelIOManager(root=str(root / "models")),
                "intermediate_io_manager": IntermediateFrameIOManager(
                    root=str(root / "intermediate")
                ),
                "notifier": NotifierResource(),
            }
        ),
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("FRAUD_MODEL_DIR", str(root / "models"))
    result = defs.resolve_job_def("train_ensemble_models").execute_in_process(
        partition_key=WEEK_KEY,
        instance=dg.DagsterInstance.ephemeral(),
        run_config={
            "ops": {
                "train_autoencoder": {"config": {"epochs": 1, "batch_size": 64}},
                "train_isolation_forest": {"config": {"n_estimators": 20}},
                "validate_models_validation_quality_gates": {"config": NO_GATES},
            }
        },
        raise_on_error=False,
    )
    mp.undo()
    assert result.success, "training the bundle failed"
    return root


def test_a_scoring_run_in_a_fresh_process_never_imports_tensorflow(deployment: Path):
    env = {
        **os.environ,
        "CLICKHOUSE_URL": f"chdb://{deployment / 'clickhouse'}",
        "FRAUD_MODEL_DIR": str(deployment / "models"),
        "FRAUD_INTERMEDIATE_DIR": str(deployment / "intermediate"),
    }
    run = subprocess.run(
        [sys.executable, "-c", SCORING_PROCESS, FIRST_HOUR, LAST_HOUR],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["success"], report["failures"]
    assert report["heavy"] == [], f"scoring imported {report['heavy']}"

    with ClickHouseResource(dsn=env["CLICKHOUSE_URL"]).get_client() as client:
        arrived, scored, quarantined = client.query(
            "SELECT (SELECT count() FROM crypto_transactions WHERE timestamp >= {s:DateTime('UTC')}"
            " AND timestamp < {e:DateTime('UTC')}),"
            " (SELECT count() FROM detected_anomalies_ensemble),"
            " (SELECT count() FROM quarantined_transactions)",
            parameters={"s": WEEK_END, "e": WEEK_END + timedelta(hours=3)},
        ).result_rows[0]
    assert arrived > 0 and scored + quarantined == arrived
