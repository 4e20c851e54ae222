"""The ClickHouse layer on the real embedded engine: schema, migrations, process safety."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from fraud_assets.clickhouse import ClickHouseResource, EmbeddedBusyError, connect, redact_dsn
from fraud_assets.clickhouse import client as client_module
from fraud_assets.clickhouse.client import embedded_path
from fraud_assets.clickhouse.migrations import apply_migrations, discover

SEED_COLUMNS = {
    "sensor_data": ["timestamp", "sensor_id", "temperature", "humidity", "pressure"],
    "staging_normalized_data": [
        "run_id", "timestamp", "sensor_id", "temperature_norm", "humidity_norm",
        "pressure_norm", "created_at",
    ],
    "detected_anomalies": [
        "run_id", "dag_id", "execution_time", "timestamp", "sensor_id", "temperature",
        "humidity", "pressure", "anomaly_score", "threshold", "anomaly_type", "model_version",
        "detected_at",
    ],
    "crypto_transactions": [
        "transaction_id", "timestamp", "user_id", "amount", "currency", "transaction_type",
        "user_avg_amount", "user_total_transactions", "user_account_age_days", "wallet_address",
        "wallet_age_days", "wallet_total_volume", "hour_of_day", "day_of_week", "ip_country",
        "device_type", "time_since_last_transaction", "transactions_last_hour",
        "transactions_last_24h", "created_at",
    ],
    "model_registry": [
        "model_id", "model_type", "version", "trained_at", "training_samples", "precision",
        "recall", "f1_score", "threshold", "model_path", "scaler_path", "status", "created_at",
    ],
    "detected_anomalies_ensemble": [
        "run_id", "transaction_id", "timestamp", "user_id", "amount", "statistical_risk",
        "statistical_flags", "isolation_score", "isolation_prediction", "reconstruction_error",
        "autoencoder_prediction", "latent_features", "total_risk_score", "final_decision",
        "model_version", "detected_at",
    ],
    "daily_model_performance": [
        "date", "model_type", "total_predictions", "anomalies_detected", "false_positives",
        "false_negatives", "avg_latency_ms", "max_latency_ms", "threshold_used", "created_at",
    ],
    "transaction_labels": ["transaction_id", "is_fraud", "fraud_type", "labeled_at", "source"],
}  # fmt: skip


def test_every_seed_table_exists_with_the_seed_columns(clickhouse: ClickHouseResource):
    with clickhouse.get_client() as client:
        for table, expected in SEED_COLUMNS.items():
            columns = [row[0] for row in client.query(f"DESCRIBE TABLE {table}").result_rows]
            missing = [c for c in expected if c not in columns]
            assert not missing, f"{table} lacks seed columns {missing}"


def test_seed_types_that_matter_are_faithful(clickhouse: ClickHouseResource):
    with clickhouse.get_client() as client:
        types = dict(
            client.query(
                "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
                "AND table = 'detected_anomalies_ensemble'"
            ).result_rows
        )
    assert types["statistical_flags"] == "Array(String)"
    assert types["latent_features"] == "Array(Float32)"
    assert types["isolation_prediction"] == "Int8"
    assert types["timestamp"] == "DateTime('UTC')"


def test_migrations_twice_is_a_noop(clickhouse_dsn: str):
    with connect(clickhouse_dsn, "analytics") as client:
        first = apply_migrations(client)
        second = apply_migrations(client)
        recorded = client.query("SELECT count() FROM schema_migrations FINAL").result_rows[0][0]
    assert [m.name for m in discover()] == first
    assert second == []
    assert recorded == len(first)


def test_cli_db_init_twice_is_a_noop(tmp_path: Path):
    env = {"FRAUD_DATA_DIR": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    cmd = [sys.executable, "-m", "fraud_assets.cli", "db", "init"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert "applied" in first.stdout and "crypto_transactions" in first.stdout
    assert "up to date" in second.stdout


_WORKER = textwrap.dedent(
    """
    import sys, time
    from fraud_assets.clickhouse import connect
    dsn, name = sys.argv[1], sys.argv[2]
    for i in range(15):
        with connect(dsn, "analytics", lock_timeout_s=60) as client:
            client.command("CREATE TABLE IF NOT EXISTS writes (who String, i Int32) "
                           "ENGINE = MergeTree ORDER BY who")
            client.insert("writes", [[name, i]], column_names=["who", "i"])
            time.sleep(0.02)
        time.sleep(0.01)
    print("done", name)
    """
)


def test_two_processes_share_one_embedded_database(clickhouse_dsn: str):
    """Two processes write to the same chdb directory at once; both succeed, nothing is lost."""
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, clickhouse_dsn, name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    results = [w.communicate(timeout=180) for w in workers]
    for worker, (_out, err) in zip(workers, results, strict=True):
        assert worker.returncode == 0, err
    with connect(clickhouse_dsn, "analytics") as client:
        counts = dict(client.query("SELECT who, count() FROM writes GROUP BY who").result_rows)
    assert counts == {"a": 15, "b": 15}


def test_a_held_embedded_database_times_out_with_a_clear_error(clickhouse_dsn: str):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time\nfrom fraud_assets.clickhouse import connect\n"
            "with connect(sys.argv[1], 'analytics'):\n    print('held', flush=True)\n    time.sleep(30)",
            clickhouse_dsn,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(EmbeddedBusyError, match="is busy: process"),
            connect(clickhouse_dsn, "analytics", lock_timeout_s=0.5),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_nested_use_in_one_process_shares_the_client(clickhouse: ClickHouseResource):
    with clickhouse.get_client() as outer, clickhouse.get_client() as inner:
        assert outer is inner
        assert inner.query("SELECT 1").result_rows == [(1,)]


def test_consecutive_units_in_one_process_reuse_the_open_engine(clickhouse_dsn: str):
    with connect(clickhouse_dsn, "analytics") as first:
        pass
    with connect(clickhouse_dsn, "analytics") as second:
        assert second.query("SELECT 1").result_rows == [(1,)]
    assert first is second


@contextlib.contextmanager
def _held_by_another_thread(state, seconds: float):
    """Another thread holds ``state``'s lock from entry until ``seconds`` later (or exit)."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with state.mutex:
            held.set()
            release.wait(seconds)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    try:
        yield
    finally:
        release.set()
        holder.join()


