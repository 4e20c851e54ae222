-- The seed's first pipeline (phase 3): IoT sensor readings, their normalised
-- staging copy and the anomalies detected in them. Seed columns and types, all
-- times in UTC. Monthly partitions keep the partition count low (ClickHouse
-- advises well under ~1000 partitions per table) while daily rewrites stay cheap
-- through the (timestamp, ...) sort key.

CREATE TABLE IF NOT EXISTS sensor_data (
    timestamp DateTime('UTC'),
    sensor_id LowCardinality(String),
    temperature Float32,
    humidity Float32,
    pressure Float32 COMMENT 'hPa (~1013), not Pa'
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (timestamp, sensor_id);

CREATE TABLE IF NOT EXISTS staging_normalized_data (
    run_id String,
    timestamp DateTime('UTC'),
    sensor_id LowCardinality(String),
    temperature_norm Float32,
    humidity_norm Float32,
    pressure_norm Float32,
    created_at DateTime('UTC') DEFAULT now()
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (run_id, sensor_id, timestamp);

CREATE TABLE IF NOT EXISTS detected_anomalies (
    run_id String,
    dag_id LowCardinality(String),
    execution_time DateTime('UTC'),
    timestamp DateTime('UTC'),
    sensor_id LowCardinality(String),
    temperature Float32,
    humidity Float32,
    pressure Float32,
    anomaly_score Float32,
    threshold Float32,
    anomaly_type LowCardinality(String),
    model_version String,
    detected_at DateTime('UTC') DEFAULT now()
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (run_id, timestamp, sensor_id);
