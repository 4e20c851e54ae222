"""The local instance's event log: Dagster's SQLite storage, a batch in one transaction.

Dagster's SQLite storage stores a batch of events one at a time: per event it
opens the run's database, inserts, commits and closes it (a WAL checkpoint),
and does the same again in the cross-run index for every asset event. A
single-run backfill of the scoring job over a week records about 3,700 such
events (an asset's planned event and its materialization, per hour), and on
this storage they took about half of the backfill's time. Here a batch is one
transaction on the run's database and one on the index: the same rows as
storing the events one by one (in the run's database in the same order; in
the index an asset check's rows follow the batch's asset rows). A batch
holding anything but asset and asset check events (run status changes
update run storage too) takes Dagster's one-by-one path.

Dagster hands a storage batches only when ``DAGSTER_EVENT_BATCH_SIZE`` is set
(the Docker deployment sets it for its Postgres storage). An instance with
this storage sets it for its process, when unset, to ``DEFAULT_BATCH_SIZE``:
choosing the storage is choosing batches.

``LOCAL_INSTANCE_YAML`` (``fraud_assets/local_dagster.yaml``) names it;
``ensure_local_instance`` copies that file into a DAGSTER_HOME that has no
``dagster.yaml`` yet (``fraud-assets demo``, and ``make dev`` through
``python -m fraud_assets.local_event_log "$DAGSTER_HOME"``).
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
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sqlalchemy_compat import db_result

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
        self._home = home
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
                if any(event_id is None for event_id in ids):
                    raise DagsterInvariantViolationError(
                        "Cannot store asset event tags for null event id."
                    )
                self._store_asset_event_tags(conn, [event for event, _ in assets], ids)
                for (event, _), event_id in zip(assets, ids, strict=True):
                    self._store_asset_event(conn, event, event_id)

        # Few per batch, and each opens the index itself: one at a time, as store_event does.
        for event, statement in zip(events, statements, strict=True):
            if event.dagster_event_type in ASSET_CHECK_EVENTS:
                with self.index_connection() as conn, db_result(conn, statement) as result:
                    event_id = result.inserted_primary_key[0]
                self.store_asset_check_event(event, event_id)


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


if __name__ == "__main__":  # `make dev`: python -m fraud_assets.local_event_log "$DAGSTER_HOME"
    print(f"Dagster instance: {ensure_local_instance(sys.argv[1])}")