def test_another_database_opens_while_a_thread_holds_the_lingering_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """chdb runs one engine per process. The lingering engine of the first database
    is closed before the second opens, even while another thread (the reaper checking
    it, here a stand-in holding its lock for 0.3 s) has it: the opener waits for it."""
    monkeypatch.setattr(client_module, "LINGER_S", 60.0)
    first, second = (f"chdb://{tmp_path / name}" for name in ("first", "second"))
    with connect(first, "analytics"):
        pass
    state = client_module._shared[embedded_path(first)]
    assert state.client is not None
    with _held_by_another_thread(state, seconds=0.3), connect(second, "analytics") as client:
        assert client.query("SELECT 1").result_rows == [(1,)]
    assert state.client is None


def test_at_exit_the_engine_is_closed_even_while_another_thread_holds_it(
    clickhouse_dsn: str, monkeypatch: pytest.MonkeyPatch
):
    """At exit only daemon threads are left, and the reaper may be closing the engine
    whose linger just ran out (a stand-in holds its lock for 0.3 s here). The exit hook
    waits for it instead of skipping it, so the process never unloads its libraries with
    an engine still open or half closed."""
    monkeypatch.setattr(client_module, "LINGER_S", 60.0)
    with connect(clickhouse_dsn, "analytics"):
        pass
    state = client_module._shared[embedded_path(clickhouse_dsn)]
    with _held_by_another_thread(state, seconds=0.3):
        client_module._close_at_exit()
    assert state.client is None and state.lock_fd is None


