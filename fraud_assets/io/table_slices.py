"""SQL for the slice of a table that one asset partition (or partition range) owns.

A Dagster ``TableSlice`` names a table and, per partition dimension, either a
time window or a set of keys. Here it becomes a ClickHouse ``WHERE`` clause
and the ``SELECT`` that reads it back. Time windows are compared as absolute
UTC instants (``toDateTime('…', 'UTC')``), so the column's own zone or the
server's zone never shifts a window.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from dagster._core.definitions.partitions.utils import TimeWindow
from dagster._core.storage.db_io_manager import TablePartitionDimension, TableSlice

from fraud_assets.clickhouse.client import quote_identifier

_PLAIN_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def qualified_name(table_slice: TableSlice) -> str:
    return f"{quote_identifier(table_slice.schema)}.{quote_identifier(table_slice.table)}"


def display_name(table_slice: TableSlice) -> str:
    return f"{table_slice.schema}.{table_slice.table}"


def string_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def partition_column(expr: str, columns: Iterable[str] = ()) -> str | None:
    """The column a partition expression names, when it is a bare column name."""
    if expr in set(columns) or _PLAIN_IDENTIFIER.match(expr):
        return expr
    if len(expr) >= 2 and expr[0] == expr[-1] == "`":
        return expr[1:-1].replace("\\`", "`").replace("\\\\", "\\")
    return None


def partition_sql(expr: str, columns: Iterable[str] = ()) -> str:
    """The expression as SQL: a column name is quoted, an expression is kept verbatim."""
    column = partition_column(expr, columns)
    return quote_identifier(column) if column is not None else expr


def _instant(value: datetime) -> str:
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if utc.microsecond:
        return f"toDateTime64('{utc:%Y-%m-%d %H:%M:%S.%f}', 6, 'UTC')"
    return f"toDateTime('{utc:%Y-%m-%d %H:%M:%S}', 'UTC')"


def _dimension_clause(dimension: TablePartitionDimension, columns: Iterable[str]) -> str:
    expr = partition_sql(dimension.partition_expr, columns)
    partitions = dimension.partitions
    if isinstance(partitions, TimeWindow):
        return f"{expr} >= {_instant(partitions.start)} AND {expr} < {_instant(partitions.end)}"
    if not partitions:
        return "0"
    keys = ", ".join(string_literal(str(key)) for key in partitions)
    return f"{expr} IN ({keys})"


def where_clause(table_slice: TableSlice, columns: Iterable[str] = ()) -> str:
    """The slice's condition; ``1`` for an unpartitioned asset (the whole table)."""
    columns = list(columns)
    clauses = [
        f"({_dimension_clause(dim, columns)})" for dim in table_slice.partition_dimensions or []
    ]
    return " AND ".join(clauses) if clauses else "1"


def select_statement(table_slice: TableSlice, columns: Iterable[str] = ()) -> str:
    selected = (
        ", ".join(quote_identifier(c) for c in table_slice.columns) if table_slice.columns else "*"
    )
    where = where_clause(table_slice, columns)
    suffix = "" if where == "1" else f" WHERE {where}"
    return f"SELECT {selected} FROM {qualified_name(table_slice)}{suffix}"  # noqa: S608


def is_partitioned(table_slice: TableSlice) -> bool:
    return bool(table_slice.partition_dimensions)


def describe_dimensions(table_slice: TableSlice) -> str:
    """The slice's dimensions as JSON: recorded with a write, compared on later reads."""
    described = []
    for dim in table_slice.partition_dimensions or []:
        if isinstance(dim.partitions, TimeWindow):
            described.append(
                {
                    "expr": dim.partition_expr,
                    "start": dim.partitions.start.astimezone(UTC).isoformat(),
                    "end": dim.partitions.end.astimezone(UTC).isoformat(),
                }
            )
        else:
            described.append({"expr": dim.partition_expr, "keys": sorted(map(str, dim.partitions))})
    return json.dumps(described, sort_keys=True)


def dimensions_overlap(recorded: str, table_slice: TableSlice) -> bool:
    """Whether a recorded slice (``describe_dimensions``) can share rows with ``table_slice``.

    Conservative: a dimension only one side constrains counts as overlapping.
    """
    theirs = {d["expr"]: d for d in json.loads(recorded)}
    mine = {d["expr"]: d for d in json.loads(describe_dimensions(table_slice))}
    for expr in theirs.keys() & mine.keys():
        a, b = theirs[expr], mine[expr]
        if "keys" in a and "keys" in b:
            if not set(a["keys"]) & set(b["keys"]):
                return False
        elif "start" in a and "start" in b:
            a_start, a_end = map(datetime.fromisoformat, (a["start"], a["end"]))
            b_start, b_end = map(datetime.fromisoformat, (b["start"], b["end"]))
            if not (a_start < b_end and b_start < a_end):
                return False
    return True


def time_window_of(dimension: TablePartitionDimension) -> TimeWindow | None:
    return dimension.partitions if isinstance(dimension.partitions, TimeWindow) else None


def static_keys_of(dimension: TablePartitionDimension) -> Sequence[str] | None:
    if isinstance(dimension.partitions, TimeWindow):
        return None
    return [str(key) for key in dimension.partitions]
