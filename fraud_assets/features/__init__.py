"""The shared feature pipeline: one implementation for training and scoring.

``extract_features`` (pure) turns transactions, their history and fraud labels
into the model input; ``load_feature_inputs`` reads those three from
ClickHouse; ``FeatureScaler`` puts the matrix on one robust scale for the
models. ``FEATURE_CATALOG`` documents every column.
"""

from fraud_assets.features.catalog import (
    FEATURE_CATALOG,
    FEATURE_COLUMNS,
    catalog_markdown,
)
from fraud_assets.features.history import FeatureInputs, load_feature_inputs
from fraud_assets.features.pipeline import extract_features
from fraud_assets.features.scaling import FeatureScaler

__all__ = [
    "FEATURE_CATALOG",
    "FEATURE_COLUMNS",
    "FeatureInputs",
    "FeatureScaler",
    "catalog_markdown",
    "extract_features",
    "load_feature_inputs",
]
