-- Ground truth for the IoT sensor pipeline: every fault the sensor generator
-- injected, one row per affected reading (for a dropout, per missing reading).
-- detected_anomalies is measured against it (recall/precision per fault type);
-- readings that come from real devices have no rows here.
--   fault_id    one injected event: '<sensor_id>/<day>/<fault_type>/<n>'
--   fault_type  spike | stuck | drift | dropout
--   metric      temperature | humidity | pressure, or 'all' (stuck, dropout)
--   injected_offset  what the fault added to the true value (spike size, drift so
--               far; 0 for stuck and dropout), in the metric's unit

CREATE TABLE IF NOT EXISTS sensor_fault_labels (
    fault_id String,
    sensor_id LowCardinality(String),
    timestamp DateTime('UTC'),
    fault_type LowCardinality(String),
    metric LowCardinality(String),
    injected_offset Float32
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (timestamp, sensor_id);
