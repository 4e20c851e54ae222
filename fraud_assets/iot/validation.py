"""The seed's ``validate_sensor_data``: empty, nulls, physical ranges; and the run summary.

Each rule returns a :class:`RuleResult` with the numbers behind its verdict,
so the asset checks can show *why* a partition failed, not only that it did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fraud_assets.generator.sensors import METRICS, PHYSICAL_RANGES, READING_COLUMNS


@dataclass(frozen=True)
class RuleResult:
    passed: bool
    description: str
    details: dict[str, Any] = field(default_factory=dict)


def check_not_empty(readings: pd.DataFrame) -> RuleResult:
    rows = len(readings)
    return RuleResult(rows > 0, f"{rows} reading(s)", {"rows": rows})


def check_no_nulls(readings: pd.DataFrame) -> RuleResult:
    """No NULL and no NaN: a Float32 column stores a lost value as NaN, not NULL."""
    counts = {
        column: int(readings[column].isna().sum()) if column in readings else len(readings)
        for column in READING_COLUMNS
    }
    bad = {column: n for column, n in counts.items() if n}
    text = "no missing values" if not bad else f"missing values: {bad}"
    return RuleResult(not bad, text, {f"nulls/{c}": n for c, n in counts.items()})


def check_physical_ranges(readings: pd.DataFrame) -> RuleResult:
    """Temperature −40..85 °C, humidity 0..100 %, pressure 870..1085 hPa (not Pa)."""
    details: dict[str, Any] = {}
    bad: dict[str, int] = {}
    for metric in METRICS:
        low, high = PHYSICAL_RANGES[metric]
        values = readings[metric].to_numpy(dtype=np.float64)
        outside = int(((values < low) | (values > high)).sum())
        details[f"outside/{metric}"] = outside
        details[f"range/{metric}"] = f"{low:g}..{high:g}"
        if len(values):
            details[f"min/{metric}"] = (
                float(np.nanmin(values)) if np.isfinite(values).any() else None
            )
            details[f"max/{metric}"] = (
                float(np.nanmax(values)) if np.isfinite(values).any() else None
            )
        if outside:
            bad[metric] = outside
    hint = ""
    if bad.get("pressure") and np.nanmedian(readings["pressure"]) > 10_000:
        hint = " (pressure looks like Pa; the table holds hPa)"
    text = "all readings within physical ranges" if not bad else f"outside range: {bad}{hint}"
    return RuleResult(not bad, text, details)


def validate_sensor_data(readings: pd.DataFrame) -> dict[str, RuleResult]:
    """Every rule by name, as the seed's validator ran them."""
    return {
        "not_empty": check_not_empty(readings),
        "no_nulls": check_no_nulls(readings),
        "physical_ranges": check_physical_ranges(readings),
    }


def summary_table(readings: pd.DataFrame) -> pd.DataFrame:
    """Per sensor: readings, first/last time and min/mean/max of each metric (the seed's print_summary)."""
    if readings.empty:
        return pd.DataFrame(columns=["sensor_id", "readings"])
    grouped = readings.groupby("sensor_id", sort=True)
    table = grouped.agg(
        readings=("timestamp", "size"),
        first=("timestamp", "min"),
        last=("timestamp", "max"),
        **{
            f"{metric}_{stat}": (metric, stat)
            for metric in METRICS
            for stat in ("min", "mean", "max")
        },
    ).reset_index()
    return table


def markdown(table: pd.DataFrame, digits: int = 2) -> str:
    """A Markdown table for ``MetadataValue.md`` (no tabulate dependency)."""
    if table.empty:
        return "_no rows_"

    def cell(value: object) -> str:
        if isinstance(value, float | np.floating):
            return f"{value:.{digits}f}"
        if isinstance(value, pd.Timestamp):
            return value.strftime("%Y-%m-%d %H:%M")
        return str(value)

    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
