"""Where things live, read from the environment with zero-configuration defaults.

Every default points inside the project's git-ignored folders so that a fresh
clone runs with no infrastructure: ClickHouse embedded through chdb under
``.data/clickhouse`` and model artifacts under ``.models``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SQL_DIR = Path(os.environ.get("FRAUD_SQL_DIR", PROJECT_ROOT / "sql"))
DEFAULT_DATABASE = "analytics"


def data_dir() -> Path:
    return Path(os.environ.get("FRAUD_DATA_DIR", PROJECT_ROOT / ".data"))


def clickhouse_url() -> str:
    """The one ClickHouse setting: ``chdb:///abs/path`` (embedded) or ``http(s)://...``."""
    url = os.environ.get("CLICKHOUSE_URL", "").strip()
    return url or f"chdb://{(data_dir() / 'clickhouse').resolve()}"


def clickhouse_database() -> str:
    return os.environ.get("CLICKHOUSE_DATABASE", DEFAULT_DATABASE)


def model_dir() -> Path:
    return Path(os.environ.get("FRAUD_MODEL_DIR", PROJECT_ROOT / ".models"))


def intermediate_dir() -> Path:
    """Scratch storage for the intermediate frames passed between one graph's steps."""
    return Path(os.environ.get("FRAUD_INTERMEDIATE_DIR", data_dir() / "intermediate"))


@functools.cache
def git_commit() -> str:
    """The code version stamped into model versions: env FRAUD_GIT_COMMIT, else git, else 'unknown'."""
    commit = os.environ.get("FRAUD_GIT_COMMIT", "").strip()
    if commit:
        return commit[:12]
    head = PROJECT_ROOT / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            ref_path = PROJECT_ROOT / ".git" / ref[5:]
            if ref_path.exists():
                return ref_path.read_text().strip()[:7]
            packed = PROJECT_ROOT / ".git" / "packed-refs"
            for line in packed.read_text().splitlines() if packed.exists() else []:
                if line.endswith(" " + ref[5:]):
                    return line.split()[0][:7]
            return "unknown"
        return ref[:7]
    except OSError:
        return "unknown"
