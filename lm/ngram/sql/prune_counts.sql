-- lmplz --prune: keep the n-grams seen more than $threshold times. (The file lies under n=N/:
-- hive_partitioning off keeps that folder name out of the columns.)
SELECT *
FROM read_parquet($path, hive_partitioning = false)
WHERE count > $threshold
