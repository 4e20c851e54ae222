"""The shared feature pipeline: one implementation for training and scoring.

``extract_features`` (pure) turns transactions, their history and fraud labels
into the model input; ``load_feature_inputs`` reads those three from
ClickHouse; ``FeatureScaler`` standardises the matrix for the models.
``FEATURE_CATALOG`` documents every column.
"""

from fraud_assets.features.catalog import (
    FEATURE_CATALOG,
    FEATURE_COLUMNS,
    catalog_markdown,
)
from fraud_assets.features.pipeline import extract_features

__all__ = [
    "FEATURE_CATALOG",
    "FEATURE_COLUMNS",
    "catalog_markdown",
    "extract_features",
]
