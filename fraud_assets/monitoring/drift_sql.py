"""Drift counts computed by ClickHouse with the stored reference histograms' edges.

The rows never leave the database: one query bins every monitored column of
a range of hours with the reference edges and returns, per hour, the rows and
each column's bin counts. Counts add up, so every window the check judges is
a sum of hours; PSI and KS are then computed from the summed counts
(``histograms.py``), a few numbers per column.

Shape of the query (``hourly_histogram_sql``): one scan of the range grouped
by hour; per column the bin is a ``multiIf`` over the reference edges written
in as literals, and ``countResample(0, bins, 1)`` counts the bins in one
aggregate. Of the forms measured on one hour of 67 Float32 columns this was
the fastest: a ``GROUP BY bin`` per column glued with ``UNION ALL`` spent
about 2 s in query analysis alone; one ``countIf`` per bin and column,
``sumMap``, ``ARRAY JOIN`` over the columns, ``GROUPING SETS`` and bins found
with ``roundDown`` or ``arrayFirstIndex`` over an edge array were all slower.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np
from clickhouse_connect.driver.client import Client

from fraud_assets.clickhouse.client import quote_identifier
from fraud_assets.monitoring.histograms import Histogram

FEATURE, SCORE = "feature", "score"
TABLES = {FEATURE: "feature_snapshots", SCORE: "detected_anomalies_ensemble"}
# The stored scores of every scored transaction, as in detected_anomalies_ensemble.
SCORE_COLUMNS: tuple[str, ...] = (
    "statistical_risk",
    "isolation_score",
    "reconstruction_error",
    "total_risk_score",
)


def write_reference(
    client: Client,
    version: str,
    series: str,
    histograms: Mapping[str, Histogram],
    reference_window: str,
) -> None:
    """Replace the reference of (version, series): removed columns must not linger."""
    client.command(
        "DELETE FROM drift_reference WHERE model_version = {version:String} "
        "AND series = {series:String}",
        parameters={"version": version, "series": series},
        settings={"lightweight_deletes_sync": 2},
    )
    rows = [
        [version, series, name, h.edges.tolist(), h.counts.tolist(), h.rows, reference_window]
        for name, h in histograms.items()
    ]
    if rows:
        client.insert(
            "drift_reference",
            rows,
            column_names=[
                "model_version",
                "series",
                "name",
                "edges",
                "counts",
                "rows",
                "reference_window",
            ],  # fmt: skip
        )


def read_reference(client: Client, version: str, series: str) -> dict[str, Histogram]:
    result = client.query(
        "SELECT name, edges, counts FROM drift_reference FINAL "
        "WHERE model_version = {version:String} AND series = {series:String} ORDER BY name",
        parameters={"version": version, "series": series},
    )
    return {
        name: Histogram(np.asarray(edges, dtype=np.float64), np.asarray(counts, dtype=np.int64))
        for name, edges, counts in result.result_rows
    }


def hourly_rows(client: Client, table: str, start: datetime, end: datetime) -> list[tuple]:
    """(hour, model_version, rows) of ``table`` in [start, end): what picks windows and versions."""
    return client.query(
        f"SELECT toStartOfHour(timestamp) AS hour, model_version, count() "  # noqa: S608
        f"FROM {quote_identifier(table)} "
        "WHERE timestamp >= {start:DateTime('UTC')} AND timestamp < {end:DateTime('UTC')} "
        "GROUP BY hour, model_version ORDER BY hour, model_version",
        parameters={"start": start, "end": end},
    ).result_rows


def table_columns(client: Client, table: str) -> set[str]:
    return {
        row[0]
        for row in client.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() "
            "AND table = {table:String}",
            parameters={"table": table},
        ).result_rows
    }


def _literal(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"reference edges must be finite, got {value!r}")
    return repr(float(value))


def bin_expression(column: str, edges: Sequence[float]) -> str:
    """SQL for the bin of ``column``: the number of edges at or below the value."""
    quoted = quote_identifier(column)
    if len(edges) == 0:
        return "toUInt8(0)"
    branches = ", ".join(f"{quoted} < {_literal(e)}, {i}" for i, e in enumerate(edges))
    return f"toUInt8(multiIf({branches}, {len(edges)}))"


def hourly_histogram_sql(table: str, references: Mapping[str, Histogram]) -> str:
    """Per hour of ``[start, end)``: the rows of ``version`` and each column's bin counts.

    Parameters: ``start``, ``end`` and ``version`` (rows scored by it). The
    column counts come in the order of ``references``.
    """
    # Column names are quoted identifiers and edges float literals; values are bound parameters.
    histograms = ",\n        ".join(
        f"countResample(0, {len(h.edges) + 1}, 1)({bin_expression(name, h.edges)})"
        for name, h in references.items()
    )
    return f"""
SELECT toStartOfHour(timestamp) AS hour, count() AS n, [
        {histograms}
    ] AS column_counts
FROM {quote_identifier(table)}
WHERE timestamp >= {{start:DateTime('UTC')}} AND timestamp < {{end:DateTime('UTC')}}
  AND model_version = {{version:String}}
GROUP BY hour
ORDER BY hour
"""  # noqa: S608


def hourly_bin_counts(
    client: Client,
    series: str,
    version: str,
    references: Mapping[str, Histogram],
    start: datetime,
    end: datetime,
) -> dict[datetime, tuple[int, list[np.ndarray]]]:
    """{hour start: (rows, per-column bin counts in the order of ``references``)}.

    One scan for every hour of ``[start, end)``: bin counts add up, so any
    window of whole hours is the sum of its hours (a backfill's windows come
    from one query, not one each).
    """
    if not references:
        return {}
    result = client.query(
        hourly_histogram_sql(TABLES[series], references),
        parameters={"start": start, "end": end, "version": version},
    )
    return {
        hour: (int(n), [np.asarray(c, dtype=np.int64) for c in counts])
        for hour, n, counts in result.result_rows
    }
