-- Precision, recall and false-positive rate of the stored decisions of one day,
-- measured once that day's fraud labels have matured (the transactions are
-- older than the label delay). One row per (evaluated_date, model_version):
-- the version that made the decisions. Written by the daily
-- matured_label_performance asset; re-materializing a day replaces its rows.
-- Metrics are NULL where undefined (nothing flagged, no labelled fraud).

CREATE TABLE IF NOT EXISTS model_performance_matured (
    evaluated_date Date COMMENT 'the day whose decisions are measured',
    as_of_date Date COMMENT 'labels known by the end of this day count (the asset partition)',
    model_version String,
    label_delay_days UInt16,

    decisions Int64,
    flagged Int64 COMMENT 'review + blocked',
    frauds Int64 COMMENT 'decisions labelled is_fraud = 1 by the end of as_of_date',
    true_positives Int64,
    false_positives Int64,
    false_negatives Int64,
    true_negatives Int64,

    precision Nullable(Float64),
    recall Nullable(Float64),
    fp_rate Nullable(Float64),

    evaluable UInt8 COMMENT '1 when the day had enough decisions and labelled frauds to judge',
    breaches Array(String) COMMENT 'the floors this day breached, e.g. recall 0.12 < 0.30',
    created_at DateTime64(6, 'UTC') DEFAULT now64(6)
) ENGINE = ReplacingMergeTree(created_at)
ORDER BY (evaluated_date, model_version)
