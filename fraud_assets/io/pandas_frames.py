"""pandas DataFrames ↔ ClickHouse through Arrow.

Missing values, the pandas way: in a float64 column NaN is "missing", so it is
stored as NULL where the table column is Nullable and kept as NaN where it is
not (never turned into 0). Nullable integer and boolean columns come back as
pandas' masked dtypes (``Int8``, ``boolean``…), so integers are never widened
to floats; the others come back in their NumPy dtypes, times as
``datetime64[us, UTC]``. The index is not stored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from fraud_assets.io.arrow_tables import NAN_MEANS_NULL
from fraud_assets.io.clickhouse_io_manager import ArrowFrameTypeHandler, ClickHouseIOManager
from fraud_assets.io.clickhouse_types import UnsupportedColumnType

_MASKED = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(),
    pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def pandas_to_arrow(frame: pd.DataFrame) -> pa.Table:
    bad = [c for c in frame.columns if not isinstance(c, str)]
    if bad:
        raise UnsupportedColumnType(f"column names must be strings, got {bad!r}")
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise UnsupportedColumnType(_which_column(frame, exc)) from None
    fields = []
    for i, field in enumerate(table.schema):
        dtype = frame.dtypes.iloc[i]
        if isinstance(dtype, np.dtype) and dtype.kind == "f":
            field = field.with_metadata({NAN_MEANS_NULL: b"1"})
        fields.append(field)
    return table.cast(pa.schema(fields))


def _which_column(frame: pd.DataFrame, exc: Exception) -> str:
    for name in frame.columns:
        try:
            pa.array(frame[name], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as column_exc:
            return (
                f"column {name!r} (dtype {frame[name].dtype}) cannot be stored in ClickHouse: "
                f"{column_exc}"
            )
    return f"the frame cannot be converted to Arrow: {exc}"


def arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    masked = [f.name for f in table.schema if f.nullable and f.type in _MASKED]
    plain = table.drop_columns(masked) if masked else table
    frame = plain.to_pandas()
    for name in masked:
        frame[name] = table.column(name).to_pandas(types_mapper=_MASKED.get)
    return frame[table.column_names] if masked else frame


class ClickHousePandasTypeHandler(ArrowFrameTypeHandler[pd.DataFrame]):
    def to_arrow(self, obj: pd.DataFrame) -> pa.Table:
        return pandas_to_arrow(obj)

    def from_arrow(self, table: pa.Table, load_type: type) -> pd.DataFrame:
        return arrow_to_pandas(table)

    @property
    def supported_types(self) -> Sequence[type[object]]:
        return [pd.DataFrame]


class ClickHousePandasIOManager(ClickHouseIOManager):
    """pandas DataFrames ↔ ClickHouse tables (see ``ClickHouseIOManager``).

    Inputs annotated as polars frames are loaded as polars: both libraries
    share the table layout.
    """

    @staticmethod
    def type_handlers() -> Sequence[ArrowFrameTypeHandler]:
        from fraud_assets.io.polars_frames import ClickHousePolarsTypeHandler

        return [ClickHousePandasTypeHandler(), ClickHousePolarsTypeHandler()]

    @staticmethod
    def default_load_type() -> type | None:
        return pd.DataFrame
