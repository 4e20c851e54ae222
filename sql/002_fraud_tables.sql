-- The fraud system (phase 5): transactions, the model registry, scored
-- decisions and daily model metrics, with the seed's columns and types, plus the
-- confirmed-fraud feedback the seed leaves implicit (transaction_labels).
--
-- Layout choices:
-- * PARTITION BY toYYYYMM(timestamp): hourly reads and rewrites are served by the
--   sort key that starts with the time column; month partitions keep the
--   partition count small (hourly or daily partitions would create thousands).
-- * All times DateTime('UTC').

CREATE TABLE IF NOT EXISTS crypto_transactions (
    transaction_id String,
    timestamp DateTime('UTC'),
    user_id String,
    amount Float64,
    currency LowCardinality(String),
    transaction_type LowCardinality(String) COMMENT 'buy, sell, withdraw, deposit',

    user_avg_amount Float64,
    user_total_transactions Int32,
    user_account_age_days Int32,

    wallet_address String,
    wallet_age_days Int32,
    wallet_total_volume Float64,

    hour_of_day Int8,
    day_of_week Int8,
    ip_country LowCardinality(String),
    device_type LowCardinality(String),

    time_since_last_transaction Float64 COMMENT 'minutes',
    transactions_last_hour Int32,
    transactions_last_24h Int32,

    created_at DateTime('UTC') DEFAULT now()
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (timestamp, user_id);

-- Confirmed fraud / chargeback feedback. One row per transaction (the latest
-- label wins), with the user and counterparty wallet copied in so feedback
-- features need no join against the whole transaction history.
CREATE TABLE IF NOT EXISTS transaction_labels (
    transaction_id String,
    is_fraud UInt8,
    fraud_type LowCardinality(String),
    labeled_at DateTime('UTC'),
    source LowCardinality(String) COMMENT 'chargeback, analyst, customer_report, simulator',
    user_id String DEFAULT '',
    wallet_address String DEFAULT '',
    transaction_timestamp DateTime('UTC') DEFAULT toDateTime(0, 'UTC')
) ENGINE = ReplacingMergeTree(labeled_at)
ORDER BY transaction_id;

-- Seed columns plus what a registry needs to be trusted: artifact checksums,
-- the weekly partition that produced it and a status history. A status change
-- is a new row for the same (model_type, version) with a later updated_at;
-- readers use FINAL, and a promotion writes all of its status changes in one
-- INSERT so no reader ever sees zero or two active versions of a model type.
CREATE TABLE IF NOT EXISTS model_registry (
    model_id String,
    model_type LowCardinality(String) COMMENT 'isolation_forest, autoencoder, ensemble',
    version String,
    trained_at DateTime('UTC'),
    training_samples Int64,

    precision Float32,
    recall Float32,
    f1_score Float32,
    threshold Float32,

    model_path String,
    scaler_path String,

    status LowCardinality(String) COMMENT 'testing, active, archived, rolled_back, rejected',
    created_at DateTime('UTC') DEFAULT now(),

    model_sha256 String DEFAULT '',
    scaler_sha256 String DEFAULT '',
    partition_key String DEFAULT '',
    metrics_json String DEFAULT '{}',
    status_reason String DEFAULT '',
    updated_at DateTime64(6, 'UTC') DEFAULT now64(6)
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (model_type, version);

CREATE TABLE IF NOT EXISTS detected_anomalies_ensemble (
    run_id String,
    transaction_id String,
    timestamp DateTime('UTC'),
    user_id String,
    amount Float64,

    statistical_risk Float32,
    statistical_flags Array(String),

    isolation_score Float32,
    isolation_prediction Int8 COMMENT '1 = normal, -1 = anomaly',

    reconstruction_error Float32,
    autoencoder_prediction Int8,
    latent_features Array(Float32),

    total_risk_score Float32,
    final_decision LowCardinality(String) COMMENT 'approved, review, blocked',

    model_version String,
    detected_at DateTime('UTC') DEFAULT now()
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (timestamp, user_id, transaction_id);

-- One row per (date, model_type), recomputed from the day's stored decisions, so
-- re-scoring an hour replaces the day's row instead of adding to it.
CREATE TABLE IF NOT EXISTS daily_model_performance (
    date Date,
    model_type LowCardinality(String),

    total_predictions Int64,
    anomalies_detected Int64,
    false_positives Int64,
    false_negatives Int64,

    avg_latency_ms Float32,
    max_latency_ms Float32,

    threshold_used Float32,

    created_at DateTime64(6, 'UTC') DEFAULT now64(6)
) ENGINE = ReplacingMergeTree(created_at)
ORDER BY (date, model_type);
