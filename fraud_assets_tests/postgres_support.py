"""A throwaway PostgreSQL cluster on loopback (Debian's ``postgresql`` package).

One server per test session; each user asks for its own database, so Dagster
instances of different tests never see each other's runs or pool limits.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PASSWORD = "deployment-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parents[1].name)
    )
    if found:
        return Path(found[-1]).parent
    if os.environ.get("CI"):
        pytest.fail("PostgreSQL server binaries are missing: .ci/system-deps.sh installs them")
    pytest.skip("PostgreSQL server is not installed (make system-deps installs it)")


def as_server_user(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: drop to the ``postgres`` account then."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def run_checked(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)
    assert result.returncode == 0, f"{argv[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result


@dataclass
class PostgresCluster:
    sockets: Path
    port: int

    def database(self, name: str) -> dict[str, str]:
        """A database ``name`` owned by the ``dagster`` role (created on first use).

        Returns the DAGSTER_POSTGRES_* variables that docker/dagster.yaml reads.
        """
        import psycopg2

        admin = psycopg2.connect(
            host=str(self.sockets), port=self.port, user="postgres", dbname="postgres"
        )
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{name}" OWNER dagster')
        admin.close()
        return {
            "DAGSTER_POSTGRES_HOST": "127.0.0.1",
            "DAGSTER_POSTGRES_PORT": str(self.port),
            "DAGSTER_POSTGRES_DB": name,
            "DAGSTER_POSTGRES_USER": "dagster",
            "DAGSTER_POSTGRES_PASSWORD": PASSWORD,
        }


def connect(environment: dict[str, str]) -> Any:
    """A psycopg2 connection to the database that ``environment``'s DAGSTER_POSTGRES_* name."""
    import psycopg2

    return psycopg2.connect(
        host=environment["DAGSTER_POSTGRES_HOST"],
        port=int(environment["DAGSTER_POSTGRES_PORT"]),
        dbname=environment["DAGSTER_POSTGRES_DB"],
        user=environment["DAGSTER_POSTGRES_USER"],
        password=environment["DAGSTER_POSTGRES_PASSWORD"],
    )


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL server on a free loopback port with a ``dagster`` login role."""
    bin_dir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="fraud_pg_"))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        for path in (root, sockets):
            os.chown(path, account.pw_uid, account.pw_gid)
    port = free_port()
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data)]
    run_checked(
        as_server_user(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
            ]
        )
    )
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    run_checked(as_server_user([*pg_ctl, "-l", str(log), "-o", options, "-w", "-t", "60", "start"]))
    try:
        import psycopg2

        admin = psycopg2.connect(host=str(sockets), port=port, user="postgres", dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute("CREATE ROLE dagster LOGIN PASSWORD %s", (PASSWORD,))
        admin.close()
        yield PostgresCluster(sockets=sockets, port=port)
    finally:
        subprocess.run(
            as_server_user([*pg_ctl, "-m", "immediate", "-w", "-t", "60", "stop"]),
            capture_output=True,
            timeout=90,
        )
        shutil.rmtree(root, ignore_errors=True)
