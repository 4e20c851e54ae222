"""The ClickHouse IO manager: Dagster's database IO-manager contract over clickhouse-connect.

Shaped like dagster-duckdb: a ``DbClient`` (connection, slice deletion, the
read-back query), ``DbTypeHandler``s per frame library and a
``ConfigurableIOManagerFactory`` that assembles them into a ``DbIOManager``.
It works unchanged on the embedded engine (``chdb://``) and on a server
(``http(s)://``): both go through ``fraud_assets.clickhouse.connect``.

Where an asset's table lives: the ClickHouse database given by the asset's
``schema`` metadata, else the IO manager's ``schema``, else its ``database``
(default ``analytics``). Asset key prefixes do not pick databases. The
migrations from ``sql/`` are applied (once per process) to every database the
IO manager touches, so tables from ``sql/`` are always written in their typed
schemas.

The embedded database is locked for other processes while a client is open,
so a client is held only for the I/O itself: frames are converted to and from
Arrow outside the connection.
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar, cast

import dagster as dg
import pyarrow as pa
from clickhouse_connect.driver.client import Client
from dagster._core.definitions.metadata.metadata_set import TableMetadataSet
from dagster._core.storage.db_io_manager import DbClient, DbIOManager, DbTypeHandler, TableSlice
from pydantic import Field

from fraud_assets import settings
from fraud_assets.clickhouse.client import connect, quote_identifier
from fraud_assets.clickhouse.migrations import apply_migrations
from fraud_assets.io import arrow_tables
from fraud_assets.io import table_slices as slices

T = TypeVar("T")

_migrated: set[tuple[str, str]] = set()


class ClickHouseDbClient(DbClient[Client]):
    """Connections and slice SQL for one ClickHouse DSN."""

    def __init__(self, dsn: str, lock_timeout_s: float | None = None) -> None:
        self.dsn = dsn
        self.lock_timeout_s = lock_timeout_s

    @contextlib.contextmanager
    def connect(self, context: Any, table_slice: TableSlice) -> Iterator[Client]:  # type: ignore[override]
        with connect(self.dsn, table_slice.schema, self.lock_timeout_s) as client:
            key = (self.dsn, table_slice.schema)
            if key not in _migrated:
                apply_migrations(client)
                _migrated.add(key)
            yield client

    def ensure_schema_exists(
        self, context: Any, table_slice: TableSlice, connection: Client
    ) -> None:  # type: ignore[override]
        connection.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(table_slice.schema)}")

    def delete_table_slice(self, context: Any, table_slice: TableSlice, connection: Client) -> None:  # type: ignore[override]
        """Delete the slice's rows (synchronously). Writes use ``write_slice``, which
        deletes only after the new frame was checked and journals the replacement."""
        info = arrow_tables.describe(connection, table_slice.schema, table_slice.table)
        if info is None:
            return
        where = slices.where_clause(table_slice, info.names)
        connection.command(
            f"DELETE FROM {slices.qualified_name(table_slice)} WHERE {where}",  # noqa: S608
            settings={"lightweight_deletes_sync": 2},
        )

    @staticmethod
    def get_select_statement(table_slice: TableSlice) -> str:
        return slices.select_statement(table_slice)

    @staticmethod
    def get_table_name(table_slice: TableSlice) -> str:
        return slices.display_name(table_slice)


class ArrowFrameTypeHandler(DbTypeHandler[T], Generic[T]):
    """A frame library's link to ClickHouse: conversion to and from Arrow, nothing else."""

    @abstractmethod
    def to_arrow(self, obj: T) -> pa.Table: ...

    @abstractmethod
    def from_arrow(self, table: pa.Table, load_type: type) -> T: ...

    def handle_output(
        self, context: dg.OutputContext, table_slice: TableSlice, obj: T, connection: Client
    ) -> Mapping[str, Any]:
        result = arrow_tables.write_slice(
            connection, table_slice, self.to_arrow(obj), _run_id(context)
        )
        return output_metadata(result)

    def load_input(
        self, context: dg.InputContext, table_slice: TableSlice, connection: Client
    ) -> T:
        load_type = context.dagster_type.typing_type
        return self.from_arrow(_read(connection, context, table_slice), load_type)


def _run_id(context: dg.OutputContext) -> str:
    try:
        return context.run_id
    except Exception:  # an output context built outside a run
        return ""


def _read(connection: Client, context: dg.InputContext, table_slice: TableSlice) -> pa.Table:
    if slices.is_partitioned(table_slice) and not context.asset_partition_keys:
        # e.g. the first partition of a self-dependent asset: no upstream partition
        return arrow_tables.empty_like(connection, table_slice)
    return arrow_tables.read_slice(connection, table_slice)[0]


