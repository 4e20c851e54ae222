"""The write journal: which slice replacements started and which completed.

Replacing a partition's slice is a DELETE then an INSERT, not one atomic step
(see ``arrow_tables``). Each replacement records 'writing' before the DELETE
and 'complete' once the slice reads back in full, in ``io_manager_writes``
(migration 010, a ReplacingMergeTree keyed by table and slice). A slice whose
latest record is still 'writing' was left short; reading anything that
overlaps it fails until the partition is re-materialized.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client
from dagster._core.storage.db_io_manager import TableSlice

from fraud_assets.clickhouse.client import quote_identifier
from fraud_assets.io import table_slices as slices

JOURNAL_TABLE = "io_manager_writes"


class IncompleteSliceError(RuntimeError):
    """A slice whose last write never completed (a crash between DELETE and INSERT)."""


def record(
    client: Client,
    table_slice: TableSlice,
    where: str,
    run_id: str,
    state: str,
    rows_written: int,
    rows_in_slice: int,
) -> None:
    client.insert(
        f"{quote_identifier(table_slice.schema)}.{JOURNAL_TABLE}",
        [
            [
                table_slice.table,
                where,
                slices.describe_dimensions(table_slice),
                run_id,
                state,
                rows_written,
                rows_in_slice,
                datetime.fromtimestamp(time.time_ns() / 1e9, UTC),
            ]
        ],
        column_names=[
            "table_name",
            "slice",
            "dimensions",
            "run_id",
            "state",
            "rows_written",
            "rows_in_slice",
            "updated_at",
        ],
    )


def check_no_incomplete_write(client: Client, table_slice: TableSlice) -> None:
    """Refuse to read a slice that overlaps a write which never completed."""
    rows = client.query(
        f"SELECT slice, dimensions, run_id, rows_written FROM "  # noqa: S608
        f"{quote_identifier(table_slice.schema)}.{JOURNAL_TABLE} FINAL "
        "WHERE table_name = {table:String} AND state = 'writing'",
        parameters={"table": table_slice.table},
    ).result_rows
    for where, dimensions, run_id, rows_written in rows:
        if slices.dimensions_overlap(dimensions, table_slice):
            raise IncompleteSliceError(
                f"{slices.display_name(table_slice)}: the write of slice [{where}] by run "
                f"{run_id} ({rows_written} rows) never completed, so the slice may be short or "
                "empty. Re-materialize that partition (range) to repair it."
            )
