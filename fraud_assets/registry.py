"""The model registry in ClickHouse: register, look up and promote model versions.

A version is a bundle: the Isolation Forest, the autoencoder and the ensemble
(scaler, thresholds, calibration, rules) trained together share one version
string and are promoted together, so scoring always uses a consistent set.

Status changes are new rows of a ReplacingMergeTree keyed by
(model_type, version); readers use FINAL. A promotion writes the new 'active'
rows and the old versions' 'archived' rows in one INSERT into an unpartitioned
table, which ClickHouse applies atomically: a reader sees the old set or the
new one, never zero or two active versions of a model type. After each write
the small table is merged so that even a plain SELECT shows one row per version.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

MODEL_TYPES: tuple[str, ...] = ("isolation_forest", "autoencoder", "ensemble")

TESTING, ACTIVE, ARCHIVED, ROLLED_BACK, REJECTED = (
    "testing",
    "active",
    "archived",
    "rolled_back",
    "rejected",
)


class NoActiveModelError(RuntimeError):
    """Scoring needs a promoted model bundle and there is none."""


@dataclass
class ModelRecord:
    model_type: str
    version: str
    trained_at: datetime
    training_samples: int
    model_path: str
    scaler_path: str
    model_sha256: str
    scaler_sha256: str = ""
    precision: float = 0.0
    recall: float = 0.0
    f1_score: float = 0.0
    threshold: float = 0.0
    status: str = TESTING
    partition_key: str = ""
    metrics: dict = field(default_factory=dict)
    status_reason: str = ""

    @property
    def model_id(self) -> str:
        return f"{self.model_type}:{self.version}"


_COLUMNS = [
    "model_id", "model_type", "version", "trained_at", "training_samples", "precision",
    "recall", "f1_score", "threshold", "model_path", "scaler_path", "status", "model_sha256",
    "scaler_sha256", "partition_key", "metrics_json", "status_reason", "updated_at",
]  # fmt: skip


def _row(record: ModelRecord, updated_at: datetime) -> list:
    return [
        record.model_id,
        record.model_type,
        record.version,
        record.trained_at,
        int(record.training_samples),
        float(record.precision),
        float(record.recall),
        float(record.f1_score),
        float(record.threshold),
        record.model_path,
        record.scaler_path,
        record.status,
        record.model_sha256,
        record.scaler_sha256,
        record.partition_key,
        json.dumps(record.metrics, default=float, sort_keys=True),
        record.status_reason,
        updated_at,
    ]


def _now() -> datetime:
    return datetime.now(UTC)


def _write(client: Client, records: list[ModelRecord]) -> None:
    if not records:
        return
    now = _now()
    client.insert("model_registry", [_row(r, now) for r in records], column_names=_COLUMNS)
    client.command("OPTIMIZE TABLE model_registry FINAL")


def _from_row(row: dict) -> ModelRecord:
    return ModelRecord(
        model_type=row["model_type"],
        version=row["version"],
        trained_at=row["trained_at"],
        training_samples=row["training_samples"],
        model_path=row["model_path"],
        scaler_path=row["scaler_path"],
        model_sha256=row["model_sha256"],
        scaler_sha256=row["scaler_sha256"],
        precision=row["precision"],
        recall=row["recall"],
        f1_score=row["f1_score"],
        threshold=row["threshold"],
        status=row["status"],
        partition_key=row["partition_key"],
        metrics=json.loads(row["metrics_json"] or "{}"),
        status_reason=row["status_reason"],
    )


def _select(client: Client, where: str, parameters: dict) -> list[ModelRecord]:
    """``where`` is a constant of this module; values always travel as bound parameters."""
    result = client.query(
        f"SELECT {', '.join(_COLUMNS)} FROM model_registry FINAL WHERE {where} "  # noqa: S608
        "ORDER BY model_type, trained_at, version",
        parameters=parameters,
    )
    return [_from_row(dict(zip(result.column_names, r, strict=True))) for r in result.result_rows]


def all_versions(client: Client) -> list[ModelRecord]:
    return _select(client, "1", {})


def get_version(client: Client, version: str) -> dict[str, ModelRecord]:
    records = _select(client, "version = {version:String}", {"version": version})
    return {r.model_type: r for r in records}


def active_models(client: Client) -> dict[str, ModelRecord]:
    """The active record per model type (at most one each, by construction)."""
    records = _select(client, "status = {status:String}", {"status": ACTIVE})
    return {r.model_type: r for r in records}


def active_version(client: Client) -> str:
    """The version of the active ensemble bundle, or a clear error when none is promoted."""
    active = active_models(client).get("ensemble")
    if active is None:
        raise NoActiveModelError(
            "no active model bundle in model_registry: run the weekly training job "
            "(train_ensemble_models) for a week with data, or `fraud-assets demo`, first"
        )
    return active.version


def register(client: Client, records: list[ModelRecord]) -> list[ModelRecord]:
    """Record trained versions as 'testing'. Re-registering a version keeps its status."""
    existing = {
        (r.model_type, r.version): r
        for r in _select(
            client,
            "version IN {versions:Array(String)}",
            {"versions": [r.version for r in records]},
        )
    }
    to_write = []
    for record in records:
        previous = existing.get((record.model_type, record.version))
        status = previous.status if previous else TESTING
        to_write.append(dataclasses.replace(record, status=status))
    _write(client, to_write)
    return to_write


def set_status(client: Client, version: str, status: str, reason: str) -> None:
    records = get_version(client, version)
    _write(
        client,
        [dataclasses.replace(r, status=status, status_reason=reason) for r in records.values()],
    )


def promote(client: Client, version: str, reason: str) -> list[str]:
    """Make every model of ``version`` active and archive the versions they replace.

    Returns the archived versions. One INSERT carries all the changes.
    """
    candidate = get_version(client, version)
    if set(candidate) != set(MODEL_TYPES):
        raise ValueError(
            f"version {version} is incomplete in model_registry: has {sorted(candidate)}, "
            f"needs {list(MODEL_TYPES)}"
        )
    current = active_models(client)
    changes = [
        dataclasses.replace(r, status=ACTIVE, status_reason=reason) for r in candidate.values()
    ]
    archived = sorted({r.version for r in current.values() if r.version != version})
    changes += [
        dataclasses.replace(r, status=ARCHIVED, status_reason=f"replaced by {version}")
        for r in current.values()
        if r.version != version
    ]
    _write(client, changes)
    return archived


def rollback(client: Client, reason: str) -> str:
    """Reactivate the most recently archived bundle; the current one becomes 'rolled_back'."""
    current = active_version(client)
    archived = [
        r for r in all_versions(client) if r.model_type == "ensemble" and r.status == ARCHIVED
    ]
    if not archived:
        raise NoActiveModelError("no archived model bundle to roll back to")
    previous = max(archived, key=lambda r: (r.trained_at, r.version))
    changes = [
        dataclasses.replace(r, status=ROLLED_BACK, status_reason=reason)
        for r in get_version(client, current).values()
    ] + [
        dataclasses.replace(r, status=ACTIVE, status_reason=f"rollback from {current}: {reason}")
        for r in get_version(client, previous.version).values()
    ]
    _write(client, changes)
    return previous.version


@dataclass
class ReplayVerdict:
    """The replay gate's verdict on a candidate version (table ``model_replay_verdicts``)."""

    version: str
    partition_key: str
    active_version: str
    passed: bool
    reason: str
    window_start: datetime
    window_end: datetime
    label_delay_days: int
    report: dict = field(default_factory=dict)


