"""Secrets and access: credentials only from the environment, never shown; SQL not injectable.

* A ClickHouse-like HTTP server on loopback refuses the password (and, in the
  worst case, echoes it back): the error, its traceback, the log records, the
  run's events, its config and the job snapshot Dagit shows hold no password.
  An authentication failure is permanent: the step fails once, without retries.
* With CLICKHOUSE_URL set, every ClickHouse resource and IO manager takes the
  DSN as ``EnvVar('CLICKHOUSE_URL')``; no tracked file holds a credential.
* Hostile values — quotes, semicolons, comments, backticks — as registry
  versions, static partition keys, database names and hourly partition keys
  reach ClickHouse only as bound parameters, escaped literals or quoted
  identifiers: each test would fail if the value were interpolated.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import threading
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import polars as pl
import pytest

from fraud_assets import registry
from fraud_assets.clickhouse import ClickHouseResource, connect
from fraud_assets.clickhouse.errors import PermanentClickHouseError, is_transient
from fraud_assets.io import ClickHousePolarsIOManager
from fraud_assets_tests.reliability_support import REPO, hour_key

PASSWORD = "s3cr3t-P@ss;w0rd'--"
USER = "fraud_app"
HOSTILE = [
    "x' OR '1'='1",
    "k') OR 1=1 OR ('a'='a",
    "'; DROP TABLE crypto_transactions; --",
    "v1\\' OR 1=1 -- ",
    "a/* comment */b",
    "back`tick`; DROP DATABASE analytics; --",
]


class _ClickHouseRefusingAuth(BaseHTTPRequestHandler):
    """Answers like ClickHouse does to a wrong password; ``echo`` also reflects the credentials."""

    echo = False

    def _refuse(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = (
            f"Code: 516. DB::Exception: {USER}: Authentication failed: password is incorrect, or "
            "there is no user with such name. (AUTHENTICATION_FAILED) (version 25.8.1.1)"
        )
        if self.echo:
            body += f" received key={self.headers.get('X-ClickHouse-Key')} auth={self.headers.get('Authorization')} path={self.path}"
        payload = body.encode()
        self.send_response(516)
        self.send_header("X-ClickHouse-Exception-Code", "516")
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _refuse

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture(params=[False, True], ids=["refuses", "refuses_and_echoes"])
def refusing_server(request) -> Iterator[str]:
    handler = type("Handler", (_ClickHouseRefusingAuth,), {"echo": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def assert_no_secret(text: str) -> None:
    basic_auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for form in (PASSWORD, quote(PASSWORD, safe=""), basic_auth):
        assert form not in text


def test_wrong_password_error_does_not_echo_it(refusing_server: str, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PermanentClickHouseError) as refused, connect(refusing_server, "analytics"):
        pass
    message = str(refused.value)
    assert "516" in message and f"{USER}:***@127.0.0.1" in message
    assert refused.value.allow_retries is False
    assert_no_secret(message)
    assert_no_secret("".join(traceback.format_exception(refused.value)))
    assert_no_secret("\n".join(r.getMessage() for r in caplog.records))


def test_unreachable_server_error_is_transient_and_redacted():
    dsn = f"http://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:9"  # discard port: refused
    with pytest.raises(ConnectionError) as refused, connect(dsn, "analytics"):
        pass
    assert is_transient(refused.value)
    assert_no_secret(str(refused.value))
    assert_no_secret("".join(traceback.format_exception(refused.value)))


def test_credentials_come_from_the_environment_only(monkeypatch: pytest.MonkeyPatch):
    from fraud_assets.resources import default_resources

    monkeypatch.setenv("CLICKHOUSE_URL", f"http://{USER}:{PASSWORD}@clickhouse:8123")
    resources = default_resources()
    for key in ("clickhouse", "clickhouse_io_manager", "polars_io_manager"):
        assert isinstance(resources[key].dsn, dg.EnvVar), key
        assert resources[key].dsn == "CLICKHOUSE_URL"


def test_a_run_with_a_refused_password_shows_it_nowhere(
    refusing_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """What Dagit shows of a run: its events, config, tags and job snapshot."""
    from dagster._serdes import serialize_value

    from fraud_assets.assets import scoring
    from fraud_assets.resources import default_resources

    monkeypatch.setenv("CLICKHOUSE_URL", refusing_server)
    monkeypatch.setenv("FRAUD_DATA_DIR", str(tmp_path))
    defs = dg.Definitions.merge(scoring.defs, dg.Definitions(resources=default_resources()))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("ensemble_anomaly_detection").execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": "2026-03-01-02:00",
                "dagster/asset_partition_range_end": "2026-03-01-02:00",
            },
            raise_on_error=False,
        )
        assert not result.success
        failed = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert [e.step_key for e in failed] == ["extract_transactions"]
        assert "AUTHENTICATION_FAILED" in failed[0].event_specific_data.error.message
        assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        run = instance.get_run_by_id(result.run_id)
        shown = [
            serialize_value(instance.all_logs(result.run_id)),
            serialize_value(run),
            serialize_value(instance.get_job_snapshot(run.job_snapshot_id)),
        ]
    for text in shown:
        assert_no_secret(text)


def test_no_credentials_in_tracked_files():
    import re

    files = subprocess.run(
        ["git", "ls-files", "fraud_assets", "docker", "sql", "README.md", "pyproject.toml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    url_with_password = re.compile(r"[a-z]+://[^\s/:@'\"]+:(?![$*{<])[^\s/@'\"]+@")
    for name in files:
        path = REPO / name
        if path.suffix in {".py", ".yml", ".yaml", ".sql", ".md", ".toml", ".example"}:
            hits = url_with_password.findall(path.read_text(errors="replace"))
            assert not hits, f"{name} holds a URL with a literal password: {hits}"
    assert "docker/.env" in (REPO / ".gitignore").read_text().split()


# ---------------------------------------------------------------- SQL injection


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_registry_versions_match_nothing_and_change_nothing(
    clickhouse: ClickHouseResource, value: str
):
    record = registry.ModelRecord(
        model_type="isolation_forest",
        version="v1",
        trained_at=datetime(2026, 3, 1, tzinfo=UTC),
        training_samples=10,
        model_path="m/v1",
        scaler_path="s/v1",
        model_sha256="0" * 64,
    )
    with clickhouse.get_client() as client:
        registry.register(client, [record])
        assert registry.get_version(client, value) == {}  # interpolated: every row matches
        registry.set_status(client, value, registry.ARCHIVED, value)
        with pytest.raises(ValueError, match="incomplete"):
            registry.promote(client, value, value)
        rows = client.query("SELECT version, status FROM model_registry FINAL").result_rows
        assert rows == [("v1", registry.TESTING)]
        assert client.command("EXISTS TABLE crypto_transactions") == 1


def test_hostile_static_partition_keys_select_only_their_own_rows(clickhouse_dsn: str, tmp_path):
    keys = ["plain", *HOSTILE]
    partitions = dg.StaticPartitionsDefinition(keys)

    @dg.asset(partitions_def=partitions, metadata={"partition_expr": "key"})
    def hostile_rows(context) -> pl.DataFrame:
        key = context.partition_key
        return pl.DataFrame({"key": [key, key], "n": [len(key), 1]})

    resources = {"io_manager": ClickHousePolarsIOManager(dsn=clickhouse_dsn)}
    with dg.instance_for_test() as instance:
        for key in keys:  # every partition written, then each hostile one written again
            assert dg.materialize(
                [hostile_rows], partition_key=key, resources=resources, instance=instance
            ).success
        for key in HOSTILE:
            assert dg.materialize(
                [hostile_rows], partition_key=key, resources=resources, instance=instance
            ).success
    with connect(clickhouse_dsn, "analytics") as client:
        rows = client.query("SELECT key, count() FROM hostile_rows GROUP BY key").result_rows
        assert dict(rows) == dict.fromkeys(keys, 2)
        assert client.command("EXISTS TABLE crypto_transactions") == 1
        assert client.command("EXISTS DATABASE analytics") == 1


def test_hostile_database_name_is_one_literal_identifier(clickhouse_dsn: str):
    hostile = "analytics`; DROP DATABASE analytics; --"
    with connect(clickhouse_dsn, "analytics") as client:
        client.command("CREATE TABLE IF NOT EXISTS keep (x UInt8) ENGINE = Memory")
    resource = ClickHouseResource(dsn=clickhouse_dsn, database=hostile)
    with resource.get_client() as client:
        assert client.command("SELECT currentDatabase()") == hostile
        assert client.command("EXISTS TABLE crypto_transactions") == 1  # migrated there
    with connect(clickhouse_dsn, "analytics") as client:
        assert client.command("EXISTS TABLE analytics.keep") == 1


def test_hostile_hourly_partition_keys_are_refused_before_any_query(
    clickhouse: ClickHouseResource, tmp_path: Path
):
    from fraud_assets.assets import scoring
    from fraud_assets.io.intermediate import IntermediateFrameIOManager
    from fraud_assets.notify import NotifierResource

    with clickhouse.get_client() as client:
        before = client.command("SELECT count() FROM system.tables WHERE database = 'analytics'")
    defs = dg.Definitions.merge(
        scoring.defs,
        dg.Definitions(
            resources={
                "clickhouse": clickhouse,
                "polars_io_manager": ClickHousePolarsIOManager(dsn=clickhouse.dsn),
                "intermediate_io_manager": IntermediateFrameIOManager(root=str(tmp_path)),
                "notifier": NotifierResource(),
            }
        ),
    )
    job = defs.resolve_job_def("ensemble_anomaly_detection")
    valid = hour_key(datetime(2026, 3, 1, 2, tzinfo=UTC))
    for value in HOSTILE:
        with pytest.raises(Exception, match="(?i)partition|does not match format"):
            job.execute_in_process(
                tags={
                    "dagster/asset_partition_range_start": f"{valid}{value}",
                    "dagster/asset_partition_range_end": f"{valid}{value}",
                }
            )
    with clickhouse.get_client() as client:
        after = client.command("SELECT count() FROM system.tables WHERE database = 'analytics'")
        assert after == before and client.command("EXISTS TABLE crypto_transactions") == 1
