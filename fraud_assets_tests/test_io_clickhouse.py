"""The ClickHouse IO managers, through real ``dg.materialize`` runs on the embedded engine.

Covers the cases of Dagster's own suite for database IO managers (time-window,
static, multi and dynamic partitions, self-dependent assets, quoted
identifiers, column selection, unsupported types, ``None`` outputs) plus the
project's contract: typed tables from sql/, a 24-hour single-run window,
faithful types, exact slice replacement and crash repair. Every case that
writes through an IO manager runs twice, once per way of inserting
(``insert_path``).
"""

import math
from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from fraud_assets.clickhouse import connect
from fraud_assets.io import (
    ClickHousePandasIOManager,
    ClickHousePolarsIOManager,
    IncompleteSliceError,
    arrow_tables,
)

DAILY = dg.DailyPartitionsDefinition(start_date="2025-03-01", timezone="UTC")
HOURLY = dg.HourlyPartitionsDefinition(start_date="2025-03-01-00:00", timezone="UTC")
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@pytest.fixture(params=["from_file", "arrow_stream"])
def insert_path(request, monkeypatch) -> str:
    """Both ways rows reach ClickHouse, each on the real engine: the embedded engine reads
    an Arrow file the process wrote; a server (the deployment's ``http://``) gets an
    ArrowStream request body, which the embedded client accepts the same way."""
    from_file = request.param == "from_file"
    monkeypatch.setattr(arrow_tables, "_reads_local_files", lambda client: from_file)
    return request.param


@pytest.fixture
def resources(clickhouse_dsn: str, insert_path: str) -> dict:
    return {
        "io_manager": ClickHousePandasIOManager(dsn=clickhouse_dsn),
        "polars_io_manager": ClickHousePolarsIOManager(dsn=clickhouse_dsn),
    }


def query(dsn: str, sql: str) -> list[tuple]:
    with connect(dsn, "analytics") as client:
        return client.query(sql).result_rows


def run(assets: list, resources: dict, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets, resources=resources, **kwargs)


def metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    events = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


# ------------------------------------------------------------------ partitions


@pytest.mark.parametrize("library", ["pandas", "polars"])
def test_time_window_partitions_rewrite_replaces_exactly_one_slice(
    resources, clickhouse_dsn, library
):
    @dg.asset(
        partitions_def=DAILY,
        metadata={"partition_expr": "time"},
        config_schema={"value": str},
        io_manager_key="io_manager" if library == "pandas" else "polars_io_manager",
    )
    def daily_values(context: dg.AssetExecutionContext):
        start = context.partition_time_window.start
        frame = pd.DataFrame(
            {
                "time": pd.date_range(start, periods=3, freq="h").astype("datetime64[us, UTC]"),
                "a": [context.op_execution_context.op_config["value"]] * 3,
                "b": [4, 5, 6],
            }
        )
        return frame if library == "pandas" else pl.from_pandas(frame)

    def materialize(day: str, value: str) -> dg.ExecuteInProcessResult:
        config = {"ops": {"daily_values": {"config": {"value": value}}}}
        return run([daily_values], resources, partition_key=day, run_config=config)

    materialize("2025-03-01", "1")
    materialize("2025-03-02", "2")
    result = materialize("2025-03-01", "3")

    rows = query(
        clickhouse_dsn, "SELECT toDate(time), a, count() FROM daily_values GROUP BY 1, 2 ORDER BY 1"
    )
    assert rows == [(datetime(2025, 3, 1).date(), "3", 3), (datetime(2025, 3, 2).date(), "2", 3)]
    metadata = metadata_of(result, "daily_values")
    assert metadata["dagster/row_count"] == 3
    assert metadata["rows_written"] == 3 and metadata["rows_replaced"] == 3
    assert metadata["dagster/table_name"] == "analytics.daily_values"
    assert [c.name for c in metadata["dagster/column_schema"].columns] == ["time", "a", "b"]
    assert "toDateTime('2025-03-01 00:00:00', 'UTC')" in metadata["Query"]
    assert query(clickhouse_dsn, metadata["Query"].replace("SELECT *", "SELECT count()")) == [(3,)]


