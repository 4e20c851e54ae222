"""The Dagster resource every asset uses to reach ClickHouse."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
from clickhouse_connect.driver.client import Client
from pydantic import Field

from fraud_assets import settings
from fraud_assets.clickhouse.client import connect, redact_dsn
from fraud_assets.clickhouse.migrations import apply_migrations

_migrated: set[tuple[str, str]] = set()


class ClickHouseResource(dg.ConfigurableResource):
    """ClickHouse through clickhouse-connect, embedded (``chdb://``) or a server (``http://``).

    Migrations from ``sql/`` are applied on first use in each process, so the
    graphs work on an empty database.
    """

    dsn: str = Field(
        default_factory=settings.clickhouse_url,
        description="chdb:///abs/path for the embedded engine or http(s)://user:pass@host:port. "
        "Set it with EnvVar('CLICKHOUSE_URL') so credentials never appear in run config.",
    )
    database: str = Field(default_factory=settings.clickhouse_database)
    lock_timeout_s: float | None = Field(
        default=None,
        description="How long to wait for an embedded database held by another process.",
    )

    @contextlib.contextmanager
    def get_client(self) -> Iterator[Client]:
        """A client for one unit of I/O; release it before long computations."""
        with connect(self.dsn, self.database, self.lock_timeout_s) as client:
            key = (self.dsn, self.database)
            if key not in _migrated:
                apply_migrations(client)
                _migrated.add(key)
            yield client

    @property
    def display_dsn(self) -> str:
        return redact_dsn(self.dsn)
