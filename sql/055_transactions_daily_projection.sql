-- Scoring reads 30 days of history for the users and wallets of each hour. Most of
-- it is only ever summed (see fraud_assets/features/compaction.py), so the table
-- keeps a daily aggregate projection: per UTC day and (user, country, device,
-- wallet), the row count, the integer sums the features use and the latest time.
-- ClickHouse maintains it with every insert, merge and mutation and reads it in
-- place of the rows when a query asks for exactly these aggregates over whole
-- days (fraud_assets/features/history.py); parts that lack it are read row by row,
-- so the results are the same either way.
--
-- The aggregates must stay identical to compaction.AGGREGATE_SQL (a test checks
-- that the history queries are answered from the projection).
--
-- Lightweight deletes (regenerating a range) rebuild the projection of the parts
-- they touch instead of being refused.

ALTER TABLE crypto_transactions MODIFY SETTING lightweight_mutation_projection_mode = 'rebuild';

ALTER TABLE crypto_transactions ADD PROJECTION IF NOT EXISTS user_daily (
    SELECT
        toDate(timestamp),
        user_id,
        ip_country,
        device_type,
        wallet_address,
        count(),
        sum(toInt64(round(greatest(amount, 0) * 100))),
        sum(toInt64(round(log1p(greatest(amount, 0)) * 10000))),
        sum(toInt64(round(log1p(greatest(amount, 0)) * 10000)) * toInt64(round(log1p(greatest(amount, 0)) * 10000))),
        sum(toInt64(arrayElement([1000000, 965926, 866025, 707107, 500000, 258819, 0, -258819, -500000, -707107, -866025, -965926, -1000000, -965926, -866025, -707107, -500000, -258819, 0, 258819, 500000, 707107, 866025, 965926], toHour(timestamp) + 1))),
        sum(toInt64(arrayElement([0, 258819, 500000, 707107, 866025, 965926, 1000000, 965926, 866025, 707107, 500000, 258819, 0, -258819, -500000, -707107, -866025, -965926, -1000000, -965926, -866025, -707107, -500000, -258819], toHour(timestamp) + 1))),
        sum(toInt64(transaction_type = 'buy')),
        sum(toInt64(transaction_type = 'sell')),
        sum(toInt64(transaction_type = 'withdraw')),
        sum(toInt64(transaction_type = 'deposit')),
        max(timestamp)
    GROUP BY toDate(timestamp), user_id, ip_country, device_type, wallet_address
);

-- Existing parts: built in the background (until then they are read row by row).
ALTER TABLE crypto_transactions MATERIALIZE PROJECTION user_daily
