"""The intermediate store: one Parquet file per hour, whole or column-projected loads."""

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
from polars.testing import assert_frame_equal

from fraud_assets.io.intermediate import IntermediateFrameIOManager
from fraud_assets.partitions import hourly_partitions

FIRST = datetime(2026, 3, 29, 2, tzinfo=UTC)
HOURS = ["2026-03-29-02:00", "2026-03-29-03:00"]


def _frame() -> pl.DataFrame:
    """Two hours of rows with the column types the scoring graph passes on."""
    times = [FIRST + timedelta(minutes=20 * i) for i in range(6)]
    return pl.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(6)],
            "timestamp": pl.Series(times, dtype=pl.Datetime("us", "UTC")),
            "risk": pl.Series([float(i) for i in range(6)], dtype=pl.Float32),
            "flags": [["a"], [], ["a", "b"], [], ["b"], []],
            "latent": pl.Series([[0.5, 1.5]] * 6, dtype=pl.List(pl.Float32)),
        }
    )


_hourly = {"partitions_def": hourly_partitions, "backfill_policy": dg.BackfillPolicy.single_run()}
_seen: dict[str, pl.DataFrame] = {}


@dg.asset(**_hourly, io_manager_key="frames", metadata={"partition_expr": "timestamp"})
def scores(context: dg.AssetExecutionContext) -> pl.DataFrame:
    window = context.partition_time_window
    frame = _frame()
    return frame.filter((pl.col("timestamp") >= window.start) & (pl.col("timestamp") < window.end))


@dg.asset(**_hourly, io_manager_key="frames", metadata={"partition_expr": "timestamp"})
def everything(scores: pl.DataFrame) -> pl.DataFrame:
    _seen["everything"] = scores
    return scores


@dg.asset(
    **_hourly,
    io_manager_key="frames",
    metadata={"partition_expr": "timestamp"},
    ins={"scores": dg.AssetIn(metadata={"columns": ["transaction_id", "timestamp", "risk"]})},
)
def projected(scores: pl.DataFrame) -> pl.DataFrame:
    _seen["projected"] = scores
    return scores


def _materialize(root: Path, selection, **config) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [scores, everything, projected],
        selection=selection,
        resources={"frames": IntermediateFrameIOManager(root=str(root), **config)},
        tags={
            "dagster/asset_partition_range_start": HOURS[0],
            "dagster/asset_partition_range_end": HOURS[1],
        },
    )


def test_a_range_is_stored_as_one_file_per_hour_and_loaded_whole(tmp_path: Path):
    result = _materialize(tmp_path, [scores, everything])
    assert result.success
    files = sorted(p.name for p in (tmp_path / "scores").iterdir())
    assert files == [f"{key.replace(':', '_')}.parquet" for key in HOURS]
    one_hour = pl.read_parquet(tmp_path / "scores" / files[0])
    assert one_hour.height == 3
    assert_frame_equal(_seen["everything"].sort("transaction_id"), _frame())


def test_an_input_with_columns_loads_only_those(tmp_path: Path):
    assert _materialize(tmp_path, [scores, projected]).success
    assert _seen["projected"].columns == ["transaction_id", "timestamp", "risk"]
    assert_frame_equal(
        _seen["projected"].sort("transaction_id"),
        _frame().select("transaction_id", "timestamp", "risk"),
    )


def test_partition_files_past_retention_are_deleted_on_the_next_write(tmp_path: Path):
    stale = tmp_path / "scores" / "2026-03-01-00_00.parquet"
    fresh = tmp_path / "scores" / "2026-03-28-00_00.parquet"
    stale.parent.mkdir(parents=True)
    for path, age_days in ((stale, 8), (fresh, 6)):
        _frame().head(1).write_parquet(path)
        moment = time.time() - age_days * 86400
        os.utime(path, (moment, moment))

    result = _materialize(tmp_path, [scores], retention_days=7)

    assert result.success
    assert not stale.exists()
    assert fresh.exists()
    assert len(list(stale.parent.glob("2026-03-29-*.parquet"))) == 2  # just written
    assert result.asset_materializations_for_node("scores")[0].metadata[
        "expired_partition_files_deleted"
    ] == dg.IntMetadataValue(1)


def test_retention_zero_keeps_every_partition_file(tmp_path: Path):
    old = tmp_path / "scores" / "2020-01-01-00_00.parquet"
    old.parent.mkdir(parents=True)
    _frame().head(1).write_parquet(old)
    os.utime(old, (0, 0))
    assert _materialize(tmp_path, [scores], retention_days=0).success
    assert old.exists()


THREE_HOURS = ["2026-03-29-02:00", "2026-03-29-03:00", "2026-03-29-04:00"]
_returned: dict[str, pl.DataFrame] = {}


@dg.asset(**_hourly, io_manager_key="frames", metadata={"partition_expr": "timestamp"})
def shuffled() -> pl.DataFrame:
    """Rows of the first two hours in no order, the third hour empty (or a stray row)."""
    return _returned["shuffled"]


def _materialize_shuffled(root: Path, frame: pl.DataFrame) -> dg.ExecuteInProcessResult:
    _returned["shuffled"] = frame
    return dg.materialize(
        [shuffled],
        resources={"frames": IntermediateFrameIOManager(root=str(root))},
        tags={
            "dagster/asset_partition_range_start": THREE_HOURS[0],
            "dagster/asset_partition_range_end": THREE_HOURS[-1],
        },
        raise_on_error=False,
    )


