"""Drift of one hour against the reference of the model version that scored it.

An hour is judged on a *window* that ends with it: the hour alone when it has
``min_rows`` rows of its version, else the hour plus as many preceding hours as
it takes to reach ``min_rows`` (at most ``max_window_hours``). Below that the
hour is not judged: with n rows and k bins the PSI of an undrifted sample is
about (k − 1) / n, so 100 rows would read as drift on their own.

Severity comes from the PSI: at or above ``warn`` a warning, at or above
``error`` an error (0.1 / 0.25 by default, the usual reading of PSI). The
binned KS distance is reported beside it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from clickhouse_connect.driver.client import Client

from fraud_assets.monitoring import drift_sql, histograms
from fraud_assets.monitoring.histograms import Histogram

OK, WARN, ERROR = "ok", "warn", "error"
_RANK = {OK: 0, WARN: 1, ERROR: 2}
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class DriftLevels:
    warn: float = 0.1
    error: float = 0.25

    def __post_init__(self) -> None:
        if not 0 < self.warn <= self.error:
            raise ValueError(f"need 0 < warn <= error, got warn={self.warn} error={self.error}")

    def level(self, psi: float) -> str:
        if psi >= self.error:
            return ERROR
        return WARN if psi >= self.warn else OK


@dataclass(frozen=True)
class SeriesDrift:
    name: str
    rows: int
    psi: float
    ks: float
    level: str


@dataclass
class HourDrift:
    """The verdict for one hour; ``note`` says why it was not judged when ``series`` is empty."""

    hour: datetime
    version: str | None = None
    window_start: datetime | None = None
    rows: int = 0
    series: list[SeriesDrift] = field(default_factory=list)
    note: str = ""

    @property
    def level(self) -> str:
        return max((s.level for s in self.series), key=_RANK.__getitem__, default=OK)

    @property
    def breaches(self) -> list[SeriesDrift]:
        return sorted((s for s in self.series if s.level != OK), key=lambda s: s.psi, reverse=True)


def worst(levels: Iterable[str]) -> str:
    return max(levels, key=_RANK.__getitem__, default=OK)


def hour_versions(rows: Iterable[tuple]) -> dict[datetime, dict[str, int]]:
    """``hourly_rows`` output as {hour: {version: rows}}."""
    by_hour: dict[datetime, dict[str, int]] = defaultdict(dict)
    for hour, version, count in rows:
        by_hour[_naive_utc(hour)][version] = int(count)
    return by_hour


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def choose_window(
    counts: dict[datetime, dict[str, int]],
    hour: datetime,
    min_rows: int,
    max_window_hours: int,
) -> tuple[str | None, datetime | None, int]:
    """(version, window start, rows) for ``hour``; start is None when min_rows is out of reach.

    The version is the one that scored most of the hour's rows; earlier hours
    count only their rows of that version.
    """
    key = _naive_utc(hour)
    own = counts.get(key, {})
    if not own:
        return None, None, 0
    version = max(own, key=lambda v: (own[v], v))
    rows = 0
    for back in range(max_window_hours):
        start = key - back * HOUR
        rows += counts.get(start, {}).get(version, 0)
        if rows >= min_rows:
            return version, start.replace(tzinfo=hour.tzinfo), rows
    return version, None, rows


def evaluate_hours(
    client: Client,
    series: str,
    hours: list[datetime],
    levels: DriftLevels,
    min_rows: int,
    max_window_hours: int,
) -> list[HourDrift]:
    """Judge each UTC hour start in ``hours`` (tz-aware) for ``series`` ('feature' or 'score').

    One counting query per model version, whatever the number of hours: each
    window's counts are summed from the hourly counts.
    """
    if not hours:
        return []
    table = drift_sql.TABLES[series]
    first, last = min(hours), max(hours)
    counts = hour_versions(
        drift_sql.hourly_rows(client, table, first - max_window_hours * HOUR, last + HOUR)
    )
    verdicts = []
    by_version: dict[str, list[HourDrift]] = defaultdict(list)
    for hour in sorted(hours):
        version, start, rows = choose_window(counts, hour, min_rows, max_window_hours)
        verdict = HourDrift(hour=hour, version=version, window_start=start, rows=rows)
        verdicts.append(verdict)
        if version is None:
            verdict.note = "no rows in this hour"
        elif start is None:
            verdict.note = (
                f"{rows} rows of {version} in the last {max_window_hours} h, fewer than "
                f"min_rows={min_rows}: not judged"
            )
        else:
            by_version[version].append(verdict)
    columns = drift_sql.table_columns(client, table) if by_version else set()
    for version, judged in by_version.items():
        reference = {
            name: h
            for name, h in drift_sql.read_reference(client, version, series).items()
            if name in columns
        }
        if not reference:
            for verdict in judged:
                verdict.note = f"no {series} reference stored for model version {version}"
            continue
        hourly = drift_sql.hourly_bin_counts(
            client,
            series,
            version,
            reference,
            min(v.window_start for v in judged),
            max(v.hour for v in judged) + HOUR,
        )
        for verdict in judged:
            verdict.series = window_drift(hourly, reference, verdict, levels)
    return verdicts


def window_drift(
    hourly: dict[datetime, tuple[int, list]],
    reference: dict[str, Histogram],
    verdict: HourDrift,
    levels: DriftLevels,
) -> list[SeriesDrift]:
    """PSI and KS of every column over the verdict's window, from the hours' bin counts."""
    start, end = _naive_utc(verdict.window_start), _naive_utc(verdict.hour)
    hours = [counts for hour, counts in hourly.items() if start <= _naive_utc(hour) <= end]
    rows = sum(n for n, _ in hours)
    if not rows:
        return []
    result = []
    for i, (name, h) in enumerate(reference.items()):
        window = np.sum([counts[i] for _, counts in hours], axis=0)
        psi = histograms.psi(window, h.counts)
        result.append(
            SeriesDrift(
                name=name,
                rows=rows,
                psi=psi,
                ks=histograms.binned_ks(window, h.counts),
                level=levels.level(psi),
            )
        )
    return result
