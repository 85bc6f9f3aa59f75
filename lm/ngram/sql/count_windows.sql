-- Order-n counts of the window stream `windows` (w1..wn, oldest token first; one row per window
-- of `<s> w1 .. wm </s>`, cut in bounded batches by lm/ngram/windows.py). A plain hash
-- aggregate: DuckDB spills its partitions to temp_directory past memory_limit, so the number of
-- distinct n-grams is bounded by disk, not RAM.
SELECT COLUMNS('^w[0-9]+$'), count(*) AS count
FROM windows
GROUP BY ALL
