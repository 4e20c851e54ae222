"""One running system for the end-to-end tests: seeded data, a promoted bundle, ``dagster dev``.

Select these tests with ``pytest -m e2e`` (or leave them out with ``-m "not e2e"``).
Screenshots and the server log go to ``test-artifacts/e2e/`` (git-ignored).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fraud_assets_tests.e2e.harness import REPO_ROOT, System, make_plan

ARTIFACTS = REPO_ROOT / "test-artifacts" / "e2e"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="package")
def system() -> System:
    """Seeded before the server starts: the seeding process has released the embedded DB.

    Package scope: the server stops after the last end-to-end test, not at the end of
    the whole suite.
    """
    root = Path(tempfile.mkdtemp(prefix="fraud_assets_e2e_"))
    system = System(root=root, plan=make_plan(datetime.now(UTC)))
    began = time.monotonic()
    system.seed_result = system.seed()
    system.timings["seed_s"] = time.monotonic() - began
    began = time.monotonic()
    try:
        system.start()
        system.timings["start_s"] = time.monotonic() - began
        print(f"\ne2e system at {system.base_url} ({root}): {system.timings}")
        yield system
    finally:
        with contextlib.suppress(Exception):
            system.wait_idle(timeout_s=120)  # let a run finish rather than kill it mid-write
        strays = system.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            shutil.copyfile(system.log_path, ARTIFACTS / "dagster_dev.log")
        shutil.rmtree(root, ignore_errors=True)
        assert not strays, "processes outlived dagster dev:\n" + "\n".join(strays)


@pytest.fixture(autouse=True)
def quiet_queue(system: System) -> None:
    """Each scenario starts with no run queued or running, so its waits measure only itself."""
    system.wait_idle(timeout_s=600)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, for fixtures that act on failures."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
