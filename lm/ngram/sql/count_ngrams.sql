-- Order-$n n-gram counts of the token relation `tokens` (pos, sent, id), padded as KenLM pads:
-- every real position (each word and each </s>) ends exactly one n-gram whose history is filled
-- with <s> (id 1) before the sentence start; n-grams never cross sentences (KENLM_MKN.md §1).
-- w1..w7 hold the n-gram oldest token first; the columns past $n are NULL (orders 1..7).
WITH padded AS (
    SELECT
        CASE WHEN $n >= 1 THEN lag(id, greatest($n - 1, 0), 1) OVER sentence END AS w1,
        CASE WHEN $n >= 2 THEN lag(id, greatest($n - 2, 0), 1) OVER sentence END AS w2,
        CASE WHEN $n >= 3 THEN lag(id, greatest($n - 3, 0), 1) OVER sentence END AS w3,
        CASE WHEN $n >= 4 THEN lag(id, greatest($n - 4, 0), 1) OVER sentence END AS w4,
        CASE WHEN $n >= 5 THEN lag(id, greatest($n - 5, 0), 1) OVER sentence END AS w5,
        CASE WHEN $n >= 6 THEN lag(id, greatest($n - 6, 0), 1) OVER sentence END AS w6,
        CASE WHEN $n >= 7 THEN lag(id, greatest($n - 7, 0), 1) OVER sentence END AS w7
    FROM tokens
    WINDOW sentence AS (PARTITION BY sent ORDER BY pos)
)
SELECT w1, w2, w3, w4, w5, w6, w7, count(*) AS count
FROM padded
GROUP BY ALL
