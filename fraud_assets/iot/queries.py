"""The seed's ClickHouse helpers for sensor data: connection test and a bounded fetch."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from clickhouse_connect.driver.client import Client

from fraud_assets.generator.sensors import LABEL_COLUMNS, METRICS, READING_COLUMNS


def connection_report(client: Client) -> dict[str, Any]:
    """The seed's test_connection: server version, database, round trip, missing tables."""
    started = time.perf_counter()
    version = client.query("SELECT version()").result_rows[0][0]
    latency_ms = (time.perf_counter() - started) * 1000.0
    tables = {
        row[0]
        for row in client.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase()"
        ).result_rows
    }
    expected = ["sensor_data", "staging_normalized_data", "detected_anomalies"]
    return {
        "version": str(version),
        "database": client.database,
        "latency_ms": round(latency_ms, 2),
        "missing_tables": [t for t in expected if t not in tables],
    }


def _window_query(
    client: Client,
    table: str,
    columns: Sequence[str],
    start: datetime,
    end: datetime,
    limit: int | None = None,
) -> pd.DataFrame:
    query = (
        f"SELECT {', '.join(columns)} FROM {table} "  # noqa: S608 (names are constants)
        "WHERE timestamp >= {start:DateTime('UTC')} AND timestamp < {end:DateTime('UTC')} "
        "ORDER BY timestamp, sensor_id"
    )
    parameters: dict[str, Any] = {"start": _naive_utc(start), "end": _naive_utc(end)}
    if limit is not None:
        query += " LIMIT {limit:UInt64}"
        parameters["limit"] = int(limit)
    frame = client.query_df(query, parameters=parameters)
    if frame.empty:
        frame = pd.DataFrame({c: [] for c in columns})
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[us, UTC]")
    return frame


def fetch_sensor_data(
    client: Client, start: datetime, end: datetime, limit: int | None = None
) -> pd.DataFrame:
    """Readings in ``[start, end)``, oldest first; at most ``limit`` rows when given."""
    frame = _window_query(client, "sensor_data", READING_COLUMNS, start, end, limit)
    return frame.astype({"sensor_id": str, **{m: "float32" for m in METRICS}})


def fetch_fault_labels(client: Client, start: datetime, end: datetime) -> pd.DataFrame:
    """The injected-fault labels in ``[start, end)`` (empty for real devices)."""
    frame = _window_query(client, "sensor_fault_labels", LABEL_COLUMNS, start, end)
    return frame.astype(
        {"fault_id": str, "sensor_id": str, "fault_type": str, "metric": str}
    ).astype({"injected_offset": "float32"})


def fetch_detections(client: Client, start: datetime, end: datetime) -> pd.DataFrame:
    """Where and what ``detected_anomalies`` flagged in ``[start, end)``."""
    columns = ("timestamp", "sensor_id", "anomaly_type")
    frame = _window_query(client, "detected_anomalies", columns, start, end)
    return frame.astype({"sensor_id": str, "anomaly_type": str})


def _naive_utc(moment: datetime) -> datetime:
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.tz_localize(None).to_pydatetime()