def output_metadata(result: arrow_tables.WriteResult) -> dict[str, Any]:
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name=c.name, type=c.type) for c in result.columns]
    )
    return {
        **TableMetadataSet(
            row_count=result.rows_in_slice,
            table_name=result.table_name,
            column_schema=schema,
        ),
        "rows_written": result.rows_written,
        "rows_replaced": result.rows_replaced,
        "columns_defaulted": dg.MetadataValue.json(list(result.columns_defaulted)),
        "Query": dg.MetadataValue.text(result.query),
    }


class ClickHouseDbIOManager(DbIOManager):
    """``DbIOManager`` that holds the connection only for I/O and verifies each write.

    The base class deletes the slice before the type handler sees the frame;
    here the frame is converted and checked first, and the slice is replaced by
    ``write_slice`` (journaled, read back) so a bad frame never empties a slice.
    """

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        if obj is None:
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string() if context.has_asset_key else context.name}"
                " returned None. Return a DataFrame (an empty one when there is nothing to "
                "write), or annotate the output '-> None' if it stores nothing."
            )
        self._check_supported_type(type(obj))
        table_slice = self._get_table_slice(context, context)
        handler = self._resolve_handler(type(obj))
        if not isinstance(handler, ArrowFrameTypeHandler):
            return super().handle_output(context, obj)
        frame = handler.to_arrow(obj)
        # connect() creates the database and applies the migrations from sql/
        with self._db_client.connect(context, table_slice) as connection:
            result = arrow_tables.write_slice(connection, table_slice, frame, _run_id(context))
        if result.rows_in_slice != result.rows_written:
            # Fails the step (run-failure alerts fire) and leaves the slice marked
            # incomplete in the write journal, so downstream loads refuse it.
            message = (
                f"{result.table_name}: wrote {result.rows_written} row(s) but the partition "
                f"slice now holds {result.rows_in_slice}. Rows outside the partition window, or "
                "another writer, changed the slice; it is marked incomplete until re-materialized."
            )
            context.log.error(message)
            raise arrow_tables.ShortWriteError(message)
        context.add_output_metadata(output_metadata(result))

    def load_input(self, context: dg.InputContext) -> object:
        obj_type = context.dagster_type.typing_type
        load_type = (
            self._default_load_type
            if obj_type is Any and self._default_load_type is not None
            else obj_type
        )
        self._check_supported_type(load_type)
        handler = self._resolve_handler(load_type)
        table_slice = self._get_table_slice(
            context, cast("dg.OutputContext", context.upstream_output)
        )
        if not isinstance(handler, ArrowFrameTypeHandler):
            return super().load_input(context)
        with self._db_client.connect(context, table_slice) as connection:
            table = _read(connection, context, table_slice)
        return handler.from_arrow(table, load_type)


class ClickHouseIOManager(dg.ConfigurableIOManagerFactory):
    """Frames ↔ ClickHouse tables, one table per asset, one slice per partition.

    Asset metadata it reads: ``partition_expr`` (the column or SQL expression a
    partition dimension filters on; a dict per dimension for multi-partitions),
    ``schema`` (the ClickHouse database for this asset), and on inputs
    ``columns`` (load only these). Output metadata: ``dagster/row_count`` (rows
    in the written slice, read back), ``rows_written``, ``rows_replaced``,
    ``columns_defaulted`` (table columns the frame lacked, filled by DEFAULT),
    ``dagster/table_name``, ``dagster/column_schema`` and the ``Query`` that
    reads the slice.
    """

    dsn: str = Field(
        default_factory=settings.clickhouse_url,
        description="chdb:///abs/path for the embedded engine or http(s)://user:pass@host:port. "
        "Set it with EnvVar('CLICKHOUSE_URL') so credentials never appear in run config.",
    )
    database: str = Field(
        default_factory=settings.clickhouse_database,
        description="The database assets' tables live in (migrated from sql/ on first use).",
    )
    schema_: str | None = Field(
        default=None,
        alias="schema",
        description="Dagster's name for the same thing: when set, overrides 'database'. An "
        "asset's own 'schema' metadata overrides both.",
    )
    lock_timeout_s: float | None = Field(
        default=None,
        description="How long to wait for an embedded database held by another process.",
    )

    @staticmethod
    @abstractmethod
    def type_handlers() -> Sequence[DbTypeHandler]: ...

    @staticmethod
    def default_load_type() -> type | None:
        return None

    def create_io_manager(self, context: dg.InitResourceContext) -> DbIOManager:
        return ClickHouseDbIOManager(
            db_client=ClickHouseDbClient(self.dsn, self.lock_timeout_s),
            database=self.database,
            schema=self.schema_ or self.database,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name=type(self).__name__,
        )
