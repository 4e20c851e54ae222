"""The system as users run it: ``dagster dev`` (webserver + daemon) on a temporary home.

``System`` owns one temporary folder with DAGSTER_HOME, the embedded ClickHouse,
the model volume and the intermediate store; it seeds data and a promoted model
bundle *before* the server starts, then runs ``dagster dev`` in its own process
group and tears the whole group down at the end. Every wait is bounded and every
failure message carries the tail of the server log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fraud_assets.event_storage import LOCAL_INSTANCE_YAML

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
LOCATION = "fraud_assets"
REPOSITORY = "__repository__"
SCORING_JOB = "ensemble_anomaly_detection"
SCORING_ASSETS = (
    "extract_transactions",
    "quarantined_transactions",
    "feature_engineering",
    "statistical_layer",
    "isolation_forest_prediction",
    "autoencoder_prediction",
    "ensemble_decision",
    "detected_anomalies_ensemble",
    "send_alerts",
    "daily_model_performance",
)
# Run config for runs of the implicit asset job (asset backfills, `dagster asset
# materialize`): every step in the run's process, as the scoring job itself runs.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}

# The shipped local instance (batching event log, one run at a time), without telemetry.
INSTANCE_YAML = LOCAL_INSTANCE_YAML.read_text() + "telemetry:\n  enabled: false\n"

TERMINAL_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}
ACTIVE_RUN_STATUSES = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]


def hour_key(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d-%H:00")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    condition: Callable[[], Any],
    timeout_s: float,
    what: str,
    interval_s: float = 1.0,
    on_timeout: Callable[[], str] | None = None,
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except (OSError, urllib.error.URLError, GraphQLError) as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            extra = f"\n{on_timeout()}" if on_timeout else ""
            raise TimeoutError(
                f"timed out after {timeout_s:.0f}s waiting for {what}{detail}{extra}"
            )
        time.sleep(interval_s)


class GraphQLError(RuntimeError):
    pass


@dataclass
class GraphQL:
    """The webserver's GraphQL API, as the UI uses it."""

    url: str
    timeout_s: float = 60.0

    def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            payload = json.load(response)
        if payload.get("errors"):
            raise GraphQLError(json.dumps(payload["errors"])[:2000])
        return payload["data"]


def repository_selector() -> dict[str, str]:
    return {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}


def expect_type(result: dict[str, Any], typename: str) -> dict[str, Any]:
    """Dagster answers errors as union members; turn anything unexpected into a failure."""
    if result.get("__typename") != typename:
        raise AssertionError(f"expected {typename}, got {json.dumps(result)[:3000]}")
    return result


@dataclass
class Plan:
    """The clock of one session: which hours each scenario uses, all closed and all generated."""

    now_hour: datetime
    week_end: datetime
    data_start: datetime

    def hours(self, first_back: int, last_back: int) -> list[datetime]:
        """Hours ``first_back``..``last_back`` hours before the current hour, oldest first."""
        return [self.now_hour - timedelta(hours=h) for h in range(first_back, last_back - 1, -1)]


def make_plan(now: datetime) -> Plan:
    from fraud_assets.demo import last_week_end

    now_hour = now.replace(minute=0, second=0, microsecond=0)
    week_end = last_week_end(now)
    # A week to train on plus a day of warm-up history before it.
    data_start = (week_end - timedelta(days=8)).replace(hour=0)
    return Plan(now_hour=now_hour, week_end=week_end, data_start=data_start)


