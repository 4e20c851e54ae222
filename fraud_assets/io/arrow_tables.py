"""Arrow tables in and out of ClickHouse table slices: the IO managers' engine.

Transfer is columnar both ways. Writes send Arrow IPC in 128k-row record
batches: to a server as ``INSERT … FORMAT ArrowStream``; to the embedded
engine, which shares this process's filesystem, as an Arrow file that it reads
with ``INSERT … SELECT FROM file()`` over several threads. Reads ask for
``FORMAT ArrowStream`` in 128k-row blocks and map the bytes without copying.
Rows come back in no particular order: sort where order matters.

Schemas are the tables' own. A table that exists (every table from ``sql/``)
is written in its typed schema: the frame is cast to its column types with
Arrow's checked casts (an out-of-range Int8 is an error, not a wrapped value),
columns the frame lacks take their DEFAULT (listed in the output metadata as
``columns_defaulted``), and anything that would be lost silently — an unknown
column, a NULL in a column that is not Nullable — is an error naming the
columns. A table that does
not exist is created from the frame with faithful types (Nullable only where
the frame holds nulls, ``DateTime64(p, 'UTC')``, ``Array``, ``LowCardinality``
for categoricals), ordered by its partition columns.

Replacing a partition's slice — the mechanism, chosen deliberately:

* Partitioned assets: count the slice; when it holds rows, drop the parts
  that hold only slice rows (``DROP PART``: a slice this IO manager wrote
  before, not yet merged) and mask the rest with a lightweight ``DELETE FROM
  … WHERE <slice>`` (synchronous); ``INSERT``; count again. The
  tables are partitioned by month while assets are hourly, so partition-level
  ``REPLACE PARTITION`` would copy a whole month to replace one hour; a
  lightweight delete only masks the slice's rows, is visible to the next query
  and is cheap on a slice the sort key starts with. It is not atomic, so every
  write is journaled (``io_manager_writes``): 'writing' before the DELETE,
  'complete' once the read-back count equals the rows sent. A crash in between
  leaves 'writing', and reading an overlapping slice then fails naming the
  run, instead of returning a silently short frame; re-materializing repairs
  it. Every materialization's metadata shows the rows sent (``rows_written``)
  next to the rows read back (``dagster/row_count``); a difference (rows
  outside the partition window, a concurrent writer) fails the step with both
  counts and leaves the slice marked incomplete.
* Unpartitioned assets: the frame goes into a staging copy of the table, which
  then swaps places with it (``EXCHANGE TABLES``, atomic): readers see the old
  table or the new one, never an empty or half-written one.

Before touching the table, the frame is checked against the slice when the
partition expression is a plain column: rows outside the partition window are
an error and nothing is deleted.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError
from dagster._core.storage.db_io_manager import TableSlice

from fraud_assets.clickhouse.client import quote_identifier
from fraud_assets.io import clickhouse_types as ch_types
from fraud_assets.io import table_slices as slices
from fraud_assets.io import write_journal

CREATED_BY_IO_MANAGER = "created by the fraud_assets ClickHouse IO manager"
# Field metadata of a float column whose nulls were NaN in the frame (pandas):
# NULL where the table column is Nullable, NaN where it is not.
NAN_MEANS_NULL = b"fraud_assets.nan_means_null"

# Blocks of 128k rows (not ClickHouse's 8k-65k default) make fewer, larger record
# batches: ~30% faster to produce and to read into Arrow.
_READ_SETTINGS = (
    "max_block_size = 131072, preferred_block_size_bytes = 1000000000, "
    "output_format_arrow_string_as_string = 1, "
    "output_format_arrow_low_cardinality_as_dictionary = 0, "
    "output_format_arrow_fixed_string_as_fixed_byte_array = 0"
)
_INSERT_SETTINGS = {"input_format_null_as_default": 0}
INSERT_BATCH_ROWS = 131_072


class TableSchemaError(ValueError):
    """A frame that cannot be written into its table without losing or inventing data."""


class SliceError(ValueError):
    """A frame with rows outside the partition slice it is written to."""


class ShortWriteError(RuntimeError):
    """The slice read back holds a different number of rows than were written."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    default_kind: str = ""

    @property
    def writable(self) -> bool:
        return self.default_kind not in ("MATERIALIZED", "ALIAS", "EPHEMERAL")


@dataclass(frozen=True)
class TableInfo:
    columns: tuple[Column, ...]
    engine: str
    comment: str

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def created_by_io_manager(self) -> bool:
        return self.comment == CREATED_BY_IO_MANAGER


