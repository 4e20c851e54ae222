"""Partitions shared by the graphs. All in UTC.

The start dates bound what Dagit lists; set FRAUD_PARTITIONS_START (ISO date)
to move them for a deployment with older history.
"""

from __future__ import annotations

import os

import dagster as dg

PARTITIONS_START = os.environ.get("FRAUD_PARTITIONS_START", "2025-01-01")

hourly_partitions = dg.HourlyPartitionsDefinition(
    start_date=f"{PARTITIONS_START}-00:00", timezone="UTC", end_offset=0
)

daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC")

# Weeks run Sunday 02:00 → Sunday 02:00 UTC, so the partition for a week closes
# exactly when the seed's weekly training schedule (Sunday 02:00) fires.
weekly_partitions = dg.WeeklyPartitionsDefinition(
    start_date=PARTITIONS_START, day_offset=0, hour_offset=2, timezone="UTC"
)
