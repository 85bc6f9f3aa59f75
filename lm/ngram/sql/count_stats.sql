-- What OrderCounts reports of one order's counts file: distinct n-grams, their total
-- (= windows = stream positions), and the count-of-counts t1..t4 the discounts need.
SELECT
    count(*) AS distinct_ngrams,
    coalesce(sum(count), 0)::BIGINT AS tokens,
    count(*) FILTER (WHERE count = 1) AS t1,
    count(*) FILTER (WHERE count = 2) AS t2,
    count(*) FILTER (WHERE count = 3) AS t3,
    count(*) FILTER (WHERE count = 4) AS t4
FROM read_parquet($path, hive_partitioning = false)