@dataclass(frozen=True)
class WriteResult:
    table_name: str
    rows_written: int
    rows_in_slice: int
    rows_replaced: int
    columns: tuple[Column, ...]
    columns_defaulted: tuple[str, ...]
    query: str
    created_table: bool


# ---------------------------------------------------------------- table info


def describe(client: Client, database: str, table: str) -> TableInfo | None:
    """The table's columns (in order), engine and comment; None when it does not exist."""
    rows = client.query(
        "SELECT name, type, default_kind, "
        "(SELECT any(engine) FROM system.tables WHERE database = {db:String} "
        "AND name = {table:String}), "
        "(SELECT any(comment) FROM system.tables WHERE database = {db:String} "
        "AND name = {table:String}) "
        "FROM system.columns WHERE database = {db:String} AND table = {table:String} "
        "ORDER BY position",
        parameters={"db": database, "table": table},
    ).result_rows
    if not rows:
        return None
    columns = tuple(Column(name, type_, kind) for name, type_, kind, _, _ in rows)
    return TableInfo(columns, engine=rows[0][3], comment=rows[0][4])


def _empty_table(columns: Sequence[Column]) -> pa.Table:
    fields = [
        pa.field(
            c.name,
            ch_types.arrow_type_for(c.type) or pa.string(),
            nullable=ch_types.is_nullable(c.type),
        )
        for c in columns
    ]
    return pa.schema(fields).empty_table()


# ---------------------------------------------------------------- writing


def _create_table(client: Client, table_slice: TableSlice, frame: pa.Table) -> None:
    definitions = []
    for name, column in zip(frame.column_names, frame.columns, strict=True):
        ch_type = ch_types.clickhouse_type_for(name, column)
        definitions.append(f"{quote_identifier(name)} {ch_type}")
    order_by = [
        slices.partition_sql(dim.partition_expr, frame.column_names)
        for dim in table_slice.partition_dimensions or []
    ]
    order = f"({', '.join(order_by)})" if order_by else "tuple()"
    client.command(
        f"CREATE TABLE IF NOT EXISTS {slices.qualified_name(table_slice)} "
        f"({', '.join(definitions)}) ENGINE = MergeTree ORDER BY {order} "
        f"COMMENT {slices.string_literal(CREATED_BY_IO_MANAGER)}"
    )


def _check_columns(table_slice: TableSlice, frame: pa.Table, info: TableInfo) -> None:
    name = slices.display_name(table_slice)
    if len(set(frame.column_names)) != len(frame.column_names):
        dupes = sorted({c for c in frame.column_names if frame.column_names.count(c) > 1})
        raise TableSchemaError(f"the frame for {name} has duplicate columns: {dupes}")
    known = {c.name: c for c in info.columns}
    unknown = [c for c in frame.column_names if c not in known]
    if unknown:
        raise TableSchemaError(
            f"{name} has no column(s) {unknown}; its columns are {info.names}. Rename or drop "
            "them in the asset, or add them to the table with a migration in sql/."
        )
    not_writable = [c for c in frame.column_names if not known[c].writable]
    if not_writable:
        raise TableSchemaError(
            f"{name} computes column(s) {not_writable}; drop them from the frame"
        )


def _conform(
    client: Client, table_slice: TableSlice, frame: pa.Table, info: TableInfo
) -> tuple[pa.Table, bool]:
    """The frame cast to the table's column types, or an error naming what would be lost.

    Also says whether a column of a table this IO manager created was widened to Nullable.
    """
    _check_columns(table_slice, frame, info)
    name = slices.display_name(table_slice)
    columns = []
    widened = False
    for column_name, column in zip(frame.column_names, frame.columns, strict=True):
        ch_type = info.column(column_name).type
        if (
            column.null_count
            and not ch_types.is_nullable(ch_type)
            and _nan_means_null(frame, column_name)
        ):
            column = pc.fill_null(column, float("nan"))  # they were NaN in the frame: keep NaN
        if column.null_count and not ch_types.is_nullable(ch_type):
            if not info.created_by_io_manager:
                raise TableSchemaError(
                    f"column {column_name!r} of the frame for {name} holds {column.null_count} "
                    f"null(s) but the table column is {ch_type}, not Nullable"
                )
            ch_type = _widen_to_nullable(client, table_slice, column_name, ch_type)
            widened = True
        columns.append(_cast(name, column_name, column, ch_type))
    return pa.table(columns, names=frame.column_names), widened


