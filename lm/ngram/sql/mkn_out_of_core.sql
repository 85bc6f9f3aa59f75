-- KenLM's modified Kneser-Ney (docs/kenlm-mkn.md) as DuckDB statements, for lm/ngram/mkn_duckdb.py.
-- Each section below is one statement, named by its `-- name:` line. Braced fields are column
-- lists and table names made from the order n (never user input); values are bound parameters.
-- Orders are tables g{n} (adjusted counts a), ctx{n} (the order-n contexts' sums and gamma),
-- p{n} (interpolated probabilities) and b{n} (backoff weights); n-grams are
-- columns w1..wn, oldest token first. All arithmetic on FLOAT (float32) is DuckDB's IEEE single
-- precision, in lmplz's rounding order, so the values are bit-identical to lm/ngram/mkn.py.

-- name: full_counts
-- Raw counts of every position's padded window of length N (§1): the order-N n-grams, and the
-- shorter `<s>`-initial n-grams of sentence starts, whose missing oldest slots hold -1.
CREATE TABLE full_counts AS
SELECT {cols}, count(*)::BIGINT AS c
FROM windows
GROUP BY ALL;

-- name: highest_order
-- a(g) = c(g) at the highest order (§2).
CREATE VIEW g{n} AS
SELECT {cols}, c AS a
FROM full_counts
WHERE w1 <> -1;

-- name: lower_order
-- a(g) at a lower order n (§2): the continuation count N1+(. g), the number of order n+1
-- n-grams whose suffix g is, or the raw count of g when it starts with `<s>` (those are the
-- windows of exactly length n; no order-(n+1) n-gram ends in them).
CREATE TABLE g{n} AS
SELECT {suffix_as}, count(*)::BIGINT AS a
FROM g{above}
GROUP BY ALL
UNION ALL
SELECT {tail_as}, c AS a
FROM full_counts
WHERE {before_bos} = -1 AND {bos_col} = $bos;

-- name: count_of_counts
-- t_1..t_4 of one order (§3.1).
SELECT
    count(*) FILTER (WHERE a = 1),
    count(*) FILTER (WHERE a = 2),
    count(*) FILTER (WHERE a = 3),
    count(*) FILTER (WHERE a = 4)
FROM g{n};

-- name: continuation_of_unigrams
-- a(w) of the unigrams: N1+(. w) from the bigrams (`<s>` has none: it never ends an n-gram).
SELECT w2 AS w, count(*)::BIGINT AS a
FROM g2
GROUP BY ALL;

-- name: raw_count
-- c(s) of one n-gram s (the §3.3 suffixes): the positions whose window ends in s.
SELECT coalesce(sum(c), 0)::BIGINT
FROM full_counts
WHERE {match};

-- name: adjusted_count
-- a(s) of one n-gram s of order n (the §3.3 suffixes).
SELECT coalesce(sum(a), 0)::BIGINT
FROM g{n}
WHERE {match};

-- name: last_tokens
-- The tokens that end a padded window (§3.3 looks for the one of greatest rank).
SELECT DISTINCT {last} AS w
FROM full_counts;

-- name: windows_ending_in
-- The padded windows that end in one token.
SELECT {cols}
FROM full_counts
WHERE {last} = $w;

-- name: contexts
-- Per context h of order n (§4): S(h) = sum of a(h w), and
-- gamma(h) = (D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)) / S(h), float32 in lmplz's order:
-- the integer sum becomes a double, then a float; each D_k N_k is a float product.
CREATE TABLE ctx{n} AS
SELECT
    {ctx_cols},
    s,
    ((CAST($d1 AS FLOAT) * n1 + CAST($d2 AS FLOAT) * n2) + CAST($d3 AS FLOAT) * n3) / s AS gamma
FROM (
    SELECT
        {ctx_cols},
        CAST(CAST(sum(a) AS DOUBLE) AS FLOAT) AS s,
        CAST(count(*) FILTER (WHERE a = 1) AS FLOAT) AS n1,
        CAST(count(*) FILTER (WHERE a = 2) AS FLOAT) AS n2,
        CAST(count(*) FILTER (WHERE a >= 3) AS FLOAT) AS n3
    FROM g{n}
    GROUP BY ALL
);

-- name: interpolate
-- p(h w) = u(h w) + gamma(h) p(suf(h w)), u(h w) = (a - D(a)) / S(h) (§4, §5), float32, of
-- the n-grams whose second token is in $lo..$hi ({into}: the first part creates the table, the
-- others append). The token appears in both join keys, so both hash tables hold that part
-- only: parts small enough for the memory limit keep the joins from spilling.
{into}
SELECT
    {g_cols},
    (CAST(g.a AS FLOAT) - CASE g.a WHEN 1 THEN CAST($d1 AS FLOAT) WHEN 2 THEN CAST($d2 AS FLOAT)
        ELSE CAST($d3 AS FLOAT) END) / h.s + h.gamma * l.p AS p
FROM g{n} AS g
JOIN ctx{n} AS h ON {ctx_join}
JOIN p{below} AS l ON {suffix_join}
WHERE g.w2 BETWEEN $lo AND $hi AND {ctx_w2} BETWEEN $lo AND $hi AND l.w1 BETWEEN $lo AND $hi;

-- name: drop_context_sums
-- The backoff weights of order n - 1 are the gamma of the contexts of order n: once order n
-- is interpolated, ctx{n} keeps them, without the sums, as that order's b table
-- (rename_backoffs). The model is then p1..pN (every n-gram's p) and b1..bN-1 (the gamma of
-- the n-grams that are contexts of the next order); ARPA's log10 values are taken where the
-- tables are read, a batch at a time, with the C library's log10f.
ALTER TABLE ctx{n} DROP COLUMN s;

-- name: rename_backoffs
ALTER TABLE ctx{n} RENAME TO b{below};

-- name: model_rows
-- One order of the model as ARPA lists it: each n-gram's p and its backoff weight (NULL where
-- it is no context).
SELECT {p_cols}, p.p, b.gamma
FROM p{n} AS p
LEFT JOIN b{n} AS b ON {match}

-- name: evaluation_windows
-- The evaluation windows (pos, w1..wN as lm/ngram/windows.padded_windows cuts them), kept: each
-- order's lookup reads them.
CREATE TEMP TABLE eval_windows AS
SELECT *
FROM windows;

-- name: order_lookup
-- One order's lookup: the positions whose window of length n is in the model. An inner join, so
-- DuckDB hashes the (small) evaluation side and streams the model table past it; a left join
-- would hash the model table for every evaluation.
SELECT q.pos, m.p
FROM eval_windows AS q
JOIN p{n} AS m ON {match}

-- name: backoff_lookup
-- The same for the backoff weights: the positions whose window of length n is a context.
SELECT q.pos, m.gamma
FROM eval_windows AS q
JOIN b{n} AS m ON {match}

-- name: score
-- Per position, the model's p and gamma of the window of every length that ends there (NULL
-- where that n-gram is not in the model, or no context), in stream order; h1 is the token
-- before the word (`<s>` at a sentence start).
SELECT q.pos, q.w{order} AS word, q.w{history} AS h1, {values}
FROM eval_windows AS q
{joins}
ORDER BY q.pos;
