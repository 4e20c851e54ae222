"""An active bundle trained before the newest features existed keeps working after an upgrade.

The normal production path: new code (more ``FEATURE_COLUMNS``) is deployed while the
active bundle is last week's, trained on fewer columns. Here the first week's bundle is
trained by the weekly job with the feature list of the code before the novelty features
(68 of today's 73 columns: the scaler and both models see only those); then the hourly
job scores an hour with it — reason codes included — and the next week's candidate,
trained on every column, is mapped onto its score scale and replayed against it.
"""

from __future__ import annotations

import functools
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from fraud_assets import registry
from fraud_assets.assets import training
from fraud_assets.assets.replay_steps import decide, fit_score_scale
from fraud_assets.assets.scoring_steps import _matrix
from fraud_assets.bundle import ModelThresholds, ScoringBundle
from fraud_assets.bundle_loader import load_bundle
from fraud_assets.detectors.calibration import ScoreCalibrator
from fraud_assets.detectors.isolation_forest import IsolationForestDetector
from fraud_assets.detectors.reasons import ReasonConfig, reasons_for_rows
from fraud_assets.detectors.rules import RULE_NAMES, RuleConfig
from fraud_assets.features import FeatureScaler
from fraud_assets.features.catalog import FEATURE_COLUMNS
from fraud_assets_tests.test_detectors_reasons import _linear_autoencoder, _values
from fraud_assets_tests.test_graphs import TRAIN_CONFIG, Env, _errors
from fraud_assets_tests.test_replay import (
    FIRST_WEEK,
    OPEN_GATES,
    SECOND_END,
    SECOND_WEEK,
    _metadata,
    generated_env,
)

# The features added after the bundles in production were trained (the novelty features).
NEWER = (
    "log_user_tx_count_before_24h", "is_recent_device_for_user", "is_recent_country_for_user",
    "is_recent_wallet_for_user", "near_limit_withdrawals_24h",
)  # fmt: skip
OLDER_COLUMNS = tuple(c for c in FEATURE_COLUMNS if c not in NEWER)
HOURS = ("2026-11-08-02:00", "2026-11-09-01:00")  # the first day after the week
RUN_CONFIG = {"ops": {**TRAIN_CONFIG["ops"], **OPEN_GATES}}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    yield from generated_env(tmp_path_factory, "older_bundle")


@pytest.fixture(scope="module")
def older(env: Env) -> str:
    """The first week's bundle, trained as the code before the novelty features trained it."""
    assert len(OLDER_COLUMNS) == len(FEATURE_COLUMNS) - len(NEWER) == 68
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            training, "FeatureScaler", functools.partial(FeatureScaler, columns=OLDER_COLUMNS)
        )
        result = env.train(RUN_CONFIG, partition_key=FIRST_WEEK)
    assert result.success, _errors(result)
    with env.clickhouse.get_client() as client:
        version = registry.active_version(client)
        bundle = load_bundle(client, version)
    assert version == training.model_version(FIRST_WEEK)
    assert bundle.scaler.columns == OLDER_COLUMNS
    assert bundle.autoencoder.n_features_in_ == bundle.isolation_forest.model_.n_features_in_ == 68
    return version


def test_the_hourly_job_scores_and_explains_with_an_older_bundle(env: Env, older: str):
    result = env.score(*HOURS)
    assert result.success, _errors(result)
    rows = env.query(
        "SELECT model_version, final_decision, reason_codes FROM detected_anomalies_ensemble"
    )
    (transactions,) = env.query(
        "SELECT count() FROM crypto_transactions WHERE timestamp >= {s:DateTime('UTC')} "
        "AND timestamp < {e:DateTime('UTC')}",
        s=SECOND_END - timedelta(days=7),
        e=SECOND_END - timedelta(days=6),
    )[0]
    (quarantined,) = env.query("SELECT count() FROM quarantined_transactions")[0]
    assert len(rows) + quarantined == transactions and len(rows) > 20
    assert {version for version, _, _ in rows} == {older}
    flagged = [reasons for _, decision, reasons in rows if decision != "approved"]
    assert flagged, "the day holds flagged rows, explained in full"
    assert all(reasons for reasons in flagged), "every flagged row has reason codes"


def test_the_weekly_job_maps_and_replays_a_full_candidate_against_the_older_bundle(
    env: Env, older: str
):
    result = env.train(RUN_CONFIG, partition_key=SECOND_WEEK)
    assert result.success, _errors(result)
    candidate = training.model_version(SECOND_WEEK)
    scale = _metadata(result, "calculate_thresholds")
    assert f"mapped onto the active {older}'s" in scale["score_mapping"]
    replay = _metadata(result, "replay_backtest")
    assert replay["active_version"] == older and replay["replay_rows"] > 1000, replay
    with env.clickhouse.get_client() as client:
        verdict = registry.replay_verdict(client, candidate)
        assert load_bundle(client, candidate).scaler.columns == tuple(FEATURE_COLUMNS)
    assert verdict is not None and verdict.active_version == older
    counted = (verdict.report[side]["transactions"] for side in ("active", "candidate"))
    assert len(set(counted)) == 1 and verdict.report["active"]["transactions"] > 1000