def _nan_means_null(frame: pa.Table, column_name: str) -> bool:
    field = frame.schema.field(column_name)
    return bool(field.metadata and field.metadata.get(NAN_MEANS_NULL)) and pa.types.is_floating(
        field.type
    )


def _widen_to_nullable(client: Client, table_slice: TableSlice, column: str, ch_type: str) -> str:
    """A table this IO manager created learns that a column can be NULL."""
    parsed = ch_types.parse(ch_type)
    if parsed.name == "LowCardinality":
        widened = f"LowCardinality(Nullable({parsed.args[0]}))"
    elif parsed.name == "Array":
        raise TableSchemaError(f"column {column!r} holds missing lists; use empty lists instead")
    else:
        widened = f"Nullable({ch_type})"
    client.command(
        f"ALTER TABLE {slices.qualified_name(table_slice)} MODIFY COLUMN "
        f"{quote_identifier(column)} {widened}",
        settings={"mutations_sync": 2},
    )
    return widened


def _cast(table: str, column_name: str, column: pa.ChunkedArray, ch_type: str) -> pa.ChunkedArray:
    target = ch_types.arrow_type_for(ch_type)
    source = column.type
    if target is None:
        return _plain(column)
    if source == target:
        return column
    if pa.types.is_dictionary(source):
        column, source = column.cast(source.value_type), source.value_type
    try:
        if pa.types.is_timestamp(source) and pa.types.is_timestamp(target):
            # ClickHouse truncates to the column's precision; so does this cast.
            return column.cast(target, safe=False)
        return column.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise TableSchemaError(
            f"column {column_name!r} of the frame for {table} ({source}) does not fit the table "
            f"column type {ch_type}: {exc}"
        ) from None


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Arrow layouts ClickHouse's Arrow input may not read, turned into their plain forms."""
    t = column.type
    if pa.types.is_dictionary(t):
        return _plain(column.cast(t.value_type))
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return column.cast(pa.string())
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return column.cast(pa.binary())
    if pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return column.cast(pa.list_(t.value_type))
    if pa.types.is_null(t):
        return column.cast(pa.string())
    if pa.types.is_float16(t):
        return column.cast(pa.float32())
    return column


def check_rows_in_slice(table_slice: TableSlice, frame: pa.Table) -> None:
    """Refuse a frame with rows outside its partition slice (when that is checkable here)."""
    name = slices.display_name(table_slice)
    for dim in table_slice.partition_dimensions or []:
        column_name = slices.partition_column(dim.partition_expr, frame.column_names)
        if column_name is None or column_name not in frame.column_names:
            continue  # an expression: checked by the read-back count instead
        column = frame.column(column_name)
        window = slices.time_window_of(dim)
        if window is not None:
            outside = _rows_outside_window(column, window.start, window.end)
            what = f"[{window.start.isoformat()}, {window.end.isoformat()})"
        else:
            keys = pa.array(slices.static_keys_of(dim) or [], type=pa.string())
            inside = pc.is_in(_plain(column).cast(pa.string()), value_set=keys)
            outside = len(frame) - pc.sum(pc.fill_null(inside, False).cast(pa.int64())).as_py()
            outside = outside or 0
            what = f"{list(keys.to_pylist())}"
        if outside:
            raise SliceError(
                f"{outside} of {len(frame)} row(s) of the frame for {name} have a "
                f"{column_name!r} outside the partition(s) being written, {what}; nothing was "
                "written. An asset must return only the rows of its own partition(s)."
            )


def _rows_outside_window(column: pa.ChunkedArray, start: datetime, end: datetime) -> int:
    t = column.type
    if pa.types.is_timestamp(t):
        utc_type = pa.timestamp(t.unit, tz="UTC")
        utc = column.cast(utc_type)
        lo = pa.scalar(start.astimezone(UTC), type=utc_type)
        hi = pa.scalar(end.astimezone(UTC), type=utc_type)
        inside = pc.and_(pc.greater_equal(utc, lo), pc.less(utc, hi))
    elif pa.types.is_date(t):
        lo = pa.scalar(start.astimezone(UTC).date(), type=t)
        hi = pa.scalar(end.astimezone(UTC).date(), type=t)
        inside = pc.and_(pc.greater_equal(column, lo), pc.less(column, hi))
    else:
        return 0  # not a time column: the read-back count is the check
    return len(column) - (pc.sum(pc.fill_null(inside, False).cast(pa.int64())).as_py() or 0)


