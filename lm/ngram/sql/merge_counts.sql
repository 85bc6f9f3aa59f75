-- Counts of several shards (Parquet files of w1..wn, count) merged by summing: the counts of
-- their concatenation, since every window belongs to exactly one shard.
SELECT COLUMNS('^w[0-9]+$'), sum(count)::BIGINT AS count
FROM read_parquet($paths, hive_partitioning = false)
GROUP BY ALL
