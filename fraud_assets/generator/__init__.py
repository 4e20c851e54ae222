"""A deterministic crypto-exchange simulator: customers, their transactions, fraud and labels.

``generate(config)`` returns the rows of ``crypto_transactions`` and
``transaction_labels`` for a range; ``generate_into_clickhouse`` writes them,
continuing the history already recorded. The same seed always gives the same
customers and the same transactions.
"""

from fraud_assets.generator.config import (
    DEFAULT_FRAUD_MIX,
    DEFAULT_FRAUD_RATE,
    DORMANT_AFTER_DAYS,
    REPORTING_LIMIT_USD,
    GeneratorConfig,
    parse_mix,
)
from fraud_assets.generator.history import PriorHistory, read_prior_history
from fraud_assets.generator.load import LoadSummary, generate_into_clickhouse
from fraud_assets.generator.profiles import Profiles, build_profiles, user_id
from fraud_assets.generator.simulate import TRANSACTION_COLUMNS, GeneratedData, generate

__all__ = [
    "DEFAULT_FRAUD_MIX",
    "DEFAULT_FRAUD_RATE",
    "DORMANT_AFTER_DAYS",
    "REPORTING_LIMIT_USD",
    "TRANSACTION_COLUMNS",
    "GeneratedData",
    "GeneratorConfig",
    "LoadSummary",
    "PriorHistory",
    "Profiles",
    "build_profiles",
    "generate",
    "generate_into_clickhouse",
    "parse_mix",
    "read_prior_history",
    "user_id",
]
