"""A small trained world for the reliability and security tests, and ways to run it.

One world is built per test session: ten days of generated traffic for a few
users in an embedded ClickHouse, one weekly training run (few epochs, few
trees) that registers and promotes a bundle, and the hours after the training
week left unscored. Each test gets its own copy of the folder (database, model
volume, intermediates), so tests can break it, kill processes on it and
tamper with it freely.

Runs happen in-process (``World.score``) or in a subprocess that imports the
code location exactly as a deployment does (``World.spawn``): the environment
points FRAUD_DATA_DIR, FRAUD_MODEL_DIR, DAGSTER_HOME and TMPDIR into the copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets.io import ClickHousePandasIOManager, ClickHousePolarsIOManager, ModelIOManager
from fraud_assets.io.intermediate import IntermediateFrameIOManager
from fraud_assets.notify import NotifierResource

WEEK_KEY = "2026-02-22"  # Sunday 2026-02-22 02:00 → Sunday 2026-03-01 02:00 UTC
WEEK_END = datetime(2026, 3, 1, 2, tzinfo=UTC)
GENERATED_START = WEEK_END - timedelta(days=10)
GENERATED_END = WEEK_END + timedelta(hours=30)
USERS = 400
TRAIN_CONFIG: dict[str, Any] = {
    "ops": {
        "train_autoencoder": {"config": {"epochs": 2, "batch_size": 64}},
        "train_isolation_forest": {"config": {"n_estimators": 30}},
    }
}
SCORING_JOB = "ensemble_anomaly_detection"
TRAINING_JOB = "train_ensemble_models"
REPO = Path(__file__).resolve().parents[1]


def hour_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d-%H:00")


def hour(n: int) -> datetime:
    """The n-th hour after the training week (0 = the first unscored hour)."""
    return WEEK_END + timedelta(hours=n)


def range_tags(first: datetime, last: datetime) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": hour_key(first),
        "dagster/asset_partition_range_end": hour_key(last),
    }


def failures(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(
        f"{e.step_key}: {e.event_specific_data.error.message}"
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    )


def events_of(result: dg.ExecuteInProcessResult, event_type: str) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.event_type_value == event_type]


class World:
    """One copy of the trained world under ``root``."""

    def __init__(self, root: Path, instance: dg.DagsterInstance | None = None) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.model_dir = root / "models"
        self.dagster_home = root / "dagster_home"
        self.tmp_dir = root / "tmp"
        for folder in (self.data_dir, self.model_dir, self.dagster_home, self.tmp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.dsn = f"chdb://{self.data_dir / 'clickhouse'}"
        self.clickhouse = ClickHouseResource(dsn=self.dsn)
        self.instance = instance or dg.DagsterInstance.ephemeral()
        self.defs = self.definitions()

    def resources(self, **overrides: Any) -> dict[str, Any]:
        return {
            "clickhouse": self.clickhouse,
            "polars_io_manager": ClickHousePolarsIOManager(dsn=self.dsn),
            "clickhouse_io_manager": ClickHousePandasIOManager(dsn=self.dsn),
            "model_io_manager": ModelIOManager(root=str(self.model_dir)),
            "intermediate_io_manager": IntermediateFrameIOManager(
                root=str(self.data_dir / "intermediate")
            ),
            "notifier": NotifierResource(),
        } | overrides

    def definitions(self, **overrides: Any) -> dg.Definitions:
        from fraud_assets.assets import scoring, training

        return dg.Definitions.merge(
            training.defs, scoring.defs, dg.Definitions(resources=self.resources(**overrides))
        )

    # -- running -----------------------------------------------------------

    def score(
        self,
        first: datetime,
        last: datetime | None = None,
        defs: dg.Definitions | None = None,
        run_config: dict | None = None,
    ) -> dg.ExecuteInProcessResult:
        job = (defs or self.defs).resolve_job_def(SCORING_JOB)
        return job.execute_in_process(
            instance=self.instance,
            tags=range_tags(first, last or first),
            run_config=run_config,
            raise_on_error=False,
        )

    def train(self, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def(TRAINING_JOB).execute_in_process(
            partition_key=WEEK_KEY,
            instance=self.instance,
            run_config=run_config or TRAIN_CONFIG,
            raise_on_error=False,
        )

    def env(self) -> dict[str, str]:
        """The environment of a deployment whose volumes are this world's folders."""
        env = {k: v for k, v in os.environ.items() if k != "CLICKHOUSE_URL"}
        return env | {
            "FRAUD_DATA_DIR": str(self.data_dir),
            "FRAUD_MODEL_DIR": str(self.model_dir),
            "DAGSTER_HOME": str(self.dagster_home),
            "TMPDIR": str(self.tmp_dir),
            "FRAUD_CLICKHOUSE_RETRY_DELAY_S": "0.2",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONUNBUFFERED": "1",
        }

    def spawn(
        self, job: str, tags: dict[str, str] | None = None, **kwargs: Any
    ) -> subprocess.Popen:
        """A run of ``job`` in a new process through the code location (``fraud_assets.definitions``)."""
        script = textwrap.dedent(
            """
            import json, sys
            import dagster as dg
            from fraud_assets.definitions import defs
            job, tags, partition, config = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
            result = defs.resolve_job_def(job).execute_in_process(
                instance=dg.DagsterInstance.get(), tags=tags, partition_key=partition or None,
                run_config=config, raise_on_error=False,
            )
            print("RUN", result.run_id, "SUCCESS" if result.success else "FAILURE", flush=True)
            sys.exit(0 if result.success else 1)
            """
        )
        import json

        partition = WEEK_KEY if job == TRAINING_JOB else ""
        config = TRAIN_CONFIG if job == TRAINING_JOB else {}
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                script,
                job,
                json.dumps(tags or {}),
                partition,
                json.dumps(config),
            ],
            env=self.env(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            **kwargs,
        )

    # -- reading -----------------------------------------------------------

    def query(self, sql: str, **parameters: Any) -> list[tuple]:
        with self.clickhouse.get_client() as client:
            return client.query(sql, parameters=parameters).result_rows

    def command(self, sql: str, **parameters: Any) -> Any:
        with self.clickhouse.get_client() as client:
            return client.command(sql, parameters=parameters)

    def reconcile(self, first: datetime, end: datetime) -> dict[str, int]:
        """Per window: transactions arrived, rows scored (and distinct ids), rows quarantined."""
        window = {"s": first, "e": end}
        where = "timestamp >= {s:DateTime('UTC')} AND timestamp < {e:DateTime('UTC')}"
        (arrived,) = self.query(f"SELECT count() FROM crypto_transactions WHERE {where}", **window)[
            0
        ]
        scored, distinct = self.query(
            f"SELECT count(), uniqExact(transaction_id) FROM detected_anomalies_ensemble WHERE {where}",
            **window,
        )[0]
        (quarantined,) = self.query(
            f"SELECT count() FROM quarantined_transactions WHERE {where}", **window
        )[0]
        return {
            "arrived": arrived,
            "scored": scored,
            "distinct_scored": distinct,
            "quarantined": quarantined,
        }

    def active_version(self) -> str:
        from fraud_assets import registry

        with self.clickhouse.get_client() as client:
            return registry.active_version(client)


