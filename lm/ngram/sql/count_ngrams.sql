-- Order-$n n-gram counts of the token relation `tokens` (pos, sent, id), as the warehouse stores
-- them for Zipf statistics and SQL: every window of `<s> w1 .. wm </s>` (one <s> per sentence,
-- so the unigram <s> counts sentences), never across sentences. This is the count that KenLM,
-- DuckDB, numpy and plain Python agree on (BASELINES: PTB train 10,001 / 264,990 / 586,558 /
-- 717,733 / 737,952 for orders 1..5). The models count their own, fully padded n-grams.
-- w1..w7 hold the n-gram oldest token first; the columns past $n are NULL (orders 1..7).
WITH with_bos AS (
    SELECT pos, sent, id FROM tokens
    UNION ALL
    SELECT min(pos) - 1 AS pos, sent, 1 AS id FROM tokens GROUP BY sent
),
windows AS (
    SELECT
        CASE WHEN $n >= 1 THEN lag(id, greatest($n - 1, 0)) OVER sentence END AS w1,
        CASE WHEN $n >= 2 THEN lag(id, greatest($n - 2, 0)) OVER sentence END AS w2,
        CASE WHEN $n >= 3 THEN lag(id, greatest($n - 3, 0)) OVER sentence END AS w3,
        CASE WHEN $n >= 4 THEN lag(id, greatest($n - 4, 0)) OVER sentence END AS w4,
        CASE WHEN $n >= 5 THEN lag(id, greatest($n - 5, 0)) OVER sentence END AS w5,
        CASE WHEN $n >= 6 THEN lag(id, greatest($n - 6, 0)) OVER sentence END AS w6,
        CASE WHEN $n >= 7 THEN lag(id, greatest($n - 7, 0)) OVER sentence END AS w7
    FROM with_bos
    WINDOW sentence AS (PARTITION BY sent ORDER BY pos)
)
SELECT w1, w2, w3, w4, w5, w6, w7, count(*) AS count
FROM windows
WHERE w1 IS NOT NULL
GROUP BY ALL
