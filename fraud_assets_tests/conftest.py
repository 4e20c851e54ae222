"""Shared fixtures: every test gets its own embedded ClickHouse and model folder.

Nothing here is a stand-in: the databases are the real ClickHouse engine
(chdb) in temporary folders.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests (hypothesis) draw new examples on every local run, so running the
# suite keeps looking for inputs that break it. CI replays the same examples each
# time (seeded from each test): a landing fails on a regression, not on a new draw.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# Keep tests away from the developer's own .data/ and .models/, and Dagster's
# instance in a temporary home, before any fraud_assets module reads settings.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="fraud_assets_tests_"))
os.environ.setdefault("FRAUD_DATA_DIR", str(_SESSION_DIR / "data"))
os.environ.setdefault("FRAUD_MODEL_DIR", str(_SESSION_DIR / "models"))
os.environ.pop("CLICKHOUSE_URL", None)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fraud_assets.clickhouse import ClickHouseResource  # noqa: E402
from fraud_assets_tests.postgres_support import postgres_cluster  # noqa: E402, F401 (fixture)


@pytest.fixture
def clickhouse_dsn(tmp_path: Path) -> str:
    return f"chdb://{tmp_path / 'clickhouse'}"


@pytest.fixture
def clickhouse(clickhouse_dsn: str) -> ClickHouseResource:
    """A ClickHouse resource on a fresh embedded database with all migrations applied."""
    return ClickHouseResource(dsn=clickhouse_dsn)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path
