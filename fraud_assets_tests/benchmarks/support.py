"""What the benchmark scripts share: one copy instead of one per script.

The scripts run by path (``python fraud_assets_tests/benchmarks/bench_x.py``), so
their folder is ``sys.path[0]`` and they import this module as ``support``. It
imports nothing from fraud_assets at module level: a script must call
``use_workdir`` before fraud_assets reads its settings.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Quality-gate floors at 0: the benchmarks measure time and memory, not detection.
OPEN_GATES = {"min_roc_auc": 0.0, "min_recall_at_2pct": 0.0, "min_block_precision": 0.0}


def use_workdir(workdir: Path) -> None:
    """Point every store at the work folder before fraud_assets reads its settings."""
    os.environ["FRAUD_DATA_DIR"] = str(workdir / "data")
    os.environ["FRAUD_MODEL_DIR"] = str(workdir / "models")
    os.environ["DAGSTER_HOME"] = str(workdir / "dagster")
    os.environ.pop("CLICKHOUSE_URL", None)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from fraud_assets.event_storage import ensure_local_instance

    ensure_local_instance(workdir / "dagster")  # the instance `make dev` and the demo use


def peak_rss_mib() -> float:
    """This process's resident-set high-water mark (``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (the embedded engine's
    included): steadier than wall time on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Timer:
    """Wall and CPU seconds of a ``with`` block, in ``wall`` and ``cpu`` after it."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = cpu_seconds() - self.cpu


def fast_training_ops(lookback_days: int, epochs: int) -> dict[str, Any]:
    """Op config for a quick bundle: a short window, few epochs at batch 256, open gates."""
    return {
        "extract_training_data": {"config": {"lookback_days": lookback_days}},
        "train_autoencoder": {"config": {"epochs": epochs, "batch_size": 256}},
        "validate_models_validation_quality_gates": {"config": dict(OPEN_GATES)},
    }


def run_training(week: str, ops: dict[str, Any]) -> tuple[Any, Timer]:
    """The deployed ``train_ensemble_models`` job for ``week``, in this process, on the
    work folder's Dagster instance, logging warnings only; raises if a step fails.

    Returns the run's result and its timer, which leaves out importing the definitions.
    """
    import dagster as dg

    from fraud_assets.definitions import defs

    with Timer() as timer:
        result = defs.resolve_job_def("train_ensemble_models").execute_in_process(
            partition_key=week,
            instance=dg.DagsterInstance.get(),
            run_config={"ops": ops, **QUIET},
            raise_on_error=True,
        )
    return result, timer