def test_a_database_held_in_use_by_another_thread_times_out_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(client_module, "LINGER_S", 60.0)
    first, second = (f"chdb://{tmp_path / name}" for name in ("first", "second"))
    inside, leave = threading.Event(), threading.Event()

    def use_first() -> None:
        with connect(first, "analytics"):
            inside.set()
            leave.wait(30)

    user = threading.Thread(target=use_first)
    user.start()
    inside.wait()
    try:
        with (
            pytest.raises(EmbeddedBusyError, match="one embedded database at a time"),
            connect(second, "analytics", lock_timeout_s=0.2),
        ):
            pass
    finally:
        leave.set()
        user.join()


_ASKER = textwrap.dedent(
    """
    import sys
    from fraud_assets.clickhouse import connect
    with connect(sys.argv[1], "analytics", lock_timeout_s=float(sys.argv[2])) as client:
        client.insert("asks", [["child"]], column_names=["who"])
    print("wrote")
    """
)


def test_a_lingering_engine_gives_way_to_a_process_that_asks(
    clickhouse_dsn: str, monkeypatch: pytest.MonkeyPatch
):
    """This process keeps the engine open after its unit (a 60 s linger here); another
    process waiting at most 5 s still gets it, because waiting asks the holder to close."""
    monkeypatch.setattr(client_module, "LINGER_S", 60.0)
    with connect(clickhouse_dsn, "analytics") as client:
        client.command("CREATE TABLE asks (who String) ENGINE = MergeTree ORDER BY who")
        client.insert("asks", [["parent"]], column_names=["who"])
    assert client_module._shared[embedded_path(clickhouse_dsn)].client is not None
    child = subprocess.run(
        [sys.executable, "-c", _ASKER, clickhouse_dsn, "5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    with connect(clickhouse_dsn, "analytics") as client:
        assert sorted(client.query("SELECT who FROM asks").result_columns[0]) == [
            "child",
            "parent",
        ]


def test_an_idle_engine_is_closed_for_processes_that_cannot_ask(
    clickhouse_dsn: str, monkeypatch: pytest.MonkeyPatch
):
    """After the linger the engine is closed, so even a bare chdb client can open it."""
    monkeypatch.setattr(client_module, "LINGER_S", 0.3)
    with connect(clickhouse_dsn, "analytics") as client:
        client.command("CREATE TABLE bare (n UInt8) ENGINE = MergeTree ORDER BY n")
    state = client_module._shared[embedded_path(clickhouse_dsn)]
    deadline = time.monotonic() + 30
    while state.client is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.client is None
    bare = (
        "import sys, clickhouse_connect\n"
        "client = clickhouse_connect.get_client(dsn='chdb://' + sys.argv[1])\n"
        "client.insert('analytics.bare', [[7]], column_names=['n'])\n"
    )
    path = str(embedded_path(clickhouse_dsn))
    child = subprocess.run(
        [sys.executable, "-c", bare, path], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr
    with connect(clickhouse_dsn, "analytics") as client:
        assert client.query("SELECT n FROM bare").result_rows == [(7,)]


def test_redact_dsn_hides_the_password():
    assert (
        redact_dsn("http://fraud:s3cret@ch:8123/analytics") == "http://fraud:***@ch:8123/analytics"
    )
    assert redact_dsn("chdb:///tmp/x") == "chdb:///tmp/x"


def test_wrong_password_error_does_not_echo_it():
    dsn = "http://fraud:Sup3rSecretPw@127.0.0.1:9/analytics"
    with pytest.raises(ConnectionError) as err, connect(dsn, "analytics"):
        pass
    assert "Sup3rSecretPw" not in str(err.value)
    assert "***" in str(err.value)


def test_dagster_definitions_validate_from_the_repository_root(tmp_path: Path):
    """`[tool.dagster]` in pyproject.toml points the CLI at fraud_assets.definitions."""
    from fraud_assets import settings

    env = {
        "PATH": str(Path(sys.executable).parent),
        "DAGSTER_HOME": str(tmp_path),
        "FRAUD_DATA_DIR": str(tmp_path / "data"),
        "FRAUD_MODEL_DIR": str(tmp_path / "models"),
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate"],
        cwd=settings.PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All code locations passed validation" in result.stderr + result.stdout
