-- What the hourly scoring graph records beyond the seed's columns: why each
-- decision was taken, the per-transaction scoring latency (for
-- daily_model_performance), the partition it was scored in, and a quarantine
-- for transactions that could not be scored.

ALTER TABLE detected_anomalies_ensemble
    ADD COLUMN IF NOT EXISTS decision_reasons Array(String) AFTER final_decision;

ALTER TABLE detected_anomalies_ensemble
    ADD COLUMN IF NOT EXISTS isolation_risk Float32 AFTER isolation_prediction;

ALTER TABLE detected_anomalies_ensemble
    ADD COLUMN IF NOT EXISTS autoencoder_risk Float32 AFTER autoencoder_prediction;

ALTER TABLE detected_anomalies_ensemble
    ADD COLUMN IF NOT EXISTS stage_latency_ms Array(Float32)
    COMMENT 'per-transaction ms: [statistical, isolation_forest, autoencoder, total]' AFTER model_version;

CREATE TABLE IF NOT EXISTS quarantined_transactions (
    transaction_id String,
    timestamp DateTime('UTC'),
    user_id String,
    reason LowCardinality(String),
    row_json String COMMENT 'the original row, as read',
    run_id String,
    quarantined_at DateTime('UTC') DEFAULT now()
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (timestamp, transaction_id)
