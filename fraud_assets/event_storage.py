"""Dagster event logs that store a batch of asset events in one transaction.

A single-run backfill of the scoring job over a week records about 3,700
asset events: each asset's planned event and its materialization, per hour.
Dagster's storages write most of them one at a time, with a commit each, and
on both storages used here that was about half of the backfill's time.

* ``BatchingSqliteEventLogStorage``, the local instance's. Dagster's SQLite
  storage stores any batch one event at a time: per event it opens the run's
  database, inserts, commits and closes it (a WAL checkpoint), and does the
  same in the cross-run index for every asset event. Here a batch is one
  transaction on the run's database and one on the index.
* ``BatchingPostgresEventLogStorage`` (``postgres_event_storage.py``, apart so
  the local instance does not import PostgreSQL's driver), the Docker
  deployment's. Dagster's PostgreSQL storage batches materializations but
  stores planned events one by one.

Either way the rows are those of storing the events one by one. A batch
holding anything else (run status changes also update run storage) takes
Dagster's own path. Both reuse Dagster's private helpers for the index rows
(``_store_asset_event_tags``, ``_store_asset_event``), so they follow the
pinned Dagster release; ``test_event_storage.py`` compares every event log
table against Dagster's own storages after the same backfill.

Dagster hands a storage batches only when ``DAGSTER_EVENT_BATCH_SIZE`` is set
(the Docker deployment sets it in its environment). An instance with the
SQLite storage sets it for its process, when unset, to ``DEFAULT_BATCH_SIZE``:
choosing the storage is choosing batches.

``LOCAL_INSTANCE_YAML`` (``fraud_assets/local_dagster.yaml``) is the local
instance; ``ensure_local_instance`` copies it into a DAGSTER_HOME that has no
``dagster.yaml`` yet (``fraud-assets demo``, and ``make dev`` through
``python -m fraud_assets.event_storage "$DAGSTER_HOME"``).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from dagster import Field, StringSource
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqlEventLogStorage, SqliteEventLogStorage
from dagster._core.storage.sqlalchemy_compat import db_result
from sqlalchemy.engine import Connection

BATCH_SIZE_VARIABLE = "DAGSTER_EVENT_BATCH_SIZE"
DEFAULT_BATCH_SIZE = "100"
LOCAL_INSTANCE_YAML = Path(__file__).with_name("local_dagster.yaml")


class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` whose ``store_event_batch`` uses one transaction per database.

    Config: ``home``, the instance's DAGSTER_HOME; the databases live where
    Dagster's default storage keeps them (``<home>/history/runs``), so an
    existing local instance keeps its history.
    """

    def __init__(self, home: str, inst_data=None) -> None:
        super().__init__(os.path.join(home, "history", "runs"), inst_data=inst_data)
        os.environ.setdefault(BATCH_SIZE_VARIABLE, DEFAULT_BATCH_SIZE)

    @classmethod
    def config_type(cls):
        return {"home": Field(StringSource, description="The instance's DAGSTER_HOME.")}

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> BatchingSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if not all(_batchable(event) for event in events):
            return super().store_event_batch(events)
        statements = [self.prepare_insert_event(event) for event in events]
        for run_id in dict.fromkeys(event.run_id for event in events):
            with self.run_connection(run_id) as conn:
                for event, statement in zip(events, statements, strict=True):
                    if event.run_id == run_id:
                        conn.execute(statement)

        # The cross-run index mirrors the asset events (and asset check events) with ids of its own.
        assets = [
            (event, statement)
            for event, statement in zip(events, statements, strict=True)
            if event.dagster_event_type in ASSET_EVENTS
        ]
        if assets:
            with self.index_transaction() as conn:
                ids = []
                for _, statement in assets:
                    with db_result(conn, statement) as result:
                        ids.append(result.inserted_primary_key[0])
                index_asset_events(self, conn, [event for event, _ in assets], ids)
        for event, statement in zip(events, statements, strict=True):
            if event.dagster_event_type in ASSET_CHECK_EVENTS:
                with self.index_connection() as conn, db_result(conn, statement) as result:
                    event_id = result.inserted_primary_key[0]
                self.store_asset_check_event(event, event_id)


def index_asset_events(
    storage: SqlEventLogStorage,
    conn: Connection,
    events: Sequence[EventLogEntry],
    ids: Sequence[int | None],
) -> None:
    """What ``store_event`` records per asset event besides the event row, for a whole batch
    in the caller's transaction: its indexed tags and its asset's latest-event entry."""
    if any(event_id is None for event_id in ids):
        raise DagsterInvariantViolationError("Cannot store asset event tags for null event id.")
    storage._store_asset_event_tags(conn, events, ids)
    for event, event_id in zip(events, ids, strict=True):
        storage._store_asset_event(conn, event, event_id)


def _batchable(event: EventLogEntry) -> bool:
    return event.is_dagster_event and (
        event.dagster_event_type in ASSET_EVENTS or event.dagster_event_type in ASSET_CHECK_EVENTS
    )


def ensure_local_instance(home: str | Path) -> Path:
    """``home``/dagster.yaml, copied from ``LOCAL_INSTANCE_YAML`` if there is none (kept if there is)."""
    target = Path(home) / "dagster.yaml"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(LOCAL_INSTANCE_YAML, target)
    return target


if __name__ == "__main__":  # `make dev`: python -m fraud_assets.event_storage "$DAGSTER_HOME"
    print(f"Dagster instance: {ensure_local_instance(sys.argv[1])}")