def test_consecutive_materializations_of_a_partition_leave_one_copy(resources, clickhouse_dsn):
    @dg.asset(partitions_def=HOURLY, metadata={"partition_expr": "timestamp"})
    def hourly(context: dg.AssetExecutionContext) -> pd.DataFrame:
        start = context.partition_time_window.start
        return pd.DataFrame({"timestamp": [start, start + timedelta(minutes=30)], "x": [1.0, 2.0]})

    for _ in range(3):
        assert run([hourly], resources, partition_key="2025-03-01-05:00").success
    assert query(clickhouse_dsn, "SELECT count(), sum(x) FROM hourly") == [(2, 3.0)]
    # the earlier copies' parts were dropped whole, not left behind as masked rows
    parts = "SELECT count(), sum(rows) FROM system.parts WHERE table = 'hourly' AND active"
    assert query(clickhouse_dsn, parts) == [(1, 2)]


def test_static_partitions(resources, clickhouse_dsn):
    colors = dg.StaticPartitionsDefinition(["red", "yellow", "blue"])

    @dg.asset(partitions_def=colors, metadata={"partition_expr": "color"}, config_schema={"n": int})
    def by_color(context: dg.AssetExecutionContext) -> pd.DataFrame:
        n = context.op_execution_context.op_config["n"]
        return pd.DataFrame({"color": [context.partition_key] * n, "n": list(range(n))})

    @dg.asset(partitions_def=colors)
    def downstream(by_color: pd.DataFrame) -> None:
        assert set(by_color["color"]) == {"red"} and len(by_color) == 1

    for color, n in [("red", 2), ("yellow", 3), ("red", 1)]:
        config = {"ops": {"by_color": {"config": {"n": n}}}}
        assert run([by_color], resources, partition_key=color, run_config=config).success
    assert query(clickhouse_dsn, "SELECT color, count() FROM by_color GROUP BY 1 ORDER BY 1") == [
        ("red", 1),
        ("yellow", 3),
    ]
    assert run([by_color.to_source_asset(), downstream], resources, partition_key="red").success


def test_multi_partitions(resources, clickhouse_dsn):
    partitions = dg.MultiPartitionsDefinition(
        {"time": DAILY, "color": dg.StaticPartitionsDefinition(["red", "blue"])}
    )

    @dg.asset(
        partitions_def=partitions,
        metadata={"partition_expr": {"time": "time", "color": "color"}},
        config_schema={"value": int},
    )
    def multi(context: dg.AssetExecutionContext) -> pd.DataFrame:
        key = context.partition_key.keys_by_dimension
        start = pd.Timestamp(key["time"], tz="UTC")
        return pd.DataFrame(
            {
                "time": [start, start + pd.Timedelta(hours=1)],
                "color": [key["color"]] * 2,
                "value": [context.op_execution_context.op_config["value"]] * 2,
            }
        )

    for key, value in [
        (dg.MultiPartitionKey({"time": "2025-03-01", "color": "red"}), 1),
        (dg.MultiPartitionKey({"time": "2025-03-01", "color": "blue"}), 2),
        (dg.MultiPartitionKey({"time": "2025-03-02", "color": "red"}), 3),
        (dg.MultiPartitionKey({"time": "2025-03-01", "color": "red"}), 4),
    ]:
        config = {"ops": {"multi": {"config": {"value": value}}}}
        assert run([multi], resources, partition_key=key, run_config=config).success
    rows = query(
        clickhouse_dsn,
        "SELECT toDate(time), color, value, count() FROM multi GROUP BY ALL ORDER BY ALL",
    )
    day1, day2 = datetime(2025, 3, 1).date(), datetime(2025, 3, 2).date()
    assert rows == [(day1, "blue", 2, 2), (day1, "red", 4, 2), (day2, "red", 3, 2)]


def test_dynamic_partitions(resources, clickhouse_dsn):
    fruits = dg.DynamicPartitionsDefinition(name="fruits")

    @dg.asset(partitions_def=fruits, metadata={"partition_expr": "fruit"})
    def dynamic(context: dg.AssetExecutionContext) -> pd.DataFrame:
        return pd.DataFrame({"fruit": [context.partition_key] * 2, "weight": [1.5, 2.5]})

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("fruits", ["apple", "o'range"])
        for key in ["apple", "o'range", "apple"]:
            assert run([dynamic], resources, partition_key=key, instance=instance).success
    assert query(clickhouse_dsn, "SELECT fruit, count() FROM dynamic GROUP BY 1 ORDER BY 1") == [
        ("apple", 2),
        ("o'range", 2),
    ]


