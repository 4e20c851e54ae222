"""The Docker deployment's event log: Dagster's PostgreSQL storage, planned events batched.

Dagster's PostgreSQL storage writes a batch of materializations (or
observations) in one statement, but stores a batch of planned events one by
one: an insert and a commit, then the asset's index entry and another commit,
per asset and hour. In the 7-day single-run backfill of ``bench_load.py``
those took 21 of the run's 47 seconds. Here a batch of planned events (of
assets and of asset checks) is one multi-row insert and one index
transaction, recording the same rows. Every other batch takes Dagster's path.
See ``event_storage.py`` for the SQLite counterpart.
"""

from __future__ import annotations

from collections.abc import Sequence

from dagster._core.events import DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqlEventLogStorageTable
from dagster_postgres import PostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

from fraud_assets.event_storage import index_asset_events

PLANNED_EVENTS = frozenset(
    {
        DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
        DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
    }
)


class BatchingPostgresEventLogStorage(PostgresEventLogStorage):
    """``PostgresEventLogStorage`` that also writes a batch of planned events at once.

    Config: as ``PostgresEventLogStorage`` (``postgres_db`` or ``postgres_url``).
    """

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> BatchingPostgresEventLogStorage:
        return cls(
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            inst_data=inst_data,
            token_provider=get_token_provider_from_config(config_value),
        )

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if not events or not all(
            event.is_dagster_event and event.dagster_event_type in PLANNED_EVENTS
            for event in events
        ):
            return super().store_event_batch(events)
        with self._connect() as conn:
            result = conn.execute(
                self.prepare_insert_event_batch(events).returning(SqlEventLogStorageTable.c.id)
            )
            ids = [int(row[0]) for row in result.fetchall()]
        assets = [
            (event, event_id)
            for event, event_id in zip(events, ids, strict=True)
            if event.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED
        ]
        if assets:
            with self.index_transaction() as conn:
                index_asset_events(
                    self, conn, [event for event, _ in assets], [i for _, i in assets]
                )
        for event, event_id in zip(events, ids, strict=True):
            if event.dagster_event_type == DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED:
                self.store_asset_check_event(event, event_id)