def test_each_hour_file_holds_its_rows_in_the_frame_order(tmp_path: Path):
    frame = _frame().sample(fraction=1.0, shuffle=True, seed=3)
    assert _materialize_shuffled(tmp_path, frame).success
    for key in THREE_HOURS:
        window = hourly_partitions.time_window_for_partition_key(key)
        expected = frame.filter(
            (pl.col("timestamp") >= window.start) & (pl.col("timestamp") < window.end)
        )
        stored = pl.read_parquet(tmp_path / "shuffled" / f"{key.replace(':', '_')}.parquet")
        assert_frame_equal(stored, expected)  # the empty third hour keeps the schema too


def test_a_row_outside_the_run_fails_the_step_before_any_file_is_written(tmp_path: Path):
    stray = _frame().head(1).with_columns(pl.lit(FIRST - timedelta(hours=5)).alias("timestamp"))
    result = _materialize_shuffled(tmp_path, pl.concat([_frame(), stray]))
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "1 row(s) of shuffled have a 'timestamp' outside" in str(failure.event_specific_data)
    assert not list(tmp_path.rglob("*.parquet"))


def test_hours_stored_with_older_column_types_load_together(tmp_path: Path):
    """A file written before a step changed a column's type loads beside the new ones."""
    assert _materialize(tmp_path, [scores]).success
    older = tmp_path / "scores" / "2026-03-29-02_00.parquet"
    pl.read_parquet(older).with_columns(pl.col("risk").cast(pl.Float64)).write_parquet(older)
    assert _materialize(tmp_path, [everything]).success
    assert_frame_equal(
        _seen["everything"].sort("transaction_id"),
        _frame().with_columns(pl.col("risk").cast(pl.Float64)),
    )


# -- the in-run handoff: a later step of the same run takes the frame from memory -------------

_handed: dict = {}  # the store's root for overwrite_mixed_files, what reads_mixed got


@dg.asset(**_hourly, io_manager_key="frames", metadata={"partition_expr": "timestamp"})
def mixed() -> pl.DataFrame:
    """Rows of both hours interleaved: loading them back puts each hour's rows together."""
    return _frame().sample(fraction=1.0, shuffle=True, seed=5)


@dg.asset(**_hourly, io_manager_key="frames", metadata={"partition_expr": "timestamp"})
def overwrite_mixed_files(mixed: pl.DataFrame) -> pl.DataFrame:
    """Replaces the stored hours of ``mixed`` with other risks, as a concurrent run could."""
    for path in (Path(_handed["root"]) / "mixed").glob("*.parquet"):
        pl.read_parquet(path).with_columns(pl.col("risk") + 100).write_parquet(path)
    return mixed.head(0)


@dg.asset(**_hourly, io_manager_key="frames", metadata={"partition_expr": "timestamp"})
def edits_in_place(mixed: pl.DataFrame, overwrite_mixed_files: pl.DataFrame) -> pl.DataFrame:
    mixed[0, "risk"] = -1.0
    mixed.insert_column(0, pl.Series("extra", [0] * mixed.height))
    return mixed.head(0)


@dg.asset(
    **_hourly,
    io_manager_key="frames",
    metadata={"partition_expr": "timestamp"},
    ins={"mixed": dg.AssetIn(metadata={"columns": ["risk", "transaction_id"]})},
)
def reads_mixed(mixed: pl.DataFrame, edits_in_place: pl.DataFrame) -> pl.DataFrame:
    _handed["reads_mixed"] = mixed
    return mixed.head(0).with_columns(pl.lit(FIRST).alias("timestamp"))


def _run_handoff(root: Path, selection, manager: IntermediateFrameIOManager | None = None):
    _handed["root"] = str(root)
    return dg.materialize(
        [mixed, overwrite_mixed_files, edits_in_place, reads_mixed],
        selection=selection,
        resources={"frames": manager or IntermediateFrameIOManager(root=str(root))},
        tags={
            "dagster/asset_partition_range_start": HOURS[0],
            "dagster/asset_partition_range_end": HOURS[1],
        },
    )


def test_a_later_step_of_the_same_run_gets_the_frame_as_written(tmp_path: Path):
    manager = IntermediateFrameIOManager(root=str(tmp_path))
    assert _run_handoff(tmp_path, None, manager).success
    # As its own run would have read the files before they were overwritten: each
    # hour's rows together, in the order written, the named columns in that order;
    # not the overwritten risks, and not another step's in-place edits.
    expected = pl.concat(
        [
            _frame()
            .sample(fraction=1.0, shuffle=True, seed=5)
            .filter(pl.col("timestamp").dt.hour() == hour)
            for hour in (2, 3)
        ]
    ).select("risk", "transaction_id")
    assert_frame_equal(_handed["reads_mixed"], expected)
    assert not manager._handoff._frames  # released when the run ended

    # Another run reads the files (here: the overwritten risks).
    assert _run_handoff(tmp_path, [reads_mixed, edits_in_place]).success
    assert_frame_equal(_handed["reads_mixed"], expected.with_columns(pl.col("risk") + 100))
