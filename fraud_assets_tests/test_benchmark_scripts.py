"""The benchmark scripts start when run by path from anywhere.

They are not collected as tests and import their shared ``support`` module
from their own folder (``sys.path[0]`` for a script run by path); a broken
import there would otherwise only show when someone next runs a benchmark.
"""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).parent / "benchmarks").glob("bench_*.py"))


def test_every_benchmark_script_is_checked() -> None:
    assert len(SCRIPTS) >= 11


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_script_starts_by_path(script: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: "), done.stdout