def test_self_dependent_asset_reads_its_previous_window(resources, clickhouse_dsn):
    @dg.asset(
        partitions_def=DAILY,
        ins={
            "cumulative": dg.AssetIn(
                partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1),
                metadata={"allow_missing_partitions": True},
            )
        },
        metadata={"partition_expr": "day"},
    )
    def cumulative(context: dg.AssetExecutionContext, cumulative: pd.DataFrame) -> pd.DataFrame:
        previous = int(cumulative["total"].iloc[0]) if len(cumulative) else 0
        if context.partition_key == "2025-03-01":
            assert cumulative.empty
        else:
            assert list(cumulative.columns) == ["day", "total"]
        day = pd.Timestamp(context.partition_key, tz="UTC")
        return pd.DataFrame({"day": [day], "total": [previous + 1]})

    for day in ["2025-03-01", "2025-03-02", "2025-03-03"]:
        assert run([cumulative], resources, partition_key=day).success
    assert query(clickhouse_dsn, "SELECT total FROM cumulative ORDER BY day") == [(1,), (2,), (3,)]


def test_single_run_window_of_24_hours_writes_and_reads_all_hours(resources, clickhouse_dsn):
    @dg.asset(
        partitions_def=HOURLY,
        backfill_policy=dg.BackfillPolicy.single_run(),
        metadata={"partition_expr": "timestamp"},
    )
    def hourly_events(context: dg.AssetExecutionContext) -> pl.DataFrame:
        window = context.partition_time_window
        hours = int((window.end - window.start).total_seconds() // 3600)
        times = [
            window.start + timedelta(hours=h, minutes=m) for h in range(hours) for m in (0, 30)
        ]
        return pl.DataFrame({"timestamp": times, "hour": [t.hour for t in times]}).with_columns(
            pl.col("timestamp").cast(pl.Datetime("us", "UTC"))
        )

    @dg.asset(partitions_def=DAILY, io_manager_key="polars_io_manager")
    def daily_rollup(hourly_events: pl.DataFrame) -> None:
        assert hourly_events.height == 48
        assert hourly_events["hour"].n_unique() == 24
        assert hourly_events.schema["timestamp"] == pl.Datetime("us", "UTC")

    polars_resources = {**resources, "io_manager": resources["polars_io_manager"]}
    tags = {RANGE_START: "2025-03-01-00:00", RANGE_END: "2025-03-01-23:00"}
    result = run([hourly_events], polars_resources, tags=tags)
    assert result.success
    assert metadata_of(result, "hourly_events")["dagster/row_count"] == 48
    # rewrite one hour inside the window: the other 23 hours are untouched
    assert run([hourly_events], polars_resources, partition_key="2025-03-01-07:00").success
    assert query(clickhouse_dsn, "SELECT count(), uniqExact(hour) FROM hourly_events") == [(48, 24)]
    assert run(
        [hourly_events.to_source_asset(), daily_rollup],
        polars_resources,
        partition_key="2025-03-01",
    ).success


def test_empty_partition_loads_as_an_empty_frame_with_the_columns(resources, clickhouse_dsn):
    @dg.asset(partitions_def=HOURLY, metadata={"partition_expr": "timestamp"})
    def crypto_transactions(context: dg.AssetExecutionContext) -> pd.DataFrame:
        return transactions_frame(context.partition_time_window.start, rows=0)

    @dg.asset(partitions_def=HOURLY)
    def consumer(crypto_transactions: pd.DataFrame) -> None:
        assert crypto_transactions.empty
        assert "amount" in crypto_transactions.columns and len(crypto_transactions.columns) == 20
        assert str(crypto_transactions["timestamp"].dtype) == "datetime64[us, UTC]"
        assert str(crypto_transactions["hour_of_day"].dtype) == "int8"

    assert run([crypto_transactions, consumer], resources, partition_key="2025-03-01-03:00").success


# ------------------------------------------------------------------ identifiers, columns


def test_quoted_identifiers_and_column_selection(resources, clickhouse_dsn):
    odd = ["event time", "amount ($)", "1st-place", "select", "from", "a`b", "quote'd"]

    @dg.asset(partitions_def=DAILY, metadata={"partition_expr": "event time"})
    def odd_columns(context: dg.AssetExecutionContext) -> pd.DataFrame:
        start = pd.Timestamp(context.partition_key, tz="UTC")
        return pd.DataFrame(
            {
                "event time": [start, start + pd.Timedelta(hours=2)],
                "amount ($)": [1.5, 2.5],
                "1st-place": ["x", "y"],
                "select": [1, 2],
                "from": [True, False],
                "a`b": ["q", "r"],
                "quote'd": [0.5, 0.25],
            }
        )

    @dg.asset(
        partitions_def=DAILY,
        ins={"odd_columns": dg.AssetIn(metadata={"columns": ["select", "a`b", "event time"]})},
    )
    def selected(odd_columns: pd.DataFrame) -> None:
        assert list(odd_columns.columns) == ["select", "a`b", "event time"]
        assert sorted(odd_columns["select"]) == [1, 2]

    for _ in range(2):
        assert run([odd_columns], resources, partition_key="2025-03-01").success
    columns = [row[0] for row in query(clickhouse_dsn, "DESCRIBE TABLE odd_columns")]
    assert columns == odd
    assert query(clickhouse_dsn, "SELECT count() FROM odd_columns") == [(2,)]
    assert run(
        [odd_columns.to_source_asset(), selected], resources, partition_key="2025-03-01"
    ).success


def test_schema_metadata_picks_the_database(resources, clickhouse_dsn):
    @dg.asset(metadata={"schema": "scratch"})
    def elsewhere() -> pd.DataFrame:
        return pd.DataFrame({"a": [1, 2, 3]})

    result = run([elsewhere], resources)
    assert metadata_of(result, "elsewhere")["dagster/table_name"] == "scratch.elsewhere"
    assert query(clickhouse_dsn, "SELECT count() FROM scratch.elsewhere") == [(3,)]


# ------------------------------------------------------------------ errors


def test_unsupported_type_and_none_fail_clearly(resources):
    @dg.asset
    def not_a_frame() -> int:
        return 7

    @dg.asset
    def nothing():
        return None

    @dg.asset
    def bad_column() -> pd.DataFrame:
        return pd.DataFrame({"ok": [1, 2], "mixed": [{"a": 1}, "text"]})

    with pytest.raises(Exception, match="does not have a handler for type"):
        run([not_a_frame], resources)
    with pytest.raises(dg.DagsterInvariantViolationError, match="returned None"):
        run([nothing], resources)
    with pytest.raises(Exception, match="column 'mixed'"):
        run([bad_column], resources)


def test_typed_table_refuses_what_would_be_lost(resources, clickhouse_dsn):
    start = datetime(2025, 3, 1, 3, tzinfo=UTC)

    def attempt(frame: pd.DataFrame) -> None:
        @dg.asset(partitions_def=HOURLY, metadata={"partition_expr": "timestamp"})
        def crypto_transactions() -> pd.DataFrame:
            return frame

        run([crypto_transactions], resources, partition_key="2025-03-01-03:00")

    good = transactions_frame(start, rows=4)
    attempt(good)
    with pytest.raises(arrow_tables.TableSchemaError, match=r"no column\(s\) \['surprise'\]"):
        attempt(good.assign(surprise=1))
    with pytest.raises(arrow_tables.TableSchemaError, match="not Nullable"):
        attempt(good.assign(user_id=pd.Series(["u", None, "u", "u"], dtype="str")))
    with pytest.raises(arrow_tables.TableSchemaError, match="hour_of_day"):
        attempt(good.assign(hour_of_day=[300, 1, 2, 3]))
    with pytest.raises(arrow_tables.SliceError, match="outside the partition"):
        attempt(good.assign(timestamp=good["timestamp"] + pd.Timedelta(hours=1)))
    # every refusal happened before the slice was touched
    assert query(clickhouse_dsn, "SELECT count() FROM crypto_transactions") == [(4,)]


def test_crash_between_delete_and_insert_is_refused_on_load_and_repaired_by_rerun(
    resources, clickhouse_dsn, monkeypatch
):
    @dg.asset(partitions_def=HOURLY, metadata={"partition_expr": "timestamp"})
    def crypto_transactions(context: dg.AssetExecutionContext) -> pd.DataFrame:
        return transactions_frame(context.partition_time_window.start, rows=5)

    @dg.asset(partitions_def=HOURLY)
    def consumer(crypto_transactions: pd.DataFrame) -> None:
        assert len(crypto_transactions) == 5

    hour = "2025-03-01-04:00"
    assert run([crypto_transactions], resources, partition_key=hour).success

    def crash(*args, **kwargs):
        raise SystemError("process killed")

    with monkeypatch.context() as patch:
        patch.setattr(arrow_tables, "_insert", crash)
        with pytest.raises(SystemError):
            run([crypto_transactions], resources, partition_key=hour)
    assert query(clickhouse_dsn, "SELECT count() FROM crypto_transactions") == [(0,)]

    source = crypto_transactions.to_source_asset()
    with pytest.raises(IncompleteSliceError, match="never completed"):
        run([source, consumer], resources, partition_key=hour)
    # another hour is not affected
    assert run([crypto_transactions], resources, partition_key="2025-03-01-06:00").success
    assert run([source, consumer], resources, partition_key="2025-03-01-06:00").success
    # a rerun repairs the slice
    assert run([crypto_transactions], resources, partition_key=hour).success
    assert run([source, consumer], resources, partition_key=hour).success


def test_rows_outside_an_expression_slice_fail_the_step_and_mark_it_incomplete(
    resources, clickhouse_dsn
):
    @dg.asset(partitions_def=DAILY, metadata={"partition_expr": "toStartOfDay(ts)"})
    def by_expression(context: dg.AssetExecutionContext) -> pd.DataFrame:
        day = pd.Timestamp(context.partition_key, tz="UTC")
        return pd.DataFrame({"ts": [day, day + pd.Timedelta(days=1)], "v": [1, 2]})

    @dg.asset(partitions_def=DAILY)
    def reader(by_expression: pd.DataFrame) -> None:
        pass

    result = run([by_expression], resources, partition_key="2025-03-01", raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error
    assert "wrote 2 row(s) but the partition slice now holds 1" in str(failure)
    with pytest.raises(IncompleteSliceError):
        run([by_expression.to_source_asset(), reader], resources, partition_key="2025-03-01")


# ------------------------------------------------------------------ types


def test_types_survive_the_round_trip_in_a_table_from_sql(resources, clickhouse_dsn):
    start = datetime(2025, 3, 1, 2, tzinfo=UTC)
    frame = pd.DataFrame(
        {
            "run_id": ["r1", "r1"],
            "transaction_id": ["t1", "t2"],
            "timestamp": pd.Series([start, start + timedelta(minutes=5, seconds=7)]).astype(
                "datetime64[us, UTC]"
            ),
            "user_id": ["u1", "u2"],
            "amount": [12.5, float("nan")],
            "statistical_risk": np.array([0.5, 1.0], dtype=np.float32),
            "statistical_flags": [["large_amount", "new_wallet"], []],
            "isolation_score": np.array([0.1, 0.2], dtype=np.float32),
            "isolation_prediction": np.array([1, -1], dtype=np.int8),
            "reconstruction_error": np.array([0.3, 0.4], dtype=np.float32),
            "autoencoder_prediction": np.array([-1, 1], dtype=np.int8),
            "latent_features": [
                np.array([0.5, -1.25], dtype=np.float32),
                np.array([], dtype=np.float32),
            ],
            "total_risk_score": np.array([10.0, 90.0], dtype=np.float32),
            "final_decision": ["approved", "blocked"],
            "model_version": ["v1", "v1"],
        }
    )

    @dg.asset(partitions_def=HOURLY, metadata={"partition_expr": "timestamp"})
    def detected_anomalies_ensemble() -> pd.DataFrame:
        return frame

    @dg.asset(partitions_def=HOURLY)
    def check(detected_anomalies_ensemble: pd.DataFrame) -> None:
        back = detected_anomalies_ensemble.sort_values("transaction_id").reset_index(drop=True)
        assert str(back["timestamp"].dtype) == "datetime64[us, UTC]"
        assert back["timestamp"].tolist() == frame["timestamp"].tolist()
        assert back["isolation_prediction"].dtype == np.int8
        assert back["isolation_prediction"].tolist() == [1, -1]
        assert [list(x) for x in back["statistical_flags"]] == [["large_amount", "new_wallet"], []]
        assert [list(x) for x in back["latent_features"]] == [[0.5, -1.25], []]
        assert back["latent_features"][0].dtype == np.float32
        assert back["amount"][0] == 12.5 and math.isnan(back["amount"][1])
        assert back["statistical_risk"].dtype == np.float32
        # columns the frame lacked took their DEFAULT
        assert (back["detected_at"] > pd.Timestamp("2025-01-01", tz="UTC")).all()

    key = "2025-03-01-02:00"
    result = run([detected_anomalies_ensemble], resources, partition_key=key)
    assert "detected_at" in metadata_of(result, "detected_anomalies_ensemble")["columns_defaulted"]
    assert query(
        clickhouse_dsn, "SELECT countIf(isNaN(amount)) FROM detected_anomalies_ensemble"
    ) == [(1,)]
    assert run(
        [detected_anomalies_ensemble.to_source_asset(), check], resources, partition_key=key
    ).success


def test_nan_and_null_stay_apart(resources, clickhouse_dsn):
    @dg.asset(io_manager_key="polars_io_manager")
    def measurements() -> pl.DataFrame:
        return pl.DataFrame(
            {
                "x": [1.0, float("nan"), None],
                "n": pl.Series([1, None, 3], dtype=pl.Int8),
                "s": ["a", None, "c"],
                "when": pl.Series([datetime(2025, 3, 1, 1, 2, 3, 456789, tzinfo=UTC), None, None]),
            }
        )

    @dg.asset(io_manager_key="polars_io_manager")
    def polars_view(measurements: pl.DataFrame) -> None:
        back = measurements
        assert back["x"].is_nan().to_list() == [False, True, None]
        assert back["x"].is_null().to_list() == [False, False, True]
        assert back.schema["n"] == pl.Int8 and back["n"].to_list() == [1, None, 3]
        assert back.schema["when"] == pl.Datetime("us", "UTC")
        assert back["when"][0] == datetime(2025, 3, 1, 1, 2, 3, 456789, tzinfo=UTC)

    @dg.asset
    def pandas_view(measurements: pd.DataFrame) -> None:
        assert str(measurements["n"].dtype) == "Int8"  # nullable integers stay integers
        assert measurements["n"].isna().tolist() == [False, True, False]
        assert measurements["x"].isna().tolist() == [False, True, True]

    assert run([measurements, polars_view, pandas_view], resources).success
    assert query(
        clickhouse_dsn, "SELECT countIf(isNaN(x)), countIf(isNull(x)) FROM measurements"
    ) == [(1, 1)]
    types = dict(
        query(
            clickhouse_dsn,
            "SELECT name, type FROM system.columns WHERE table = 'measurements' AND database = 'analytics'",
        )
    )
    assert types == {
        "x": "Nullable(Float64)",
        "n": "Nullable(Int8)",
        "s": "Nullable(String)",
        "when": "Nullable(DateTime64(6, 'UTC'))",
    }


def test_pandas_nan_is_null_only_where_the_column_can_hold_null(resources, clickhouse_dsn):
    @dg.asset
    def pandas_floats() -> pd.DataFrame:
        return pd.DataFrame({"id": [1, 2, 3], "x": [1.0, np.nan, 3.0], "y": [1.0, 2.0, 3.0]})

    assert run([pandas_floats], resources).success
    # a new table: the frame has missing values, the column is Nullable and holds NULL
    assert query(clickhouse_dsn, "SELECT countIf(isNull(x)) FROM pandas_floats") == [(1,)]

    @dg.asset
    def pandas_floats_later() -> pd.DataFrame:
        return pd.DataFrame({"id": [1, 2], "y": [np.nan, 2.0]})

    with connect(clickhouse_dsn, "analytics") as client:
        client.command(
            "CREATE TABLE pandas_floats_later (id Int64, y Float64) ENGINE = MergeTree ORDER BY id"
        )
    assert run([pandas_floats_later], resources).success
    # a typed column that is not Nullable: NaN is kept as NaN, never turned into 0
    assert query(clickhouse_dsn, "SELECT countIf(isNaN(y)) FROM pandas_floats_later") == [(1,)]


def test_unpartitioned_asset_is_replaced_atomically_and_columns_can_widen(
    resources, clickhouse_dsn
):
    @dg.asset(config_schema={"n": int, "with_null": bool})
    def table_asset(context: dg.AssetExecutionContext) -> pl.DataFrame:
        n = context.op_execution_context.op_config["n"]
        values = [float(i) for i in range(n)]
        if context.op_execution_context.op_config["with_null"]:
            values[0] = None
        return pl.DataFrame({"i": list(range(n)), "v": values})

    polars_resources = {**resources, "io_manager": resources["polars_io_manager"]}
    for n, with_null in [(5, False), (3, False), (4, True)]:
        config = {"ops": {"table_asset": {"config": {"n": n, "with_null": with_null}}}}
        result = run([table_asset], polars_resources, run_config=config)
    assert metadata_of(result, "table_asset")["dagster/row_count"] == 4
    assert query(clickhouse_dsn, "SELECT count(), countIf(isNull(v)) FROM table_asset") == [(4, 1)]
    assert query(
        clickhouse_dsn, "SELECT count() FROM system.tables WHERE name LIKE 'table_asset%'"
    ) == [(1,)]


def test_arrow_types_map_to_faithful_clickhouse_types():
    from fraud_assets.io.clickhouse_types import arrow_type_for, clickhouse_type_for

    def ch(values, type_=None):
        return clickhouse_type_for("c", pa.chunked_array([pa.array(values, type=type_)]))

    assert ch([1, 2], pa.int8()) == "Int8"
    assert ch([1.0, None]) == "Nullable(Float64)"
    assert ch([[1.0], []], pa.list_(pa.float32())) == "Array(Float32)"
    assert ch([["a", None]], pa.list_(pa.string())) == "Array(Nullable(String))"
    assert ch(["a", "b"], pa.dictionary(pa.int8(), pa.string())) == "LowCardinality(String)"
    assert (
        ch([datetime(2025, 1, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC"))
        == "DateTime64(6, 'UTC')"
    )
    assert arrow_type_for("LowCardinality(Nullable(String))") == pa.string()
    assert arrow_type_for("DateTime('UTC')") == pa.timestamp("us", tz="UTC")
    assert arrow_type_for("Array(Array(Float32))") == pa.list_(pa.list_(pa.float32()))
    assert arrow_type_for("DateTime64(3, 'UTC')") == pa.timestamp("ms", tz="UTC")


# ------------------------------------------------------------------ helpers


def transactions_frame(start: datetime, rows: int) -> pd.DataFrame:
    """A small frame with every writable column of crypto_transactions except created_at."""
    times = pd.Series(
        [start + timedelta(minutes=i) for i in range(rows)], dtype="datetime64[us, UTC]"
    )
    return pd.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(rows)],
            "timestamp": times,
            "user_id": ["u"] * rows,
            "amount": [10.0] * rows,
            "currency": ["BTC"] * rows,
            "transaction_type": ["buy"] * rows,
            "user_avg_amount": [5.0] * rows,
            "user_total_transactions": np.full(rows, 3, dtype=np.int32),
            "user_account_age_days": np.full(rows, 10, dtype=np.int32),
            "wallet_address": ["w"] * rows,
            "wallet_age_days": np.full(rows, 1, dtype=np.int32),
            "wallet_total_volume": [1.0] * rows,
            "hour_of_day": np.full(rows, start.hour, dtype=np.int8),
            "day_of_week": np.full(rows, start.weekday(), dtype=np.int8),
            "ip_country": ["US"] * rows,
            "device_type": ["mobile"] * rows,
            "time_since_last_transaction": [1.0] * rows,
            "transactions_last_hour": np.ones(rows, dtype=np.int32),
            "transactions_last_24h": np.ones(rows, dtype=np.int32),
        }
    )