def _ipc_payload(frame: pa.Table) -> pa.Buffer:
    """An Arrow IPC stream in record batches ClickHouse parses in parallel."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, frame.schema) as writer:
        writer.write_table(frame, max_chunksize=INSERT_BATCH_ROWS)
    return sink.getvalue()


def _reads_local_files(client: Client) -> bool:
    """Whether the engine runs in this process (embedded chdb) and so can read its files."""
    return client.uri.startswith("chdb://")


def _insert(client: Client, qualified: str, frame: pa.Table, info: TableInfo) -> None:
    if frame.num_rows == 0:
        return
    if _reads_local_files(client):
        _insert_from_file(client, qualified, frame, info)
        return
    # A server (the deployment's http://) gets the rows as the request body.
    client.raw_insert(
        qualified,
        column_names=frame.column_names,
        insert_block=pa.BufferReader(_ipc_payload(frame)),
        settings=_INSERT_SETTINGS,
        fmt="ArrowStream",
    )


def _insert_from_file(client: Client, qualified: str, frame: pa.Table, info: TableInfo) -> None:
    """The embedded engine shares this process's filesystem: it reads an Arrow file
    directly, in parallel over its record batches (~3-4x ``insert_arrow`` on chdb)."""
    names = ", ".join(quote_identifier(c) for c in frame.column_names)
    structure = ", ".join(
        f"{quote_identifier(c)} {info.column(c).type}" for c in frame.column_names
    )
    fd, path = tempfile.mkstemp(suffix=".arrow", prefix="fraud_assets_insert_")
    os.close(fd)
    try:
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, frame.schema) as writer:
            writer.write_table(frame, max_chunksize=INSERT_BATCH_ROWS)
        client.command(
            f"INSERT INTO {qualified} ({names}) SELECT {names} FROM "  # noqa: S608
            f"file({slices.string_literal(path)}, 'Arrow', {slices.string_literal(structure)})",
            settings={
                "insert_null_as_default": 0,
                "max_insert_threads": max(2, os.cpu_count() or 2),
            },
        )
    finally:
        os.unlink(path)


def _count(client: Client, qualified: str, where: str) -> int:
    # Identifiers are quoted and slice values escaped (table_slices).
    return int(client.command(f"SELECT count() FROM {qualified} WHERE {where}"))  # noqa: S608


def write_slice(
    client: Client, table_slice: TableSlice, frame: pa.Table, run_id: str
) -> WriteResult:
    """Replace the slice's rows with ``frame``; see the module docstring for how."""
    check_rows_in_slice(table_slice, frame)
    info = describe(client, table_slice.schema, table_slice.table)
    created = info is None
    if info is None:
        _create_table(client, table_slice, frame)
        info = describe(client, table_slice.schema, table_slice.table)
        assert info is not None
    frame, widened = _conform(client, table_slice, frame, info)
    if widened:
        info = describe(client, table_slice.schema, table_slice.table) or info
    names = info.names
    where = slices.where_clause(table_slice, names)
    if slices.is_partitioned(table_slice):
        replaced, in_slice = _replace_slice(client, table_slice, frame, info, where, run_id)
    else:
        replaced, in_slice = _replace_table(client, table_slice, frame, info)
    return WriteResult(
        table_name=slices.display_name(table_slice),
        rows_written=frame.num_rows,
        rows_in_slice=in_slice,
        rows_replaced=replaced,
        columns=info.columns,
        columns_defaulted=tuple(
            c.name for c in info.columns if c.writable and c.name not in frame.column_names
        ),
        query=slices.select_statement(table_slice, names),
        created_table=created,
    )


def _replace_slice(
    client: Client,
    table_slice: TableSlice,
    frame: pa.Table,
    info: TableInfo,
    where: str,
    run_id: str,
) -> tuple[int, int]:
    qualified = slices.qualified_name(table_slice)
    write_journal.record(client, table_slice, where, run_id, "writing", frame.num_rows, -1)
    existing = _count(client, qualified, where)
    if existing:
        _delete_slice(client, table_slice, info, where)
    _insert(client, qualified, frame, info)
    in_slice = _count(client, qualified, where)
    if in_slice == frame.num_rows:
        write_journal.record(
            client, table_slice, where, run_id, "complete", frame.num_rows, in_slice
        )
    return existing, in_slice


