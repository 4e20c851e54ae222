-- A batch of transactions delivered twice is stored once. Loaders retry an insert
-- whose acknowledgement they did not see (a timeout, a dropped connection), so the
-- same rows can arrive again in the same blocks. Every later hour's history
-- features read all of crypto_transactions, including through the daily
-- projection, which cannot drop a duplicate id: a redelivered batch would count
-- twice in its users' 30-day counts, sums and velocities.
--
-- With a deduplication window, ClickHouse keeps the hashes of the table's last
-- 1,000 insert blocks (its native mechanism for idempotent inserts) and drops a
-- block equal to one of them; an INSERT may instead name its batch with the
-- insert_deduplication_token setting. A copy batched differently (other blocks,
-- some rows more or fewer) is not a repeat of a block: scoring quarantines its
-- ids as duplicate_transaction_id, and history still counts it twice.

ALTER TABLE crypto_transactions MODIFY SETTING non_replicated_deduplication_window = 1000;
