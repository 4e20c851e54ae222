"""ClickHouse column types ↔ Arrow types.

Two directions, each used at one boundary:

* ``arrow_type_for`` reads a ClickHouse type (as ``system.columns`` spells it)
  and gives the Arrow type a frame column must have to be inserted faithfully;
  it is also what a read result is normalised to (ClickHouse's Arrow output
  sends ``DateTime`` as a bare ``uint32``).
* ``clickhouse_type_for`` gives the column type for a table the IO manager
  creates itself (an asset without DDL in ``sql/``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


class UnsupportedColumnType(TypeError):
    """A frame column whose type has no faithful ClickHouse counterpart."""


_INTS = {
    "Int8": pa.int8(),
    "Int16": pa.int16(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
}
_FLOATS = {"Float32": pa.float32(), "Float64": pa.float64(), "BFloat16": pa.float32()}
_STRINGS = ("String", "FixedString", "Enum8", "Enum16", "Enum", "UUID", "IPv4", "IPv6")
_UNIT_BY_PRECISION = {0: "s", 1: "ms", 2: "ms", 3: "ms", 4: "us", 5: "us", 6: "us"}
_PRECISION_BY_UNIT = {"s": 0, "ms": 3, "us": 6, "ns": 9}


@dataclass(frozen=True)
class ParsedType:
    """A ClickHouse type split into its constructor name and raw arguments."""

    name: str
    args: tuple[str, ...]


def parse(type_name: str) -> ParsedType:
    """``Array(Nullable(Float32))`` → ParsedType('Array', ('Nullable(Float32)',))."""
    type_name = type_name.strip()
    open_at = type_name.find("(")
    if open_at < 0 or not type_name.endswith(")"):
        return ParsedType(type_name, ())
    return ParsedType(type_name[:open_at], tuple(_split_args(type_name[open_at + 1 : -1])))


def _split_args(text: str) -> list[str]:
    args, depth, quoted, start = [], 0, False, 0
    for i, char in enumerate(text):
        if char == "'" and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif quoted:
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
    args.append(text[start:].strip())
    return [a for a in args if a]


def _unquote(arg: str) -> str:
    return arg[1:-1] if len(arg) >= 2 and arg[0] == arg[-1] == "'" else arg


def is_nullable(type_name: str) -> bool:
    parsed = parse(type_name)
    if parsed.name == "LowCardinality":
        return is_nullable(parsed.args[0])
    return parsed.name == "Nullable"


def strip_wrappers(type_name: str) -> str:
    """The value type under ``Nullable``/``LowCardinality``."""
    parsed = parse(type_name)
    if parsed.name in ("Nullable", "LowCardinality"):
        return strip_wrappers(parsed.args[0])
    return type_name.strip()


def arrow_type_for(type_name: str) -> pa.DataType | None:
    """The Arrow type that holds this ClickHouse type's values, or None if unknown.

    ``None`` means "leave the value as it is and let ClickHouse convert it".
    Times come back as microsecond timestamps (the project's convention);
    ``DateTime`` without a zone is read as UTC, the zone every table here uses.
    """
    parsed = parse(strip_wrappers(type_name))
    name = parsed.name
    if name in _INTS:
        return _INTS[name]
    if name in _FLOATS:
        return _FLOATS[name]
    if name == "Bool":
        return pa.bool_()
    if name in _STRINGS:
        return pa.string()
    if name in ("Date", "Date32"):
        return pa.date32()
    if name == "DateTime":
        tz = _unquote(parsed.args[0]) if parsed.args else "UTC"
        return pa.timestamp("us", tz=tz)
    if name == "DateTime64":
        precision = int(parsed.args[0]) if parsed.args else 3
        tz = _unquote(parsed.args[1]) if len(parsed.args) > 1 else "UTC"
        return pa.timestamp(_UNIT_BY_PRECISION.get(precision, "ns"), tz=tz)
    if name == "Decimal" and len(parsed.args) == 2:
        return pa.decimal128(int(parsed.args[0]), int(parsed.args[1]))
    if name == "Array" and parsed.args:
        inner = arrow_type_for(parsed.args[0])
        return None if inner is None else pa.list_(inner)
    return None


def clickhouse_type_for(name: str, column: pa.ChunkedArray) -> str:
    """A faithful ClickHouse column type for an Arrow column of a new table.

    Nullable only where the column holds nulls (ClickHouse arrays cannot be
    Nullable; their elements can); categoricals become LowCardinality.
    """
    arrow_type = column.type
    has_nulls = column.null_count > 0
    if _is_list(arrow_type):
        if has_nulls:
            raise UnsupportedColumnType(
                f"column {name!r} holds missing lists; ClickHouse arrays cannot be NULL, "
                "use empty lists instead"
            )
        flat = pa.chunked_array(
            [chunk.flatten() for chunk in column.chunks], type=arrow_type.value_type
        )
        return f"Array({clickhouse_type_for(name, flat)})"
    base = _value_type(name, arrow_type)
    if pa.types.is_dictionary(arrow_type):
        return f"LowCardinality(Nullable({base}))" if has_nulls else f"LowCardinality({base})"
    return f"Nullable({base})" if has_nulls or pa.types.is_null(arrow_type) else base


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _value_type(name: str, t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return "Bool"
    for ch_name, arrow in _INTS.items():
        if t == arrow:
            return ch_name
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "Float32"
    if pa.types.is_float64(t):
        return "Float64"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "String"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "String"
    if pa.types.is_null(t):
        return "String"
    if pa.types.is_timestamp(t):
        # Naive times are taken as UTC, the zone every frame here carries.
        return f"DateTime64({_PRECISION_BY_UNIT[t.unit]}, '{t.tz or 'UTC'}')"
    if pa.types.is_date(t):
        return "Date32"
    if pa.types.is_decimal(t):
        return f"Decimal({t.precision}, {t.scale})"
    if _is_list(t):
        return f"Array({_value_type(name, t.value_type)})"
    raise UnsupportedColumnType(
        f"column {name!r} has Arrow type {t}, which has no faithful ClickHouse column type here "
        "(supported: integers, floats, bool, strings, categoricals, dates, timestamps, decimals "
        "and lists of those)"
    )
