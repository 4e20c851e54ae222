"""Reason codes on generated fraud: for every scenario, most of its scored rows carry a reason
code that names the cause the generator injected.

Six weeks of traffic are generated (1,500 customers), the training graph trains a bundle on
the three weeks before the last two, and those two weeks (~180 fraud rows, at least 5 of
every scenario) are scored and explained exactly as the scoring graph does
(``ScoringBundle.score`` and ``ScoringBundle.reasons``: full reasons for flagged and the
riskiest rows, static rule and baseline wording for the rest). Every fraud row counts,
including those the ensemble approved.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from fraud_assets.evaluation.simulation import SimulationSettings, trained_and_scored_week
from fraud_assets.features.reason_wording import BASELINE_WORDS, REASONS
from fraud_assets.reference import FRAUD_SCENARIOS

SETTINGS = SimulationSettings(users=1500, days=42, test_days=14, epochs=3, n_estimators=100)
# The reason codes that name each scenario's injected cause (see generator/scenarios.py).
NAMES_THE_CAUSE: dict[str, set[str]] = {
    "account_takeover": {"device_country", "device", "country"},  # new device and country
    "velocity_burst": {"velocity"},  # many orders within five minutes
    "amount_spike": {"amount"},  # 12–40× the running average
    "impossible_travel": {"travel"},  # too far from the previous country for the time
    "structuring": {"structuring"},  # withdrawals just below the reporting limit
    "dormant_reactivation": {"dormant"},  # an account quiet for months cashes out
    "wallet_draining": {"new_wallet", "withdrawals"},  # many withdrawals to fresh wallets
}
MIN_ROWS = 5  # fewer and one row moves the rate by a fifth or more


@pytest.fixture(scope="module")
def explained(tmp_path_factory) -> pl.DataFrame:
    root = tmp_path_factory.mktemp("reasons_simulation")
    bundle, features = trained_and_scored_week(SETTINGS, root)
    scored = bundle.score(features)
    reasons = bundle.reasons(features, scored)
    in_full = np.zeros(features.height, dtype=bool)
    in_full[reasons.explained] = True
    return features.select("transaction_id", "fraud_type").with_columns(
        pl.Series("decision", scored["ensemble"].decision.astype(str)),
        pl.Series("explained", in_full),
        reasons.codes.alias("codes"),
        reasons.texts.alias("texts"),
    )


def test_reasons_name_the_injected_cause_for_most_rows_of_every_scenario(explained):
    assert set(NAMES_THE_CAUSE) == set(FRAUD_SCENARIOS)
    rates, lines = {}, []
    for scenario, causes in NAMES_THE_CAUSE.items():
        rows = explained.filter(pl.col("fraud_type") == scenario)
        named = rows["codes"].list.eval(pl.element().is_in(list(causes))).list.any()
        flagged = rows["decision"] != "approved"
        rates[scenario] = (rows.height, float(named.mean() or 0.0))
        lines.append(
            f"{scenario:22s} rows {rows.height:3d}  named {named.mean() or 0:.2f}  "
            f"flagged {flagged.mean() or 0:.2f}  e.g. {rows.filter(named)['texts'].head(1).to_list()}"
        )
    print("\n".join(lines))
    few = [s for s, (n, _) in rates.items() if n < MIN_ROWS]
    assert not few, f"too few fraud rows to judge {few}: raise SETTINGS.users"
    missed = {s: round(rate, 2) for s, (_, rate) in rates.items() if rate <= 0.5}
    assert not missed, f"reasons name the cause in at most half the rows of {missed}"


def test_flagged_rows_are_explained_with_numbers_the_others_in_static_words(explained):
    flagged = explained.filter(pl.col("decision") != "approved")
    assert flagged.height > 0 and flagged["explained"].all()
    assert flagged["texts"].list.len().min() >= 1
    assert explained["texts"].list.len().max() <= 3
    assert (explained["codes"].list.len() == explained["texts"].list.len()).all()
    static = {reason.static for reason in REASONS} | set(BASELINE_WORDS.values())
    others = explained.filter(~pl.col("explained"))["texts"].explode().drop_nulls()
    assert others.len() > 0 and set(others.to_list()) <= static
    quiet = explained.filter((pl.col("decision") == "approved") & (pl.col("fraud_type") == ""))
    share = (quiet["texts"].list.len() > 0).mean()
    print(f"approved ordinary rows with a rule or baseline reason: {share:.2f}")