_REPLAY_COLUMNS = [
    "version", "partition_key", "active_version", "passed", "reason", "window_start",
    "window_end", "label_delay_days", "report_json", "updated_at",
]  # fmt: skip


def record_replay(client: Client, verdict: ReplayVerdict) -> None:
    """Store (or replace) the replay verdict of ``verdict.version``."""
    row = [
        verdict.version,
        verdict.partition_key,
        verdict.active_version,
        int(verdict.passed),
        verdict.reason,
        verdict.window_start,
        verdict.window_end,
        int(verdict.label_delay_days),
        json.dumps(verdict.report, default=float, sort_keys=True),
        _now(),
    ]
    client.insert("model_replay_verdicts", [row], column_names=_REPLAY_COLUMNS)
    client.command("OPTIMIZE TABLE model_replay_verdicts FINAL")


def replay_verdict(client: Client, version: str) -> ReplayVerdict | None:
    """The latest replay verdict of ``version``, or None when it was never replayed."""
    result = client.query(
        f"SELECT {', '.join(_REPLAY_COLUMNS)} FROM model_replay_verdicts FINAL "  # noqa: S608
        "WHERE version = {version:String}",
        parameters={"version": version},
    )
    if not result.result_rows:
        return None
    row = dict(zip(result.column_names, result.result_rows[0], strict=True))
    return ReplayVerdict(
        version=row["version"],
        partition_key=row["partition_key"],
        active_version=row["active_version"],
        passed=bool(row["passed"]),
        reason=row["reason"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        label_delay_days=int(row["label_delay_days"]),
        report=json.loads(row["report_json"] or "{}"),
    )
