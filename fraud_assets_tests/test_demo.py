"""``fraud-assets demo`` (what ``make demo`` runs), on a small population, in its own process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_demo_runs_the_whole_flow_and_prints_a_readable_summary(tmp_path: Path):
    env = {
        **os.environ,
        "FRAUD_DATA_DIR": str(tmp_path / "data"),
        "FRAUD_MODEL_DIR": str(tmp_path / "models"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    env.pop("CLICKHOUSE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "fraud_assets.cli", "demo", "--users", "300", "--epochs", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    steps = re.findall(r"^== (\d)/4 ", result.stdout, flags=re.MULTILINE)
    assert steps == ["1", "2", "3", "4"], result.stdout
    assert result.stdout.count("succeeded in") == 2  # the training run and the scoring run
    summary = result.stdout.split("== 4/4 summary", 1)[1]
    assert re.search(r"^\s+approved\s+[\d,]+\s+of which labelled fraud", summary, re.MULTILINE)
    assert "per layer against the labels:" in summary
    assert re.search(r"ensemble \(review\+block\)\s+flagged\s+\d+", summary)
    assert re.search(r"alerts: [01] notification", summary)
    # Readable: the runs' own messages only, not Dagster's per-event lines or API notes.
    assert " - DEBUG - " not in output
    assert "BetaWarning" not in output and "PreviewWarning" not in output
    assert "Definitions.resolve_job_def" not in output
