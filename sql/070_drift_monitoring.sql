-- Drift monitoring: reference histograms per model version, and the model
-- features of every scored hour where SQL can reach them.
--
-- drift_reference: one row per (model_version, series, name). The bins are
-- (-inf, edges[1]), [edges[1], edges[2]), ..., [edges[n], +inf), so a value's
-- bin is the number of edges <= value; counts[i] is the reference rows in bin
-- i (length(edges) + 1 bins). Written by the weekly drift_reference asset from
-- the training window's validation split, scored by the version's own models.
--
-- feature_snapshots: the hourly feature_engineering output (every model feature
-- except the six clock features, which are constant within an hour and so
-- always "drift" against a reference spanning all hours), as Float32 like the
-- scores in detected_anomalies_ensemble. The feature catalog is the one place
-- that lists features, so the feature columns (Float32, named as in
-- FEATURE_COLUMNS) are added by the feature_snapshots asset before it writes
-- (ADD COLUMN IF NOT EXISTS): a feature added to the catalog gets its column
-- on the next run, with no migration to keep in step.

CREATE TABLE IF NOT EXISTS drift_reference (
    model_version String,
    series LowCardinality(String) COMMENT 'feature (feature_snapshots) or score (detected_anomalies_ensemble)',
    name String,
    edges Array(Float64) COMMENT 'bin lower edges, ascending, Float32-exact values',
    counts Array(UInt64) COMMENT 'reference rows per bin, length(edges) + 1 bins',
    rows UInt64,
    reference_window String COMMENT 'the population the histogram was built from',
    created_at DateTime64(6, 'UTC') DEFAULT now64(6)
) ENGINE = ReplacingMergeTree(created_at)
ORDER BY (model_version, series, name);

CREATE TABLE IF NOT EXISTS feature_snapshots (
    transaction_id String,
    timestamp DateTime('UTC'),
    model_version String
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (timestamp, transaction_id)