@dataclass
class System:
    """Folders, environment and the ``dagster dev`` process group of one end-to-end session."""

    root: Path
    plan: Plan
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path = field(init=False)
    seed_result: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home = self.root / "dagster_home"
        self.data = self.root / "data"
        self.models = self.root / "models"
        self.intermediate = self.root / "intermediate"
        for folder in (self.home, self.data, self.models, self.intermediate):
            folder.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text(INSTANCE_YAML)
        self.log_path = self.root / "dagster_dev.log"
        self.dsn = f"chdb://{self.data / 'clickhouse'}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def graphql(self) -> GraphQL:
        return GraphQL(f"{self.base_url}/graphql")

    def env(self) -> dict[str, str]:
        """The caller's environment without any project or Dagster setting, plus this session's."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("FRAUD_", "CLICKHOUSE_", "DAGSTER_"))
        }
        env.update(
            DAGSTER_HOME=str(self.home),
            FRAUD_DATA_DIR=str(self.data),
            FRAUD_MODEL_DIR=str(self.models),
            FRAUD_INTERMEDIATE_DIR=str(self.intermediate),
            FRAUD_PARTITIONS_START=self.plan.data_start.strftime("%Y-%m-%d"),
            FRAUD_EMBEDDED_LOCK_TIMEOUT_S="300",
            TF_CPP_MIN_LOG_LEVEL="2",
            PYTHONUNBUFFERED="1",
            PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        return env

    # -- commands -----------------------------------------------------------------

    def run_command(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
        """A command as a user types it in the repository root; fails with its output."""
        started = time.monotonic()
        try:
            result = subprocess.run(
                list(args),
                cwd=REPO_ROOT,
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"`{' '.join(args)}` did not finish in {timeout_s:.0f}s\n{_tail(exc.stdout)}"
                f"\n{_tail(exc.stderr)}"
            ) from None
        if result.returncode != 0:
            raise AssertionError(
                f"`{' '.join(args)}` exited {result.returncode} after "
                f"{time.monotonic() - started:.0f}s\nstdout:\n{_tail(result.stdout)}\n"
                f"stderr:\n{_tail(result.stderr)}\nserver log:\n{self.log_tail()}"
            )
        return result

    def seed(self, users: int = 300, epochs: int = 2) -> dict[str, Any]:
        """Transactions up to the current hour and a promoted bundle, before the server starts."""
        self.run_command(
            str(VENV_BIN / "fraud-assets"),
            "generate",
            "--start",
            self.plan.data_start.isoformat(),
            "--end",
            self.plan.now_hour.isoformat(),
            "--users",
            str(users),
            "--seed",
            "7",
        )
        trained = self.run_command(
            sys.executable,
            "-m",
            "fraud_assets_tests.e2e.seed_models",
            "--week-end",
            self.plan.week_end.isoformat(),
            "--epochs",
            str(epochs),
            timeout_s=600,
        )
        return json.loads(trained.stdout.strip().splitlines()[-1])

    # -- the server ---------------------------------------------------------------

    def start(self, timeout_s: float = 180) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                str(VENV_BIN / "dagster"),
                "dev",
                "-w",
                "workspace.yaml",
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
            ],
            cwd=REPO_ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout_s

        def remaining() -> float:
            return max(1.0, deadline - time.monotonic())

        wait_for(
            self._server_info, remaining(), "the webserver's /server_info", on_timeout=self.log_tail
        )
        wait_for(self._location_loaded, remaining(), "the code location", on_timeout=self.log_tail)
        wait_for(self._daemons_healthy, remaining(), "daemon heartbeats", on_timeout=self.log_tail)

    def _server_info(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"dagster dev exited with {self.process.returncode}\n{self.log_tail()}"
            )
        with urllib.request.urlopen(f"{self.base_url}/server_info", timeout=5) as response:
            return response.status == 200

    def _location_loaded(self) -> bool:
        data = self.graphql(
            """{ workspaceOrError { __typename ... on Workspace { locationEntries {
                name loadStatus locationOrLoadError { __typename ... on PythonError { message } }
            } } } }"""
        )
        entries = data["workspaceOrError"]["locationEntries"]
        for entry in entries:
            error = entry["locationOrLoadError"] or {}
            if error.get("__typename") == "PythonError":
                raise AssertionError(f"code location failed to load: {error['message']}")
        return bool(entries) and all(entry["loadStatus"] == "LOADED" for entry in entries)

    def daemon_statuses(self) -> dict[str, bool]:
        data = self.graphql(
            "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"
        )
        return {
            status["daemonType"]: status["healthy"]
            for status in data["instance"]["daemonHealth"]["allDaemonStatuses"]
            if status["required"]
        }

    def _daemons_healthy(self) -> bool:
        statuses = self.daemon_statuses()
        return bool(statuses) and all(statuses.values())

    def stop(self, grace_s: float = 30) -> list[str]:
        """Ctrl-C the process group, then escalate; returns processes that outlived it."""
        if self.process is None:
            return []
        group = self.process.pid
        for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, sig)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and _group_alive(group):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=0.5)
            if not _group_alive(group):
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self.process = None
        return self.stray_processes()

    def stray_processes(self) -> list[str]:
        """Processes of this user that still carry this session's DAGSTER_HOME."""
        marker = f"DAGSTER_HOME={self.home}".encode()
        strays = []
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
                continue
            try:
                environ = (pid_dir / "environ").read_bytes()
                if marker not in environ.split(b"\0"):
                    continue
                if (pid_dir / "stat").read_text().split(") ")[-1].startswith("Z"):
                    continue  # a zombie is already dead; its parent reaps it
                cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            strays.append(f"{pid_dir.name}: {cmdline[:200]}")
        return strays

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        kept = [
            line
            for line in text.splitlines()
            if "Warning:" not in line and not line.startswith("  ")
        ]
        return "\n".join(kept[-lines:])

    # -- runs -----------------------------------------------------------------------

    def run(self, run_id: str) -> dict[str, Any]:
        data = self.graphql(
            """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run {
                runId status startTime endTime tags { key value }
            } } }""",
            id=run_id,
        )
        return expect_type(data["runOrError"], "Run")

    def wait_run(self, run_id: str, timeout_s: float = 420) -> dict[str, Any]:
        def finished():
            run = self.run(run_id)
            return run if run["status"] in TERMINAL_RUN_STATUSES else None

        run = wait_for(finished, timeout_s, f"run {run_id}", on_timeout=self.log_tail)
        if run["status"] != "SUCCESS":
            raise AssertionError(
                f"run {run_id} ended {run['status']}\n{self.run_failures(run_id)}\n{self.log_tail()}"
            )
        return run

    def run_failures(self, run_id: str) -> str:
        data = self.graphql(
            """query($id: ID!) { logsForRun(runId: $id) { __typename ... on EventConnection {
                events { __typename ... on MessageEvent { message }
                         ... on ExecutionStepFailureEvent { stepKey error { message } } } } } }""",
            id=run_id,
        )
        events = data["logsForRun"].get("events", [])
        failures = [
            f"{e.get('stepKey')}: {(e.get('error') or {}).get('message', e.get('message'))}"
            for e in events
            if e["__typename"] in ("ExecutionStepFailureEvent", "RunFailureEvent")
        ]
        return "\n".join(failures) or "(no failure events)"

    def runs(self, **filter_: Any) -> list[dict[str, Any]]:
        data = self.graphql(
            """query($filter: RunsFilter) { runsOrError(filter: $filter) { __typename ... on Runs {
                results { runId status tags { key value } }
            } } }""",
            filter=filter_,
        )
        return expect_type(data["runsOrError"], "Runs")["results"]

    def wait_idle(self, timeout_s: float = 300) -> None:
        """No run queued or in flight (so the embedded database and the queue are quiet)."""
        wait_for(
            lambda: not self.runs(statuses=ACTIVE_RUN_STATUSES),
            timeout_s,
            "the run queue to drain",
            interval_s=2,
            on_timeout=self.log_tail,
        )

    def launch_run(
        self,
        tags: dict[str, str],
        run_config: dict[str, Any] | None = None,
        job: str = SCORING_JOB,
    ) -> str:
        data = self.graphql(
            """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
                __typename
                ... on LaunchRunSuccess { run { runId } }
                ... on PythonError { message stack }
                ... on RunConfigValidationInvalid { errors { message } }
                ... on InvalidSubsetError { message }
            } }""",
            params={
                "selector": {**repository_selector(), "jobName": job},
                "runConfigData": run_config or {},
                "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
            },
        )
        return expect_type(data["launchRun"], "LaunchRunSuccess")["run"]["runId"]


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies keep the group "alive" for kill(0); only count processes still running.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(") ")[-1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


def _tail(text: str | bytes | None, lines: int = 40) -> str:
    if not text:
        return ""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def clickhouse_client(system: System) -> Iterator[Any]:
    """The session's embedded database from the test process, for one unit of I/O."""
    from fraud_assets.clickhouse import connect
    from fraud_assets.settings import DEFAULT_DATABASE

    with connect(system.dsn, DEFAULT_DATABASE) as client:
        yield client


_COUNTS_SQL = """
SELECT hour, sum(arrived) AS arrived, sum(scored) AS scored, sum(quarantined) AS quarantined
FROM (
    SELECT toStartOfHour(timestamp) AS hour, count() AS arrived, 0 AS scored, 0 AS quarantined
    FROM crypto_transactions
    WHERE timestamp >= {start:DateTime('UTC')} AND timestamp < {end:DateTime('UTC')} GROUP BY hour
    UNION ALL
    SELECT toStartOfHour(timestamp), 0, count(), 0 FROM detected_anomalies_ensemble
    WHERE timestamp >= {start:DateTime('UTC')} AND timestamp < {end:DateTime('UTC')} GROUP BY 1
    UNION ALL
    SELECT toStartOfHour(timestamp), 0, 0, count() FROM quarantined_transactions
    WHERE timestamp >= {start:DateTime('UTC')} AND timestamp < {end:DateTime('UTC')} GROUP BY 1
)
GROUP BY hour ORDER BY hour
"""


@dataclass(frozen=True)
class HourCounts:
    arrived: int
    scored: int
    quarantined: int

    @property
    def complete(self) -> bool:
        """Every transaction of the hour was scored or quarantined, exactly once."""
        return self.arrived > 0 and self.scored + self.quarantined == self.arrived


def hour_counts(system: System, hours: list[datetime]) -> dict[str, HourCounts]:
    start, end = min(hours), max(hours) + timedelta(hours=1)
    with clickhouse_client(system) as client:
        rows = client.query(_COUNTS_SQL, parameters={"start": start, "end": end}).result_rows
    found = {hour_key(row[0]): HourCounts(*map(int, row[1:])) for row in rows}
    return {hour_key(h): found.get(hour_key(h), HourCounts(0, 0, 0)) for h in hours}
