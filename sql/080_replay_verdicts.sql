-- The replay gate's verdict on a candidate bundle, beside model_registry (whose
-- columns stay the seed's). One row per candidate version: the weekly
-- replay_backtest asset replays the last weeks of traffic with the candidate
-- and the active bundle side by side and records whether the candidate may be
-- promoted, why, and the comparison. Re-running a week replaces its row.

CREATE TABLE IF NOT EXISTS model_replay_verdicts (
    version String COMMENT 'the candidate bundle',
    partition_key String COMMENT 'the weekly training partition',
    active_version String COMMENT 'the bundle it was compared with, empty when none was active',
    passed UInt8,
    reason String,
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    label_delay_days UInt16,
    report_json String COMMENT 'both outcomes, every check, tolerances and timing',
    updated_at DateTime64(6, 'UTC') DEFAULT now64(6)
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY version
