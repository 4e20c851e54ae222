-- The ClickHouse IO manager's write journal. Replacing a partition's slice is a
-- DELETE followed by an INSERT; a 'writing' row is recorded before the DELETE
-- and superseded by a 'complete' row once the INSERT is read back in full. A
-- slice whose latest row is still 'writing' was left short by a crash: loading
-- it fails with a message naming the run, and re-materializing repairs it.
CREATE TABLE IF NOT EXISTS io_manager_writes (
    table_name String,
    slice String COMMENT 'the slice''s WHERE clause',
    dimensions String COMMENT 'the slice''s partition dimensions as JSON',
    run_id String,
    state LowCardinality(String) COMMENT 'writing, complete',
    rows_written Int64,
    rows_in_slice Int64,
    updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (table_name, slice)