def assert_one_copy(
    world: World, first: datetime, end: datetime, nonempty: bool = True
) -> dict[str, int]:
    """Every transaction of [first, end) scored once or quarantined; metrics one row per key."""
    counts = world.reconcile(first, end)
    assert counts["arrived"] > 0 or not nonempty
    assert counts["scored"] == counts["distinct_scored"], "one row per scored transaction"
    assert counts["scored"] + counts["quarantined"] == counts["arrived"], counts
    (rows, keys) = world.query(
        "SELECT count(), uniqExact(date, model_type) FROM daily_model_performance"
    )[0]
    assert rows == keys, "one daily_model_performance row per (date, model_type)"
    return counts


def build_template(root: Path) -> Path:
    """Generate the traffic and train one bundle under ``root`` (once per session)."""
    from fraud_assets.generator.config import GeneratorConfig
    from fraud_assets.generator.load import generate_into_clickhouse

    world = World(root)
    generate_into_clickhouse(
        world.clickhouse,
        GeneratorConfig(start=GENERATED_START, end=GENERATED_END, users=USERS, seed=11),
    )
    previous = os.environ.get("FRAUD_MODEL_DIR")
    os.environ["FRAUD_MODEL_DIR"] = str(world.model_dir)
    try:
        result = world.train()
    finally:
        if previous is None:
            os.environ.pop("FRAUD_MODEL_DIR", None)
        else:
            os.environ["FRAUD_MODEL_DIR"] = previous
    if not result.success:
        raise RuntimeError(f"training the reliability world failed:\n{failures(result)}")
    return root


def copy_world(template: Path, destination: Path) -> Path:
    shutil.copytree(
        template,
        destination,
        symlinks=True,
        ignore=shutil.ignore_patterns("*.lock", "dagster_home"),
    )
    return destination


# ---------------------------------------------------------------- fixtures
# Test modules import these; the template is built once per session even though
# each importing module registers its own copy of the fixture.

_template: Path | None = None


@pytest.fixture(scope="session", name="world_template")
def world_template_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    global _template
    if _template is None:
        _template = build_template(tmp_path_factory.mktemp("reliability_template"))
    return _template


@pytest.fixture(name="world")
def world_fixture(world_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    root = copy_world(world_template, tmp_path / "world")
    # The bundle loader reads the model volume from the environment, as in a deployment.
    monkeypatch.setenv("FRAUD_MODEL_DIR", str(root / "models"))
    return World(root)
