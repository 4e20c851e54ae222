"""Simulated exchange activity for the demo: ``generated_transactions``.

The seed's ``generate_crypto_data.py`` as an asset. It fills
``crypto_transactions`` and ``transaction_labels`` for a range (by default the
last 14 days up to the current hour) through the transaction generator,
replacing what the range held, so the scoring and training graphs have data
and matured labels to work on. A production deployment reads real
transactions instead and simply never materialises this asset.
"""

import datetime as dt

import dagster as dg
from pydantic import Field

from fraud_assets.clickhouse import ClickHouseResource
from fraud_assets.generator import (
    DEFAULT_FRAUD_MIX,
    DEFAULT_FRAUD_RATE,
    GeneratorConfig,
    generate_into_clickhouse,
)


class GeneratedTransactionsConfig(dg.Config):
    """The simulated range and population (see ``fraud_assets.generator``)."""

    start: str = Field(
        default="", description="ISO date or date-time (UTC); empty: `days` before end"
    )
    end: str = Field(
        default="", description="ISO date or date-time (UTC), exclusive; empty: now, to the hour"
    )
    days: float = Field(default=14.0, description="Length of the range when start is empty")
    users: int = Field(default=2_000, description="Customer accounts")
    seed: int = Field(default=7, description="Fixes customers, transactions and fraud")
    fraud_rate: float = Field(
        default=DEFAULT_FRAUD_RATE, description="Share of fraudulent transactions"
    )
    fraud_mix: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_FRAUD_MIX),
        description="Relative weight of each fraud scenario (share of fraudulent transactions)",
    )

    def generator_config(self, now: dt.datetime | None = None) -> GeneratorConfig:
        now = (now or dt.datetime.now(dt.UTC)).replace(minute=0, second=0, microsecond=0)
        end = dt.datetime.fromisoformat(self.end) if self.end else now
        start = (
            dt.datetime.fromisoformat(self.start)
            if self.start
            else end - dt.timedelta(days=self.days)
        )
        return GeneratorConfig(
            start=start,
            end=end,
            users=self.users,
            seed=self.seed,
            fraud_rate=self.fraud_rate,
            fraud_mix=self.fraud_mix,
        )


@dg.asset(
    group_name="ingestion",
    kinds={"clickhouse", "numpy"},
    owners=["team:fraud-ml"],
    description="Demo data: simulated customers' transactions with labelled fraud scenarios "
    "written to crypto_transactions and transaction_labels (the range is replaced).",
)
def generated_transactions(
    context: dg.AssetExecutionContext,
    config: GeneratedTransactionsConfig,
    clickhouse: ClickHouseResource,
) -> dg.MaterializeResult:
    generator_config = config.generator_config()
    summary = generate_into_clickhouse(clickhouse, generator_config)
    context.log.info(
        f"{summary.rows} transactions, {summary.fraud_total} fraudulent, "
        f"{generator_config.start.isoformat()} to {generator_config.end.isoformat()}"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": summary.rows,
            "start": generator_config.start.isoformat(),
            "end": generator_config.end.isoformat(),
            "users": generator_config.users,
            "seed": generator_config.seed,
            "label_rows": summary.labels,
            "fraud_transactions": summary.fraud_total,
            "fraud_share": round(summary.fraud_total / max(summary.rows, 1), 5),
            "fraud_transactions_by_scenario": dg.MetadataValue.json(summary.fraud_rows),
            "fraud_incidents_by_scenario": dg.MetadataValue.json(summary.incidents),
            "generate_seconds": round(summary.generate_s, 3),
            "write_seconds": round(summary.write_s, 3),
        }
    )


defs = dg.Definitions(assets=[generated_transactions])
