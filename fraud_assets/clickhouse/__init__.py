"""ClickHouse access: one DSN, embedded (chdb) or a server, through clickhouse-connect."""

from fraud_assets.clickhouse.client import EmbeddedBusyError, connect, redact_dsn
from fraud_assets.clickhouse.migrations import apply_migrations
from fraud_assets.clickhouse.resource import ClickHouseResource

__all__ = [
    "ClickHouseResource",
    "EmbeddedBusyError",
    "apply_migrations",
    "connect",
    "redact_dsn",
]
