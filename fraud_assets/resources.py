"""Resources per environment.

There is one code path for every deployment: what differs is configuration
from the environment. CLICKHOUSE_URL selects the database (unset: embedded
chdb under .data/), FRAUD_MODEL_DIR the model volume (unset: .models/). When
CLICKHOUSE_URL is set it is passed as an EnvVar, so its credentials never
appear in run config shown in Dagit.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from fraud_assets import settings
from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets.io import ClickHousePandasIOManager, ClickHousePolarsIOManager, ModelIOManager
from fraud_assets.io.intermediate import IntermediateFrameIOManager
from fraud_assets.notify import notifier_from_env


def clickhouse_resource() -> ClickHouseResource:
    if os.environ.get("CLICKHOUSE_URL"):
        return ClickHouseResource(
            dsn=dg.EnvVar("CLICKHOUSE_URL"), database=settings.clickhouse_database()
        )
    return ClickHouseResource()


def _clickhouse_io_manager_config() -> dict[str, Any]:
    """Same source as ``clickhouse_resource``: the DSN as an EnvVar when it is set."""
    if os.environ.get("CLICKHOUSE_URL"):
        return {"dsn": dg.EnvVar("CLICKHOUSE_URL"), "database": settings.clickhouse_database()}
    return {}


def clickhouse_io_manager() -> ClickHousePandasIOManager:
    return ClickHousePandasIOManager(**_clickhouse_io_manager_config())


def polars_io_manager() -> ClickHousePolarsIOManager:
    return ClickHousePolarsIOManager(**_clickhouse_io_manager_config())


def model_io_manager() -> ModelIOManager:
    if os.environ.get("FRAUD_MODEL_DIR"):
        return ModelIOManager(root=dg.EnvVar("FRAUD_MODEL_DIR"))
    return ModelIOManager()


def default_resources() -> dict[str, Any]:
    return {
        "clickhouse": clickhouse_resource(),
        "notifier": notifier_from_env(),
        "clickhouse_io_manager": clickhouse_io_manager(),
        "polars_io_manager": polars_io_manager(),
        "model_io_manager": model_io_manager(),
        "intermediate_io_manager": IntermediateFrameIOManager(),
    }
