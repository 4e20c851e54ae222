"""IO managers: frames ↔ ClickHouse tables, model artifacts ↔ the model volume.

Nothing here imports TensorFlow or Keras: ``formats.load_keras`` imports them
when a Keras model is actually loaded.
"""

from fraud_assets.io.arrow_tables import ShortWriteError, SliceError, TableSchemaError
from fraud_assets.io.clickhouse_io_manager import ClickHouseDbClient, ClickHouseIOManager
from fraud_assets.io.model_io_manager import ModelIOManager
from fraud_assets.io.model_store import (
    ArtifactRef,
    JsonArtifact,
    ModelIntegrityError,
    ModelStore,
    SkopsArtifact,
)
from fraud_assets.io.pandas_frames import ClickHousePandasIOManager, ClickHousePandasTypeHandler
from fraud_assets.io.polars_frames import ClickHousePolarsIOManager, ClickHousePolarsTypeHandler
from fraud_assets.io.write_journal import IncompleteSliceError

__all__ = [
    "ArtifactRef",
    "ClickHouseDbClient",
    "ClickHouseIOManager",
    "ClickHousePandasIOManager",
    "ClickHousePandasTypeHandler",
    "ClickHousePolarsIOManager",
    "ClickHousePolarsTypeHandler",
    "IncompleteSliceError",
    "JsonArtifact",
    "ModelIOManager",
    "ModelIntegrityError",
    "ModelStore",
    "ShortWriteError",
    "SkopsArtifact",
    "SliceError",
    "TableSchemaError",
]
