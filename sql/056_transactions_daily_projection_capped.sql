-- The daily projection of 055, redefined with capped amounts. History is every row of
-- crypto_transactions, including rows scoring quarantined; 055 summed their amounts as
-- they are, so one absurd or non-finite amount overflowed the integer sums of its user's
-- day. The sums now take each amount capped to [0, 1e10] and 0 when it is not finite
-- (fraud_assets/features/compaction.py), and ClickHouse answers from a projection only
-- for identical aggregates: the projection is rebuilt with the capped form.
--
-- Until the parts are rebuilt in the background they are read row by row (slower, the
-- same results). Dropping first keeps the file safe to apply again after a crash.

ALTER TABLE crypto_transactions DROP PROJECTION IF EXISTS user_daily;

ALTER TABLE crypto_transactions ADD PROJECTION IF NOT EXISTS user_daily (
    SELECT
        toDate(timestamp),
        user_id,
        ip_country,
        device_type,
        wallet_address,
        count(),
        sum(toInt64(round(if(isFinite(amount), least(greatest(amount, 0), 10000000000.), 0.) * 100))),
        sum(toInt64(round(log1p(if(isFinite(amount), least(greatest(amount, 0), 10000000000.), 0.)) * 10000))),
        sum(toInt64(round(log1p(if(isFinite(amount), least(greatest(amount, 0), 10000000000.), 0.)) * 10000)) * toInt64(round(log1p(if(isFinite(amount), least(greatest(amount, 0), 10000000000.), 0.)) * 10000))),
        sum(toInt64(arrayElement([1000000, 965926, 866025, 707107, 500000, 258819, 0, -258819, -500000, -707107, -866025, -965926, -1000000, -965926, -866025, -707107, -500000, -258819, 0, 258819, 500000, 707107, 866025, 965926], toHour(timestamp) + 1))),
        sum(toInt64(arrayElement([0, 258819, 500000, 707107, 866025, 965926, 1000000, 965926, 866025, 707107, 500000, 258819, 0, -258819, -500000, -707107, -866025, -965926, -1000000, -965926, -866025, -707107, -500000, -258819], toHour(timestamp) + 1))),
        sum(toInt64(transaction_type = 'buy')),
        sum(toInt64(transaction_type = 'sell')),
        sum(toInt64(transaction_type = 'withdraw')),
        sum(toInt64(transaction_type = 'deposit')),
        max(timestamp)
    GROUP BY toDate(timestamp), user_id, ip_country, device_type, wallet_address
);

ALTER TABLE crypto_transactions MATERIALIZE PROJECTION user_daily
