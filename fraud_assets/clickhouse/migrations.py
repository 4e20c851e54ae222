"""Numbered SQL migrations from ``sql/``, applied once each and recorded.

Files are named ``NNN_description.sql`` and hold one or more statements
separated by ``;`` lines. Each applied file is recorded in
``schema_migrations`` with its checksum, so applying twice is a no-op and an
edited, already-applied migration is reported instead of silently re-run.
Every statement is written to be idempotent (``IF NOT EXISTS``), so a crash in
the middle of a file is repaired by applying again.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from clickhouse_connect.driver.client import Client

from fraud_assets import settings

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")

_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        body = "\n".join(
            line for line in self.sql.splitlines() if not line.strip().startswith("--")
        )
        return [stmt.strip() for stmt in body.split(";") if stmt.strip()]


def discover(sql_dir: Path | None = None) -> list[Migration]:
    sql_dir = sql_dir or settings.SQL_DIR
    found: dict[int, Migration] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name!r} must be named NNN_description.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(
                f"two migrations share version {version:03d}: {found[version].name}, {path.name}"
            )
        found[version] = Migration(version, path.name, path.read_text())
    return [found[v] for v in sorted(found)]


def applied(client: Client) -> dict[int, str]:
    client.command(_MIGRATIONS_TABLE)
    rows = client.query("SELECT version, checksum FROM schema_migrations FINAL").result_rows
    return {int(version): checksum for version, checksum in rows}


def apply_migrations(client: Client, sql_dir: Path | None = None) -> list[str]:
    """Apply every pending migration to the client's database; return the names applied."""
    done = applied(client)
    newly: list[str] = []
    for migration in discover(sql_dir):
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                log.warning(
                    "migration %s changed after it was applied; not re-running it", migration.name
                )
            continue
        for statement in migration.statements():
            client.command(statement)
        client.insert(
            "schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        newly.append(migration.name)
        log.info("applied migration %s", migration.name)
    return newly
