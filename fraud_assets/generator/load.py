"""Generate a range and write it into ClickHouse, continuing the recorded history.

The client is held only for I/O: once to read the history before the range,
once to replace the range. Generation runs in between with the database free.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets.generator.config import GeneratorConfig
from fraud_assets.generator.history import read_prior_history, rows_after
from fraud_assets.generator.simulate import generate
from fraud_assets.generator.store import delete_range, insert_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadSummary:
    rows: int
    labels: int
    fraud_rows: dict[str, int]
    incidents: dict[str, int]
    generate_s: float
    write_s: float
    rows_after_end: int = 0

    @property
    def fraud_total(self) -> int:
        return sum(self.fraud_rows.values())


def generate_into_clickhouse(
    clickhouse: ClickHouseResource, config: GeneratorConfig
) -> LoadSummary:
    """Replace ``[config.start, config.end)`` in ClickHouse with a generated range."""
    with clickhouse.get_client() as client:
        prior = read_prior_history(client, config.start_s)
        later = rows_after(client, config.end_s)
    if later:
        log.warning(
            "%d transactions after %s already exist; their behaviour columns assume the current "
            "content of the range, so regenerate it with the same seed, users and fraud settings",
            later,
            config.end.isoformat(),
        )
    began = time.perf_counter()
    data = generate(config, prior)
    generated = time.perf_counter()
    with clickhouse.get_client() as client:
        delete_range(client, config.start_s, config.end_s)
        insert_frame(client, "crypto_transactions", data.transactions)
        insert_frame(client, "transaction_labels", data.labels)
    written = time.perf_counter()
    return LoadSummary(
        rows=data.transactions.height,
        labels=data.labels.height,
        fraud_rows=data.fraud_counts(),
        incidents=data.incident_counts(),
        generate_s=generated - began,
        write_s=written - generated,
        rows_after_end=later,
    )