def _delete_slice(client: Client, table_slice: TableSlice, info: TableInfo, where: str) -> None:
    """Remove the slice's rows, synchronously.

    Parts that hold nothing but slice rows (a slice written earlier by this IO
    manager, not merged yet) are dropped whole: instant, and nothing is left
    behind. The rest are masked by a lightweight DELETE, which merges clean up
    later (until then reads skip the masked rows).
    """
    qualified = slices.qualified_name(table_slice)
    if not info.engine.endswith("MergeTree"):
        client.command(
            f"ALTER TABLE {qualified} DELETE WHERE {where}", settings={"mutations_sync": 2}
        )
        return
    in_slice = client.query(
        f"SELECT _part, count() FROM {qualified} WHERE {where} GROUP BY _part"  # noqa: S608
    ).result_rows
    physical = dict(
        client.query(
            "SELECT name, rows FROM system.parts WHERE database = {db:String} "
            "AND table = {table:String} AND active",
            parameters={"db": table_slice.schema, "table": table_slice.table},
        ).result_rows
    )
    partial = False
    for part, rows in in_slice:
        if physical.get(part) != rows:
            partial = True
            continue
        try:
            client.command(f"ALTER TABLE {qualified} DROP PART {slices.string_literal(part)}")
        except DatabaseError:  # merged away meanwhile: the DELETE below covers its rows
            partial = True
    if partial:
        client.command(
            f"DELETE FROM {qualified} WHERE {where}",  # noqa: S608
            settings={"lightweight_deletes_sync": 2},
        )


def _replace_table(
    client: Client, table_slice: TableSlice, frame: pa.Table, info: TableInfo
) -> tuple[int, int]:
    qualified = slices.qualified_name(table_slice)
    staging_slice = table_slice._replace(table=f"{table_slice.table}__io_staging")
    staging = slices.qualified_name(staging_slice)
    client.command(f"DROP TABLE IF EXISTS {staging} SYNC")
    client.command(f"CREATE TABLE {staging} AS {qualified}")
    try:
        _insert(client, staging, frame, info)
        replaced = _count(client, qualified, "1")
        client.command(f"EXCHANGE TABLES {qualified} AND {staging}")
    finally:
        client.command(f"DROP TABLE IF EXISTS {staging} SYNC")
    return replaced, _count(client, qualified, "1")


# ---------------------------------------------------------------- reading


def read_slice(client: Client, table_slice: TableSlice) -> tuple[pa.Table, TableInfo]:
    """The slice's rows (selected columns only), with ClickHouse types mapped to Arrow."""
    info = describe(client, table_slice.schema, table_slice.table)
    name = slices.display_name(table_slice)
    if info is None:
        raise LookupError(f"table {name} does not exist: materialize the asset that writes it")
    selected = list(table_slice.columns or info.names)
    unknown = [c for c in selected if c not in info.names]
    if unknown:
        raise TableSchemaError(f"{name} has no column(s) {unknown}; its columns are {info.names}")
    columns = [info.column(c) for c in selected]
    write_journal.check_no_incomplete_write(client, table_slice)
    query = slices.select_statement(table_slice, info.names)
    payload = client.raw_query(f"{query} SETTINGS {_READ_SETTINGS} FORMAT ArrowStream")
    if not payload:
        return _empty_table(columns), info
    table = pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
    return _normalise(table, columns), info


def _normalise(table: pa.Table, columns: Sequence[Column]) -> pa.Table:
    """ClickHouse's Arrow output in the types ``arrow_type_for`` promises, nullability kept."""
    arrays = []
    for column, array in zip(columns, table.columns, strict=True):
        target = ch_types.arrow_type_for(column.type)
        if target is not None and array.type != target:
            if pa.types.is_timestamp(target) and pa.types.is_integer(array.type):
                array = array.cast(pa.int64()).cast(pa.timestamp("s", tz=target.tz))
            # A layout Arrow cannot cast (a nested DateTime) keeps ClickHouse's own.
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                array = array.cast(target)
        arrays.append(array)
    schema = pa.schema(
        pa.field(c.name, a.type, nullable=ch_types.is_nullable(c.type))
        for c, a in zip(columns, arrays, strict=True)
    )
    return pa.table(arrays, schema=schema)


def empty_like(client: Client, table_slice: TableSlice) -> pa.Table:
    """An empty table with the slice's columns (or no columns if the table does not exist)."""
    info = describe(client, table_slice.schema, table_slice.table)
    if info is None:
        return pa.table({})
    selected = list(table_slice.columns or info.names)
    return _empty_table([info.column(c) for c in selected if c in info.names])
