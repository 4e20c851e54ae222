"""polars DataFrames (and LazyFrames) ↔ ClickHouse through Arrow.

polars keeps NaN and null apart, and so does the round trip: NaN is a value,
null is NULL (an error for a column that is not Nullable in a table from sql/).
Times come back as ``Datetime("us", "UTC")``.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import pyarrow as pa

from fraud_assets.io.clickhouse_io_manager import ArrowFrameTypeHandler, ClickHouseIOManager


class ClickHousePolarsTypeHandler(ArrowFrameTypeHandler[pl.DataFrame | pl.LazyFrame]):
    def to_arrow(self, obj: pl.DataFrame | pl.LazyFrame) -> pa.Table:
        frame = obj.collect() if isinstance(obj, pl.LazyFrame) else obj
        return frame.to_arrow()

    def from_arrow(self, table: pa.Table, load_type: type) -> pl.DataFrame | pl.LazyFrame:
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        if isinstance(load_type, type) and issubclass(load_type, pl.LazyFrame):
            return frame.lazy()
        return frame

    @property
    def supported_types(self) -> Sequence[type[object]]:
        return [pl.DataFrame, pl.LazyFrame]


class ClickHousePolarsIOManager(ClickHouseIOManager):
    """polars DataFrames ↔ ClickHouse tables (see ``ClickHouseIOManager``).

    Inputs annotated as pandas frames are loaded as pandas: both libraries
    share the table layout.
    """

    @staticmethod
    def type_handlers() -> Sequence[ArrowFrameTypeHandler]:
        from fraud_assets.io.pandas_frames import ClickHousePandasTypeHandler

        return [ClickHousePolarsTypeHandler(), ClickHousePandasTypeHandler()]

    @staticmethod
    def default_load_type() -> type | None:
        return pl.DataFrame