# ---------------------------------------------------------------- in memory, the same paths


def _frame(rows: int = 600) -> pl.DataFrame:
    """A current feature frame (every FEATURE_COLUMNS column): ordinary customers with noise,
    the last rows on a device and from a country new today, at 20× their average amount."""
    rng = np.random.default_rng(7)
    values = {
        name: column + np.abs(rng.normal(0.0, 0.1, rows))
        for name, column in _values(rows=rows).items()
    }
    odd = slice(rows - 6, rows)
    values["amount_to_user_avg"][odd] = 20.0
    values["is_recent_device_for_user"][odd] = 1.0
    values["is_recent_country_for_user"][odd] = 1.0
    return pl.DataFrame(values)


def _bundle(columns: tuple[str, ...], frame: pl.DataFrame, version: str) -> ScoringBundle:
    """A bundle whose scaler and models are trained on ``columns`` only."""
    scaler = FeatureScaler(columns=columns).fit(frame)
    x = scaler.transform(frame)
    forest = IsolationForestDetector(n_estimators=25, random_state=0).fit(x)
    network = _linear_autoencoder(len(columns), kept=8)
    iso, ae = forest.anomaly_score(x), network.anomaly_score(x)
    thresholds = ModelThresholds(
        isolation_forest=float(np.quantile(iso, 0.95)),
        autoencoder=float(np.quantile(ae, 0.95)),
        isolation_calibrator=ScoreCalibrator().fit(iso),
        autoencoder_calibrator=ScoreCalibrator().fit(ae),
    )
    return ScoringBundle(version, scaler, forest, network, thresholds)


def test_an_older_bundle_scores_and_explains_a_current_frame_with_its_own_columns():
    frame = _frame()
    older = _bundle(OLDER_COLUMNS, frame, "v_older")
    x = older.matrix(frame)
    assert x.shape == (frame.height, 68)
    assert np.array_equal(x, _matrix(older.scaler, frame)), "as the hourly layers read it"
    scored = older.score(frame)
    reasons = older.reasons(frame, scored, ReasonConfig(explain_top_fraction=0.02))
    codes = reasons.codes.to_list()
    assert set(range(frame.height - 6, frame.height)) <= set(reasons.explained.tolist())
    # The novelty baselines read the frame's columns, which the bundle's models never saw.
    assert all(codes[i][:2] == ["amount", "device_country"] for i in range(594, 600)), codes[594:]


def test_reasons_on_a_frame_without_the_newer_columns_leave_their_baselines_out():
    """A frame an older pipeline built: the baselines and words needing its missing columns
    are not used (no rule fires here, so only baselines and models speak)."""
    frame = _frame()
    older = _bundle(OLDER_COLUMNS, frame, "v_older")
    scored = older.score(frame)
    no_rules = np.zeros((frame.height, len(RULE_NAMES)), dtype=bool)

    def codes(features: pl.DataFrame) -> list[list[str]]:
        return reasons_for_rows(
            features, no_rules, RULE_NAMES, RuleConfig().points,
            scored["ensemble"].decision, scored["ensemble"].total_risk,
            scored["isolation"].risk, scored["autoencoder"].risk,
            older.scaler, older.isolation_forest, older.autoencoder,
            ReasonConfig(explain_top_fraction=0.02),
        ).codes.to_list()  # fmt: skip

    full, partial = codes(frame), codes(frame.drop(NEWER))
    assert all("device_country" in full[i] for i in range(594, 600)), full[594:]
    # The amount baseline still speaks; device and country new today are unknown here.
    assert all(partial[i][0] == "amount" for i in range(594, 600)), partial[594:]
    assert all("device_country" not in partial[i] for i in range(594, 600)), partial[594:]
    assert len(partial) == frame.height


def test_the_score_scale_maps_a_full_candidate_onto_an_older_active_bundle():
    frame = _frame()
    older = _bundle(OLDER_COLUMNS, frame, "v_older")
    candidate = _bundle(tuple(FEATURE_COLUMNS), frame, "v_new")
    mapping, metadata = fit_score_scale(
        candidate,
        older,
        frame,
        stable_scores=True,
        review_capacity_per_hour=None,
        block_precision_target=None,
        max_rows=10_000,
    )
    assert mapping is not None and "mapped onto the active v_older's" in metadata["score_mapping"]
    risk, _ = decide(older, frame)
    assert risk.shape == (frame.height,)
