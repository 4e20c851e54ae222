"""IO managers: frames ↔ ClickHouse tables, model artifacts ↔ the model volume."""

from fraud_assets.io.clickhouse_io_manager import ClickHouseDbClient, ClickHouseIOManager
from fraud_assets.io.pandas_frames import ClickHousePandasIOManager, ClickHousePandasTypeHandler
from fraud_assets.io.polars_frames import ClickHousePolarsIOManager, ClickHousePolarsTypeHandler

__all__ = [
    "ClickHouseDbClient",
    "ClickHouseIOManager",
    "ClickHousePandasIOManager",
    "ClickHousePandasTypeHandler",
    "ClickHousePolarsIOManager",
    "ClickHousePolarsTypeHandler",
]
