-- Views defined over the other views (lm/warehouse/views.py registers or creates those).
-- Each statement is one view; the file is split on semicolons.

-- ngrams: the counts of ngram_ids with their tokens spelled out by the vocabulary of the same
-- data key (one list lookup per id, so every order shares this one statement). `tokens` is a
-- list of strings; each training sentence is read as <s> w1 .. wm </s>.
CREATE OR REPLACE VIEW ngrams AS
WITH v AS (
    SELECT corpus, tokenizer, data_key, list(token ORDER BY id) AS toks
    FROM vocab
    GROUP BY ALL
)
SELECT g.corpus, g.tokenizer, g.data_key, g.n,
       list_transform(list_filter([g.w1, g.w2, g.w3, g.w4, g.w5, g.w6, g.w7, g.w8, g.w9], lambda x: x IS NOT NULL),
                      lambda x: v.toks[x + 1]) AS tokens,
       g.count
FROM ngram_ids g
JOIN v USING (corpus, tokenizer, data_key);
