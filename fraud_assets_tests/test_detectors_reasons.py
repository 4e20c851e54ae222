"""Reason codes: the wording table covers every input, each layer's attribution points at the
feature that is off, and the ranking across layers picks and words the strongest reasons."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from fraud_assets.assets.scoring_steps import top_reasons_markdown
from fraud_assets.detectors.autoencoder import AutoencoderDetector
from fraud_assets.detectors.isolation_forest import IsolationForestDetector
from fraud_assets.detectors.reasons import (
    BASELINES,
    ReasonConfig,
    autoencoder_excess_error,
    explain,
    explained_rows,
    isolation_credit,
    rule_reasons,
    static_reasons,
)
from fraud_assets.detectors.rules import (
    AMOUNT_SPIKE,
    NEW_DEVICE_NEW_COUNTRY,
    NEW_WALLET_WITHDRAWAL,
    RULE_NAMES,
    RuleConfig,
)
from fraud_assets.features.catalog import FEATURE_COLUMNS
from fraud_assets.features.reason_wording import (
    BASELINE_WORDS,
    FEATURE_REASON,
    REASON_CODES,
    REASONS,
    RULE_REASON,
    wording_markdown,
)

POINTS = RuleConfig().points


def _values(rows: int = 1, **overrides: float) -> dict[str, np.ndarray]:
    """Raw feature values of an unremarkable customer with history, then ``overrides``."""
    typical = {name: 0.0 for name in FEATURE_COLUMNS} | {
        "amount": 250.0,
        "amount_to_user_avg": 1.0,
        "user_tx_count_30d": 40.0,
        "user_has_history": 1.0,
        "log_user_account_age_days": float(np.log1p(400)),
        "log_user_tx_count_before_24h": float(np.log1p(38)),
        "tx_count_5m": 1.0,
        "tx_count_1h": 1.0,
        "tx_count_24h": 2.0,
        "velocity_1h_vs_30d": 0.9,
        "minutes_since_last_tx": 600.0,
        "wallet_age_days": 300.0,
        "type_buy": 1.0,
        "currency_btc": 1.0,
        "device_mobile_ios": 1.0,
        "user_hour_affinity_30d": 0.8,
        "user_same_type_share_30d": 0.6,
    }
    return {name: np.full(rows, overrides.get(name, value)) for name, value in typical.items()}


def _fired(*names: str, rows: int = 1) -> np.ndarray:
    fired = np.zeros((rows, len(RULE_NAMES)), dtype=bool)
    for name in names:
        fired[:, RULE_NAMES.index(name)] = True
    return fired


def test_every_feature_and_rule_has_exactly_one_reason_code():
    assert set(FEATURE_REASON) == set(FEATURE_COLUMNS)
    listed = [f for reason in REASONS for f in reason.features]
    assert len(listed) == len(set(listed)), "a feature belongs to one code"
    assert set(RULE_REASON) == set(RULE_NAMES)
    assert len(REASON_CODES) == len(set(REASON_CODES))
    assert all(f"`{code}`" in wording_markdown() for code in REASON_CODES)
    assert set(BASELINE_WORDS) == {b.name for b in BASELINES}
    assert {b.code for b in BASELINES} <= set(REASON_CODES)


def test_every_phrase_words_a_typical_and_an_extreme_row():
    """No phrase fails on the values a row can take (no history, zeros, huge numbers)."""
    for values in (
        _values(),
        _values(user_tx_count_30d=0, log_user_account_age_days=0.0, amount=1e9),
        _values(**{name: 1e6 for name in FEATURE_COLUMNS}),
    ):
        row = {name: float(column[0]) for name, column in values.items()}
        for reason in REASONS:
            text = reason.phrase(row)
            assert isinstance(text, str) and text and "{" not in text, reason.code


def test_isolation_credit_names_the_feature_that_isolates_the_row():
    rng = np.random.default_rng(0)
    normal = rng.standard_normal((4000, 6)).astype(np.float32)
    forest = IsolationForestDetector(n_estimators=100, random_state=0).fit(normal)
    odd = rng.standard_normal((3, 6)).astype(np.float32)
    odd[0, 4] = 9.0
    odd[1, 1] = -9.0
    credit = isolation_credit(forest, odd)
    assert credit.shape == (3, 6) and (credit >= 0).all()
    assert credit[0].argmax() == 4 and credit[1].argmax() == 1
    assert credit[0, 4] > 3 * np.delete(credit[0], 4).max()
    # Most ordinary rows are isolated by no feature more than by chance.
    typical = isolation_credit(forest, normal[:200]).sum(axis=1)
    assert np.median(typical) < 0.1 * credit[0].sum()


def _linear_autoencoder(n_features: int, kept: int) -> AutoencoderDetector:
    """The numpy forward pass with weights that reconstruct the first ``kept`` features exactly
    and the others as 0: what an autoencoder does to inputs it learned are never informative."""
    detector = AutoencoderDetector(hidden_units=(), latent_dim=kept)
    project = np.eye(n_features, kept, dtype=np.float32)
    detector.layers_ = [
        (project, np.zeros(kept, np.float32), "linear"),
        (project.T.copy(), np.zeros(n_features, np.float32), "linear"),
    ]
    detector.mean_ = np.zeros(n_features, np.float32)
    detector.scale_ = np.ones(n_features, np.float32)
    detector.feature_names_in_ = None
    detector.n_features_in_ = n_features
    detector.threshold_ = 1.0
    return detector


def test_autoencoder_excess_error_is_the_feature_it_could_not_reconstruct():
    rng = np.random.default_rng(1)
    network = _linear_autoencoder(5, kept=3)
    reference = rng.standard_normal((5000, 5)).astype(np.float32)
    rows = np.zeros((2, 5), np.float32)
    rows[0, 4] = 6.0  # unreconstructable and far off
    rows[1, 0] = 6.0  # far off but reconstructed: no excess error
    excess = autoencoder_excess_error(network, rows, reference)
    assert excess[0].argmax() == 4 and excess[0, 4] == pytest.approx(36 - 1, abs=0.2)
    assert excess[1].max() < 0.1


def test_rule_and_baseline_points_rank_and_word_the_reasons():
    values = _values(
        rows=2,
        amount=4200.0,
        amount_to_user_avg=14.2,
        is_recent_device_for_user=1.0,
        is_recent_country_for_user=1.0,
        is_recent_wallet_for_user=1.0,
        type_buy=0.0,
        type_withdraw=1.0,
    )
    fired = _fired(AMOUNT_SPIKE, NEW_DEVICE_NEW_COUNTRY, NEW_WALLET_WITHDRAWAL, rows=2)
    fired[1] = False
    result = explain(values, fired, RULE_NAMES, POINTS)
    # amount: rule 40 + baseline 15·log2(14.2) ≈ 97; device + country: 60 + 15 + 15;
    # new wallet: 30 + 10.
    assert result.codes[0] == ["amount", "device_country", "new_wallet"]
    assert result.texts[0] == [
        "amount 14× user's 30-day average",
        "new device + new country",
        "withdrawal to a wallet first used today",
    ]
    # Without the rules the baselines alone still speak (57, 30, 10), in the same words.
    assert result.texts[1] == result.texts[0]
    values["amount_to_user_avg"][:] = 2.0  # below 3× the average is no baseline reason
    assert explain(values, fired, RULE_NAMES, POINTS).codes[1] == ["device_country", "new_wallet"]


def test_each_baseline_declares_exactly_the_columns_it_reads():
    """What lets a frame without a column (features an older pipeline lacked) skip the
    baselines that need it."""
    values = _values(rows=2)
    for baseline in BASELINES:
        own = {c: values[c] for c in baseline.columns}
        assert baseline.points(own).shape == (2,), baseline.name
        for column in baseline.columns:
            with pytest.raises(KeyError, match=column):
                baseline.points({k: v for k, v in own.items() if k != column})


def test_a_missing_feature_drops_its_baselines_and_its_numbers_not_the_row():
    values = _values(rows=1, amount=4200.0, amount_to_user_avg=14.2)
    fired = _fired(AMOUNT_SPIKE, rows=1)
    del values["amount_to_user_avg"], values["is_recent_device_for_user"]
    result = explain(values, fired, RULE_NAMES, POINTS)
    # The rule still speaks, in its words without the ratio the phrase would quote.
    assert result.codes == [["amount"]]
    assert result.texts == [["amount over 10× user's 30-day average"]]


def test_model_attributions_add_points_to_the_codes_of_their_features():
    values = _values(rows=1, geo_distance_km=9000.0, geo_velocity_kmh=12000.0, country_changed=1)
    columns = list(FEATURE_COLUMNS)
    iso = np.zeros((1, len(columns)))
    iso[0, columns.index("geo_velocity_kmh")] = 3.0
    iso[0, columns.index("hour_sin")] = 1.0
    ae = np.zeros((1, len(columns)))
    ae[0, columns.index("currency_btc")] = 2.0
    result = explain(
        values,
        _fired(rows=1),
        RULE_NAMES,
        POINTS,
        feature_columns=columns,
        ae_excess=ae,
        ae_risk=np.array([20.0]),
        iso_credit=iso,
        iso_risk=np.array([80.0]),
    )
    # travel: baseline 30 + ¾ of the forest's 80; currency 20 (autoencoder); time ¼ of 80.
    assert result.codes[0] == ["travel", "time", "currency"]
    assert result.texts[0][0] == (
        "impossible travel: 9,000 km from the previous transaction, 12,000 km/h"
    )
    assert result.texts[0][2] == "unusual currency (BTC)"


def test_top_n_and_min_points_limit_the_list():
    values = _values(rows=1, amount_to_user_avg=3.5, near_limit_withdrawals_24h=3.0)
    fired = _fired(AMOUNT_SPIKE, NEW_WALLET_WITHDRAWAL, rows=1)
    assert explain(values, fired, RULE_NAMES, POINTS, config=ReasonConfig(top_n=1)).codes == [
        ["amount"]
    ]
    strict = explain(values, fired, RULE_NAMES, POINTS, config=ReasonConfig(min_points=45))
    assert strict.codes == [["amount"]]  # 40 + 15·log2(3.5) ≈ 67; structuring 40; wallet 30
    assert explain(_values(), _fired(), RULE_NAMES, POINTS).codes == [[]]


def test_rule_reasons_are_static_words_strongest_first():
    codes, words = rule_reasons([NEW_WALLET_WITHDRAWAL, AMOUNT_SPIKE], POINTS, ReasonConfig())
    assert codes == ["amount", "new_wallet"]
    assert words == [
        "amount over 10× user's 30-day average",
        "withdrawal to a wallet first used today",
    ]
    assert rule_reasons([], POINTS, ReasonConfig()) == ([], [])


def test_static_reasons_add_the_baselines_met_and_fold_device_and_country():
    codes, words = static_reasons(
        [NEW_WALLET_WITHDRAWAL], ["burst_5min", "device_new_today", "country_new_today"],
        POINTS, ReasonConfig(),
    )  # fmt: skip
    # device + country: 15 + 15 folded, tied with the new wallet rule's 30 (ties: table
    # order); burst: 10.
    assert codes == ["device_country", "new_wallet", "velocity"]
    assert words == [
        "new device + new country",
        "withdrawal to a wallet first used today",
        "3+ transactions within 5 min",
    ]
    codes, words = static_reasons([], ["device_new_today"], POINTS, ReasonConfig(min_points=20))
    assert (codes, words) == ([], [])


def test_explained_rows_are_the_flagged_and_the_riskiest_within_the_cap():
    decision = np.array(["approved"] * 6 + ["review", "blocked"], dtype=object)
    risk = np.array([1, 29, 2, 3, 28, 4, 50, 90], dtype=float)
    config = ReasonConfig(explain_top_fraction=0.0)
    assert explained_rows(decision, risk, config).tolist() == [6, 7]
    config = ReasonConfig(explain_top_fraction=0.5)  # the riskiest 4 of 8, whatever the decision
    assert explained_rows(decision, risk, config).tolist() == [1, 4, 6, 7]
    config = ReasonConfig(explain_top_fraction=0.5, max_explained_rows=3)
    assert explained_rows(decision, risk, config).tolist() == [1, 6, 7]
    with pytest.raises(ValueError, match="top_n"):
        ReasonConfig(top_n=0)


def test_dagit_table_lists_the_riskiest_blocked_rows_with_their_reasons():
    decisions = pl.DataFrame(
        {
            "transaction_id": ["a", "b", "c"],
            "user_id": ["u1", "u2", "u3"],
            "amount": [10.0, 20.0, 30.0],
            "total_risk_score": [95.0, 20.0, 80.0],
            "final_decision": ["blocked", "approved", "blocked"],
            "reason_codes": [["new device + new country", "a|b"], [], ["amount 14×"]],
        }
    )
    table = top_reasons_markdown(decisions).splitlines()
    assert table[0] == "| transaction_id | user_id | amount | risk | reason_codes |"
    assert table[2] == "| a | u1 | 10.0 | 95.0 | new device + new country; a/b |"
    assert table[3].startswith("| c |") and len(table) == 4
    assert top_reasons_markdown(decisions.filter(pl.col("final_decision") != "blocked")) == (
        "no blocked transactions"
    )
